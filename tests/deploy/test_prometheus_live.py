"""A real Prometheus (Debian's package) scrapes a launched stack with deploy/prometheus's jobs and rules;
a video goes through, and the funnel moves: videos, candidate clips, accepted clips, captions."""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

import httpx
import pytest
import yaml

from clients.cli import main
from haic_tools.launcher import LocalStack, StackPorts
from services.core import topics
from services.core.broker import free_port
from services.core.settings import Settings
from tests.conftest import REPO_ROOT
from tests.deploy.conftest import PROMETHEUS_DIR, tool
from tests.deploy.test_metric_names import dashboard_exprs, metric_names, rules, triton_metrics

pytestmark = [pytest.mark.e2e, pytest.mark.kafka]

T = TypeVar("T")
FUNNEL = (topics.VIDEOS, topics.CLIPS_CANDIDATE, topics.CLIPS_ACCEPTED, topics.CAPTIONS)


def scrape_config(stack: LocalStack) -> dict:
    """deploy/prometheus/prometheus.yml with its targets moved to the stack's ports, scraping every second;
    jobs of services the stack does not run are left out."""
    config = yaml.safe_load((PROMETHEUS_DIR / "prometheus.yml").read_text())
    config["global"] = {"scrape_interval": "1s", "evaluation_interval": "1s"}
    config["rule_files"] = [str(PROMETHEUS_DIR / "rules" / "*.yml")]
    local = {"triton": stack.ports.triton.metrics, "haic-gateway": stack.ports.http}
    for name, ports in stack.ports.services.items():
        if ports.metrics:
            local[f"haic-{name}"] = ports.metrics
    jobs = []
    for job in config["scrape_configs"]:
        if job["job_name"] in local:
            job["static_configs"] = [{"targets": [f"127.0.0.1:{local[job['job_name']]}"]}]
            jobs.append(job)
    config["scrape_configs"] = jobs
    return config


def start_prometheus(config: Path, address: str, data: Path, log: Path) -> subprocess.Popen:
    with log.open("wb") as out:
        process = subprocess.Popen(
            [
                tool("prometheus"),
                f"--config.file={config}",
                f"--storage.tsdb.path={data}",
                f"--web.listen-address={address}",
                "--web.enable-lifecycle",
            ],
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        assert process.poll() is None, log.read_text()[-3000:]
        try:
            if httpx.get(f"http://{address}/-/ready", timeout=1).status_code == 200:
                return process
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    process.terminate()
    raise AssertionError(f"Prometheus not ready: {log.read_text()[-3000:]}")


def query(address: str, expr: str) -> list[dict]:
    reply = httpx.get(f"http://{address}/api/v1/query", params={"query": expr}, timeout=5).json()
    assert reply["status"] == "success", reply
    return reply["data"]["result"]


def funnel(address: str) -> dict[str, float]:
    rows = query(address, "sum by (topic) (haic_messages_produced_total)")
    return {row["metric"]["topic"]: float(row["value"][1]) for row in rows}


def wait_for(check: Callable[[], T], timeout_s: float, what: str) -> T:
    deadline = time.monotonic() + timeout_s
    while True:
        value = check()
        if value:
            return value
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(1)


def test_prometheus_sees_the_funnel_move(
    tmp_path: Path, shared_videos: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    tool("prometheus")  # skip before starting anything when it is missing
    settings = Settings(data_dir=tmp_path / "haic", api_keys=["deploy-key"])
    with LocalStack(settings, StackPorts.free()) as stack:
        config = tmp_path / "prometheus.yml"
        config.write_text(yaml.safe_dump(scrape_config(stack)))
        address = f"127.0.0.1:{free_port()}"
        process = start_prometheus(config, address, tmp_path / "tsdb", tmp_path / "prometheus.log")
        try:
            jobs = {job["job_name"] for job in scrape_config(stack)["scrape_configs"]}
            # every target of the scrape config is up, our services and Triton's own metrics endpoint
            wait_for(lambda: {r["metric"]["job"] for r in query(address, "up == 1")} >= jobs, 30, f"all of {jobs} up")
            before = funnel(address)
            assert all(before.get(topic, 0) == 0 for topic in FUNNEL), before

            # the image's health check script against every service's gRPC health service
            for name, ports in stack.ports.services.items():
                check = [sys.executable, str(REPO_ROOT / "docker" / "healthcheck.py"), f"127.0.0.1:{ports.grpc}"]
                assert subprocess.run(check, capture_output=True, check=False).returncode == 0, name

            monkeypatch.setenv("HAIC_API_KEY", "deploy-key")
            juggle = shared_videos / "juggle_one_person.mp4"
            args = ["--gateway", stack.gateway_url, "submit", str(juggle), "--description", "A man juggles", "--wait"]
            assert main(args) == 0
            assert ": completed" in capsys.readouterr().out

            after = wait_for(
                lambda: (f := funnel(address)) and all(f.get(topic, 0) >= 1 for topic in FUNNEL) and f,
                30,
                "the funnel to reach the captions",
            )
            assert after[topics.VIDEOS] == 1 and after[topics.CAPTIONS] >= 1, after
            if "qagen" in stack.ports.services:  # the last stage of the local stack once QA generation runs
                wait_for(lambda: funnel(address).get(topics.QA, 0) >= 1, 30, "QA sets in the funnel")
            # the recording rules evaluate on the live series (their groups run every 15 s). Their value may
            # still be 0: a labelled counter appears at its first increment, which rate() cannot see.
            recorded = f'topic:haic_messages_produced:rate5m{{topic="{topics.CAPTIONS}"}}'
            wait_for(lambda: query(address, recorded), 40, "the funnel recording rule")
            verdicts = query(address, 'sum by (stage, verdict) (haic_clip_verdicts_total{verdict="accepted"})')
            assert verdicts, "pose verdicts"
            assert query(address, 'sum(haic_captions_total{judge="passed"})')

            # Triton's own metrics the dashboards and rules use are served by the real tritonserver (PyTriton),
            # except the GPU ones, which need a GPU
            used = {n for _, e in [*dashboard_exprs(), *((r.get("alert") or r["record"], r["expr"]) for r in rules())]
                    for n in metric_names(e)}  # fmt: skip
            wanted = {name for name in used & triton_metrics() if not name.startswith("nv_gpu_")}
            served = {r["metric"]["__name__"] for r in query(address, '{__name__=~"nv_.+", job="triton"}')}
            assert wanted and wanted <= served, sorted(wanted - served)
        finally:
            process.terminate()
            process.wait(15)
