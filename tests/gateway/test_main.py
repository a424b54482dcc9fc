"""`python -m services.gateway` as a process: serves, stops cleanly on SIGTERM, refuses to start without keys."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from services.core.broker import EmbeddedBroker, free_port

from .conftest import API_KEY, AUTH

REPO_ROOT = Path(__file__).resolve().parents[2]


def gateway_env(tmp_path: Path, **overrides: str) -> dict[str, str]:
    env = {key: value for key, value in os.environ.items() if not key.startswith("HAIC_")}
    env.update({"HAIC_DATA_DIR": str(tmp_path / "haic"), "HAIC_GRPC_PORT": str(free_port())}, **overrides)
    return env


@pytest.mark.kafka
def test_gateway_process_serves_and_stops_on_sigterm(
    broker: EmbeddedBroker, tmp_path: Path, shared_videos: Path
) -> None:
    port = free_port()
    env = gateway_env(
        tmp_path,
        HAIC_KAFKA_BOOTSTRAP_SERVERS=broker.bootstrap_servers,
        HAIC_API_KEYS=f"other-key,{API_KEY}",
        HAIC_HTTP_PORT=str(port),
    )
    process = subprocess.Popen(
        [sys.executable, "-m", "services.gateway"], cwd=REPO_ROOT, env=env, stderr=subprocess.PIPE, text=True
    )
    try:
        with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=30) as client:
            deadline = time.monotonic() + 60
            while True:
                assert process.poll() is None, process.stderr.read()
                try:
                    if client.get("/readyz").status_code == 200:
                        break
                except httpx.TransportError:
                    pass
                assert time.monotonic() < deadline, "the gateway process did not become ready"
                time.sleep(0.2)
            with open(shared_videos / "static_no_person.mp4", "rb") as f:
                response = client.post("/v1/videos", files={"file": ("v.mp4", f)}, headers=AUTH)
            assert response.status_code == 202
        process.send_signal(signal.SIGTERM)
        _, stderr = process.communicate(timeout=60)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    assert process.returncode == -signal.SIGTERM  # uvicorn re-raises the signal after its graceful shutdown
    assert '"message": "worker gateway-catalog stopped"' in stderr
    assert '"message": "gateway stopped"' in stderr
    assert '"service": "gateway"' in stderr  # JSON logs from core's configure_logging
    assert "Traceback" not in stderr


def test_gateway_process_refuses_to_start_without_keys(tmp_path: Path) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "services.gateway"],
        cwd=REPO_ROOT,
        env=gateway_env(tmp_path, HAIC_API_KEYS=""),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 2
    assert "HAIC_API_KEYS" in result.stderr
