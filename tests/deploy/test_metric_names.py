"""Every metric a dashboard, an alert or recording rule, or the Triton autoscaler names is exported: by
our services (their metric definitions, so labelled metrics count before their first observation), by
Triton (deploy/prometheus/triton-metrics.txt, checked live in test_prometheus_live.py), by Prometheus
(`up`), or by our own recording rules."""

from __future__ import annotations

import importlib
import importlib.util
import json
import re
from collections.abc import Iterator
from pathlib import Path

import prometheus_client
import pytest
import yaml

from tests.conftest import REPO_ROOT
from tests.deploy.conftest import GRAFANA_DIR, K8S, PROMETHEUS_DIR
from tests.deploy.promql import defined_metrics, metric_names

PROMETHEUS_OWN = {"up"}
DASHBOARDS = sorted((GRAFANA_DIR / "dashboards").glob("*.json"))


def triton_metrics() -> set[str]:
    lines = (PROMETHEUS_DIR / "triton-metrics.txt").read_text().splitlines()
    return {line.strip() for line in lines if line.strip() and not line.startswith("#")}


def rules() -> Iterator[dict]:
    for path in sorted((PROMETHEUS_DIR / "rules").glob("*.yml")):
        for group in yaml.safe_load(path.read_text())["groups"]:
            yield from group["rules"]


def dashboard_exprs() -> Iterator[tuple[str, str]]:
    for path in DASHBOARDS:
        dashboard = json.loads(path.read_text())
        for panel in dashboard["panels"]:
            for target in panel.get("targets", []):
                yield f"{path.name}: {panel['title']}", target["expr"]
        for variable in dashboard["templating"]["list"]:
            query = variable["query"]["query"] if isinstance(variable["query"], dict) else variable["query"]
            yield f"{path.name}: ${variable['name']}", re.sub(r"label_values\((\w+),.*\)", r"\1", query)


def keda_prometheus_queries() -> Iterator[tuple[str, str]]:
    for path in K8S.rglob("*.yaml"):
        for doc in yaml.safe_load_all(path.read_text()):
            if doc and doc.get("kind") == "ScaledObject":
                for trigger in doc["spec"]["triggers"]:
                    if trigger["type"] == "prometheus":
                        yield f"{path.relative_to(REPO_ROOT)}: {doc['metadata']['name']}", trigger["metadata"]["query"]


def test_definitions_scan_sees_every_registered_metric() -> None:
    """The source scan finds every family the metric modules register (no definition it cannot read)."""
    for module in ("services.core.metrics", "services.gateway.metrics", "services.pose.triton_client"):
        importlib.import_module(module)
    defined = defined_metrics(REPO_ROOT / "services")
    registered = {
        sample_name
        for family in prometheus_client.REGISTRY.collect()
        if family.name.startswith("haic_")
        for sample_name in (
            [family.name + "_total"]
            if family.type == "counter"
            else [family.name + "_bucket", family.name + "_count"]
            if family.type == "histogram"
            else [family.name]
        )
    }
    assert registered and registered <= set(defined), sorted(registered - set(defined))


def test_every_used_metric_is_exported() -> None:
    exported = set(defined_metrics(REPO_ROOT / "services")) | triton_metrics() | PROMETHEUS_OWN
    recorded = {rule["record"] for rule in rules() if "record" in rule}
    sources = [
        *dashboard_exprs(),
        *((rule.get("alert") or rule["record"], rule["expr"]) for rule in rules()),
        *keda_prometheus_queries(),
    ]
    assert len(sources) > 40
    missing = {
        (where, name) for where, expr in sources for name in metric_names(expr) if name not in exported | recorded
    }
    assert not missing, "\n".join(f"{where}: {name}" for where, name in sorted(missing))


def test_dashboards_cover_the_issue() -> None:
    """The panels the deployment issue asks for, by the metrics they must query."""
    used = {name for _, expr in dashboard_exprs() for name in metric_names(expr)}
    for needed in [
        "haic_messages_produced_total",  # funnel and yield
        "stage_reason:haic_clip_rejections:rate5m",  # rejections by reason
        "haic_messages_consumed_total",  # throughput
        "haic_processing_seconds_bucket",  # latency percentiles
        "haic_consumer_lag",
        "haic_messages_dead_lettered_total",
        "haic_triton_request_seconds_bucket",
        "nv_inference_queue_duration_us",
        "nv_inference_exec_count",  # batch size
        "haic_captions_total",  # judge pass rate
        "haic_qa_items_total",
        "haic_eval_accuracy",
    ]:
        assert needed in used, needed


@pytest.mark.parametrize("path", DASHBOARDS, ids=lambda p: p.name)
def test_dashboard_is_generated_and_provisioned(path: Path) -> None:
    spec = importlib.util.spec_from_file_location("haic_grafana_generate", GRAFANA_DIR / "generate.py")
    module = importlib.util.module_from_spec(spec)  # type: ignore[arg-type]
    spec.loader.exec_module(module)  # type: ignore[union-attr]
    assert module.render()[path.name] == path.read_text(), "stale: run .venv/bin/python deploy/grafana/generate.py"
    dashboard = json.loads(path.read_text())
    datasource = yaml.safe_load((GRAFANA_DIR / "provisioning" / "datasources" / "prometheus.yaml").read_text())
    uid = datasource["datasources"][0]["uid"]
    assert all(panel["datasource"]["uid"] == uid for panel in dashboard["panels"])
    assert len({panel["id"] for panel in dashboard["panels"]}) == len(dashboard["panels"])
