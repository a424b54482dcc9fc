"""k8s/: every overlay builds with `kubectl kustomize` and validates against Kubernetes' schemas, and the
manifests agree with the code: topics, consumer groups, ports, settings, probes, scaling bounds."""

from __future__ import annotations

import re

import kubernetes_validate
import pytest

from services.core import topics, topology
from services.core.settings import Settings
from tests.deploy.conftest import K8S, OVERLAYS, by_kind, kustomize

# Custom resources of the operators the manifests need: kubernetes-validate bundles only Kubernetes' own
# schemas, so these are not schema-checked (the structural tests below check the fields we rely on).
CRD_KINDS = {"Kafka", "KafkaNodePool", "KafkaTopic", "ScaledObject"}
# The manifests are checked against the topology the code declares (services/core/topology.py).
WORKERS = {stage.name: stage.input_topic for stage in topology.STAGES}  # the consumer group is haic-<service>
GRPC_PORTS = {topology.GATEWAY_NAME: topology.GATEWAY_GRPC_PORT, **{s.name: s.grpc_port for s in topology.STAGES}}


@pytest.fixture(scope="module", params=("base", *OVERLAYS))
def build(request: pytest.FixtureRequest) -> tuple[str, list[dict]]:
    name = request.param
    return name, kustomize(K8S / name if name == "base" else K8S / "overlays" / name)


def test_builds_and_validates(build: tuple[str, list[dict]]) -> None:
    name, resources = build
    skipped = set()
    for resource in resources:
        if resource["kind"] in CRD_KINDS:
            skipped.add(resource["kind"])
            continue
        try:
            kubernetes_validate.validate(resource, kubernetes_validate.latest_version(), strict=True)
        except kubernetes_validate.ValidationError as exc:
            pytest.fail(f"{name}: {resource['kind']}/{resource['metadata']['name']}: {exc.message} at {exc.path}")
    assert skipped == CRD_KINDS, f"{name}: expected the operators' custom resources, found {skipped}"


def test_every_service_has_deployment_service_and_pdb(build: tuple[str, list[dict]]) -> None:
    _, resources = build
    deployments = by_kind(resources, "Deployment")
    for kind in ("Service", "PodDisruptionBudget"):
        assert set(GRPC_PORTS) <= set(by_kind(resources, kind)), kind
    for service, grpc_port in GRPC_PORTS.items():
        pod = deployments[service]["spec"]["template"]["spec"]
        [container] = pod["containers"]
        assert container["command"] == ["python", "-m", f"services.{service}"]
        env = {e["name"]: e.get("value") for e in container["env"]}
        assert env["HAIC_GRPC_PORT"] == str(grpc_port)
        for probe in ("startupProbe", "livenessProbe"):
            assert container[probe]["grpc"]["port"] == grpc_port, (service, probe)
        assert container["resources"]["requests"] and container["resources"]["limits"]
        assert pod["securityContext"]["runAsNonRoot"] is True
        annotations = deployments[service]["spec"]["template"]["metadata"]["annotations"]
        metrics_port = int(env.get("HAIC_METRICS_PORT") or env["HAIC_HTTP_PORT"])
        assert annotations["prometheus.io/port"] == str(metrics_port)
        assert metrics_port in {p["containerPort"] for p in container["ports"]}


def test_settings_named_in_manifests_exist(build: tuple[str, list[dict]]) -> None:
    """A misspelt HAIC_* variable would be silently ignored by the services (extra='ignore')."""
    _, resources = build
    known = {f"HAIC_{name.upper()}" for name in Settings.model_fields}
    named: set[str] = set()
    for resource in resources:
        if resource["kind"] in ("ConfigMap", "Secret"):
            named |= set(resource.get("data") or {}) | set(resource.get("stringData") or {})
        for deployment in [resource] if resource["kind"] == "Deployment" else []:
            for container in deployment["spec"]["template"]["spec"]["containers"]:
                named |= {e["name"] for e in container.get("env", [])}
    unknown = {name for name in named if name.startswith("HAIC_")} - known
    assert not unknown, f"not settings of services/core/settings.py: {sorted(unknown)}"


def test_kafka_topics_and_lag_scaling(build: tuple[str, list[dict]]) -> None:
    _, resources = build
    kafka_topics = {t["spec"]["topicName"]: t for t in by_kind(resources, "KafkaTopic").values()}
    assert set(kafka_topics) == set(topics.ALL_TOPICS)
    retention_ms = Settings().deadletter_retention_ms
    for name, topic in kafka_topics.items():
        assert topic["metadata"]["labels"]["strimzi.io/cluster"] == "haic"
        assert topic["spec"]["partitions"] >= 1
        # the operator's retention is the one the services set (topics.topic_config): they would fight otherwise
        wanted = topics.topic_config(name, retention_ms)["retention.ms"]
        assert str(topic["spec"]["config"]["retention.ms"]) == wanted, name
    scaled = by_kind(resources, "ScaledObject")
    for service, topic in WORKERS.items():
        [trigger] = scaled[service]["spec"]["triggers"]
        assert scaled[service]["spec"]["scaleTargetRef"]["name"] == service
        assert trigger["type"] == "kafka"
        assert trigger["metadata"]["consumerGroup"] == f"haic-{service}"
        assert trigger["metadata"]["topic"] == topic
        # more consumers than partitions would sit idle
        assert scaled[service]["spec"]["maxReplicaCount"] <= kafka_topics[topic]["spec"]["partitions"]


def test_triton_per_overlay() -> None:
    gpu = kustomize(K8S / "overlays" / "gpu")
    triton = by_kind(gpu, "Deployment")["triton"]["spec"]["template"]["spec"]
    [container] = triton["containers"]
    assert container["resources"]["limits"]["nvidia.com/gpu"] == 1
    assert any(t["key"] == "nvidia.com/gpu" for t in triton["tolerations"])
    assert "nvidia.com/gpu.present" in triton["nodeSelector"]
    assert {p["port"] for p in by_kind(gpu, "Service")["triton"]["spec"]["ports"]} == {8000, 8001, 8002}
    [trigger] = by_kind(gpu, "ScaledObject")["triton"]["spec"]["triggers"]
    assert trigger["type"] == "prometheus" and "nv_inference_queue_duration_us" in trigger["metadata"]["query"]
    config = next(iter(by_kind(gpu, "ConfigMap").values()))["data"]
    assert config["HAIC_TRITON_URL"] == "triton:8001" and config["HAIC_POSE_MODEL_FAMILY"] == "rtmpose"

    dev = kustomize(K8S / "overlays" / "dev")
    pytriton = by_kind(dev, "Deployment")["triton"]["spec"]["template"]["spec"]["containers"][0]
    assert pytriton["image"].startswith("haic-pytriton") and "nvidia.com/gpu" not in pytriton["resources"]["limits"]
    config = next(iter(by_kind(dev, "ConfigMap").values()))["data"]
    assert config["HAIC_POSE_MODEL_FAMILY"] == "movenet" and config["HAIC_TOPIC_REPLICATION_FACTOR"] == "1"
    assert all(t["spec"]["replicas"] == 1 for t in by_kind(dev, "KafkaTopic").values())
    assert {"haic-postgres", "minio"} <= set(by_kind(dev, "Service"))
    # the catalog URL's host is a Service of the dev overlay
    host = re.search(r"@([^:/]+)", config["HAIC_CATALOG_URL"]).group(1)  # type: ignore[union-attr]
    assert host in by_kind(dev, "Service")
