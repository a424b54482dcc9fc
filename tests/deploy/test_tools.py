"""hadolint on the Dockerfile, promtool on the Prometheus config and rules (with the rules' unit tests),
and the compose file's agreement with the services, the scrape config and the image."""

from __future__ import annotations

import re
import subprocess
import tomllib

import yaml
from compose_spec import PyCompose
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

from services.core import topology
from services.core.settings import Settings
from tests.conftest import REPO_ROOT
from tests.deploy.conftest import PROMETHEUS_DIR, tool

DOCKER = REPO_ROOT / "docker"
SERVICES = {  # (gRPC, metrics) per service, as the topology declares them
    topology.GATEWAY_NAME: (topology.GATEWAY_GRPC_PORT, topology.GATEWAY_HTTP_PORT),
    **{stage.name: (stage.grpc_port, stage.metrics_port) for stage in topology.STAGES},
}


def run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(args, capture_output=True, text=True, check=False, cwd=REPO_ROOT)


def test_hadolint_passes() -> None:
    out = run(tool("hadolint"), "--no-color", "docker/Dockerfile")
    assert out.returncode == 0 and not out.stdout.strip(), out.stdout + out.stderr


def test_dockerfile_pins_runs_as_non_root_and_checks_health() -> None:
    text = (DOCKER / "Dockerfile").read_text()
    base = re.search(r"^ARG PYTHON_IMAGE=(\S+)$", text, re.M).group(1)  # type: ignore[union-attr]
    assert re.fullmatch(r"python:\d+\.\d+\.\d+-slim-\w+", base), base
    stages = re.split(r"^FROM ", text, flags=re.M)[1:]
    final = {stage.split()[2]: stage for stage in stages}
    for target in ("service", "pytriton"):
        assert "USER 10001:10001" in final[target] and "HEALTHCHECK" in final[target], target
    assert stages[-1].split()[2] == "service", "the default target must be the services' image"
    assert "--constraint docker/constraints.txt" in text


def test_constraints_pin_every_runtime_dependency() -> None:
    """docker/constraints.txt (docker/lock_constraints.py) covers each direct dependency of the image."""
    project = tomllib.loads((REPO_ROOT / "pyproject.toml").read_text())["project"]
    direct = [*project["dependencies"], *project["optional-dependencies"]["postgres"]]
    pins = {}
    for line in (DOCKER / "constraints.txt").read_text().splitlines():
        if line and not line.startswith("#"):
            name, version = line.split("==")
            pins[canonicalize_name(name)] = version
    missing = {canonicalize_name(Requirement(r).name) for r in direct} - set(pins)
    assert not missing, f"regenerate with .venv/bin/python docker/lock_constraints.py: {sorted(missing)} unpinned"
    for requirement in map(Requirement, direct):
        assert requirement.specifier.contains(pins[canonicalize_name(requirement.name)], prereleases=True), requirement


def test_promtool_checks_config_and_rules() -> None:
    out = run(tool("promtool"), "check", "config", str(PROMETHEUS_DIR / "prometheus.yml"))
    assert out.returncode == 0, out.stdout + out.stderr
    assert "SUCCESS: 2 rule files found" in out.stdout
    rules = sorted(str(p) for p in (PROMETHEUS_DIR / "rules").glob("*.yml"))
    out = run(tool("promtool"), "check", "rules", *rules)
    assert out.returncode == 0, out.stdout + out.stderr


def test_promtool_rule_unit_tests() -> None:
    out = run(tool("promtool"), "test", "rules", str(PROMETHEUS_DIR / "tests" / "rules_test.yml"))
    assert out.returncode == 0 and "SUCCESS" in out.stdout, out.stdout + out.stderr


def test_compose_matches_services_and_scrape_config() -> None:
    compose = yaml.safe_load((DOCKER / "compose.yaml").read_text())
    services = compose["services"]
    known = {f"HAIC_{name.upper()}" for name in Settings.model_fields}
    scrape = yaml.safe_load((PROMETHEUS_DIR / "prometheus.yml").read_text())
    targets = {job["job_name"]: job["static_configs"][0]["targets"] for job in scrape["scrape_configs"]}
    for name, (grpc_port, metrics_port) in SERVICES.items():
        service = services[name]
        assert service["command"] == ["python", "-m", f"services.{name}"]
        assert service["build"]["target"] == "service"
        env = service["environment"]
        assert {key for key in env if key.startswith("HAIC_")} <= known, name
        assert int(env["HAIC_GRPC_PORT"]) == grpc_port
        assert int(env.get("HAIC_METRICS_PORT", env.get("HAIC_HTTP_PORT"))) == metrics_port
        assert targets[f"haic-{name}"] == [f"{name}:{metrics_port}"]
        assert env["HAIC_TRITON_URL"] == "triton:8001" and env["HAIC_KAFKA_BOOTSTRAP_SERVERS"] == "kafka:9092"
    # one Triton per profile, both reachable as `triton`, scraped on 8002
    profiles = {name: s.get("profiles") for name, s in services.items() if "triton" in name}
    assert profiles == {"triton-gpu": ["gpu"], "triton-cpu": ["cpu"]}
    for name in profiles:
        assert services[name]["networks"]["default"]["aliases"] == ["triton"]
    assert targets["triton"] == ["triton:8002"]
    assert services["triton-gpu"]["volumes"] == ["../docker/triton/models:/models:ro"]
    assert services["triton-cpu"]["build"]["target"] == "pytriton"
    for volume in services["prometheus"]["volumes"] + services["grafana"]["volumes"]:
        source = volume.split(":")[0]
        if source.startswith(".."):
            assert (DOCKER / source).exists(), source


# Compose's interpolation, for validation: ${VAR:-default} and ${VAR-default} take the default, a required
# ${VAR:?message} (and a bare ${VAR}) a placeholder, as with those variables set in the environment.
_VARIABLE = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?:(:?[-?])([^}]*))?\}")


def test_compose_file_follows_the_compose_specification() -> None:
    """The compose_spec parser (PyPI compose-spec, Rust compose_spec) checks every field against the Compose
    Specification. It neither interpolates nor resolves YAML merge keys, so both are done first, as Compose
    itself does."""
    text = _VARIABLE.sub(
        lambda m: m.group(3) if m.group(2) in (":-", "-") else "placeholder", (DOCKER / "compose.yaml").read_text()
    )
    resolved = yaml.safe_dump(yaml.safe_load(text))
    compose = PyCompose.from_yaml(resolved)
    assert set(SERVICES) <= set(compose.service_names())
    # the parser is strict: a wrong restart policy is refused
    broken = resolved.replace("restart: unless-stopped", "restart: sometimes", 1)
    assert broken != resolved
    try:
        PyCompose.from_yaml(broken)
    except ValueError as exc:
        assert "restart" in str(exc)
    else:
        raise AssertionError("compose_spec accepted an invalid restart policy")
