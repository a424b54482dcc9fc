"""Starts the whole stack on one machine: the embedded broker and every service as child processes.

`haic up` runs it. Children get fixed default ports, log to <data_dir>/logs/, and die with the
launcher (PR_SET_PDEATHSIG), so even a killed launcher leaves no orphan.
"""

from __future__ import annotations

import logging
import os
import secrets
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import grpc
import httpx
from grpc_health.v1 import health_pb2, health_pb2_grpc

from services.core.broker import EmbeddedBroker, free_port
from services.core.bus import ensure_topics
from services.core.process import die_with_parent
from services.core.settings import PoseModelFamily, Settings
from services.pose.models.build import build_model_repository
from services.pose.triton_process import EmbeddedTriton, TritonPorts

log = logging.getLogger(__name__)


class StackError(RuntimeError):
    """A component did not become healthy or died."""


@dataclass(frozen=True)
class ServicePorts:
    grpc: int
    metrics: int


@dataclass(frozen=True)
class StackPorts:
    """Fixed defaults so users and dashboards find every service; tests use `free()`."""

    broker: int = 9092
    http: int = 8080
    triton: TritonPorts = field(default_factory=TritonPorts)  # Triton's standard 8001 (gRPC), 8000, 8002
    services: dict[str, ServicePorts] = field(
        default_factory=lambda: {
            "gateway": ServicePorts(grpc=50050, metrics=0),  # the gateway serves /metrics on its HTTP port
            "filter": ServicePorts(grpc=50051, metrics=9101),
            "pose": ServicePorts(grpc=50052, metrics=9102),
            "captioner": ServicePorts(grpc=50053, metrics=9103),
            "qagen": ServicePorts(grpc=50054, metrics=9104),
            "scoring": ServicePorts(grpc=50055, metrics=9105),
        }
    )

    @classmethod
    def free(cls) -> StackPorts:
        names = cls().services
        return cls(
            broker=free_port(),
            http=free_port(),
            triton=TritonPorts.free(),
            services={n: ServicePorts(free_port(), free_port() if p.metrics else 0) for n, p in names.items()},
        )


# The worker services, in start order; later services join here.
WORKER_SERVICES: tuple[str, ...] = ("filter", "pose", "captioner", "qagen", "scoring")


def ensure_api_key(settings: Settings) -> str:
    """The key in use: the first of HAIC_API_KEYS, or one generated once into <data_dir>/api_key."""
    if settings.api_keys:
        return settings.api_keys[0]
    path = settings.data_dir / "api_key"
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(secrets.token_urlsafe(24))
        path.chmod(0o600)
    return path.read_text().strip()


@dataclass
class Child:
    name: str
    process: subprocess.Popen
    log_path: Path


class LocalStack:
    def __init__(
        self,
        settings: Settings,
        ports: StackPorts | None = None,
        embedded_broker: bool = True,
        embedded_triton: bool = True,
    ) -> None:
        self.settings = settings
        self.ports = ports or StackPorts()
        self.embedded_broker = embedded_broker
        self.embedded_triton = embedded_triton
        self.broker: EmbeddedBroker | None = None
        self.triton: EmbeddedTriton | None = None
        self.children: list[Child] = []
        self.data_dir = settings.data_dir.resolve()
        self.logs_dir = self.data_dir / "logs"
        self.api_key = ""

    @property
    def bootstrap_servers(self) -> str:
        return self.broker.bootstrap_servers if self.broker else self.settings.kafka_bootstrap_servers

    @property
    def triton_url(self) -> str:
        return self.triton.url if self.triton else self.settings.triton_url

    @property
    def gateway_url(self) -> str:
        return f"http://127.0.0.1:{self.ports.http}"

    def start(self, timeout_s: float = 90.0) -> LocalStack:
        self.logs_dir.mkdir(parents=True, exist_ok=True)
        self.api_key = ensure_api_key(self.settings)
        try:
            if self.embedded_broker:
                self.broker = EmbeddedBroker(self.ports.broker, log_path=self.logs_dir / "broker.log").start()
            ensure_topics(self.settings.model_copy(update={"kafka_bootstrap_servers": self.bootstrap_servers}))
            if self.embedded_triton:
                self._start_triton()
            self._spawn("gateway", "services.gateway")
            for name in WORKER_SERVICES:
                self._spawn(name, f"services.{name}")
            self._wait_healthy(timeout_s)
        except BaseException:
            self.stop()
            raise
        return self

    def _start_triton(self) -> None:
        """Builds the embedded default's models when missing or stale (a no-op otherwise; the rtmpose family
        is built beforehand from its ONNX files), then serves the repository on PyTriton."""
        if self.settings.pose_model_family is PoseModelFamily.movenet:
            log.info(build_model_repository(self.settings).describe())
        self.triton = EmbeddedTriton.from_settings(
            self.settings,
            self.ports.triton,
            workspace=self.data_dir / "triton",
            log_path=self.logs_dir / "triton.log",
        )
        self.triton.start()
        log.info("Triton serving %s at %s", ", ".join(self.triton.models), self.triton.url)

    def _spawn(self, name: str, module: str) -> None:
        ports = self.ports.services[name]
        env = {
            **os.environ,
            "HAIC_KAFKA_BOOTSTRAP_SERVERS": self.bootstrap_servers,
            "HAIC_DATA_DIR": str(self.data_dir),
            "HAIC_API_KEYS": ",".join(self.settings.api_keys) or self.api_key,
            "HAIC_GRPC_PORT": str(ports.grpc),
            "HAIC_METRICS_PORT": str(ports.metrics),
            "HAIC_HTTP_PORT": str(self.ports.http),
            "HAIC_TRITON_URL": self.triton_url,
        }
        log_path = self.logs_dir / f"{name}.log"
        with log_path.open("ab") as out:
            process = subprocess.Popen(
                [sys.executable, "-m", module],
                env=env,
                stdout=out,
                stderr=subprocess.STDOUT,
                preexec_fn=die_with_parent,
            )
        self.children.append(Child(name, process, log_path))
        log.info("started %s (pid %d), log %s", name, process.pid, log_path)

    def _wait_healthy(self, timeout_s: float) -> None:
        deadline = time.monotonic() + timeout_s
        pending = {c.name for c in self.children}
        while pending:
            for child in self.children:
                if child.process.poll() is not None:
                    tail = child.log_path.read_text(errors="replace")[-2000:]
                    raise StackError(f"{child.name} exited with {child.process.returncode}; log tail:\n{tail}")
            pending = {name for name in pending if not self._healthy(name)}
            if pending and time.monotonic() > deadline:
                raise StackError(f"not healthy after {timeout_s} s: {sorted(pending)}; logs in {self.logs_dir}")
            time.sleep(0.3)

    def _healthy(self, name: str) -> bool:
        if name == "gateway":
            try:
                return httpx.get(f"{self.gateway_url}/readyz", timeout=2).status_code == 200
            except httpx.HTTPError:
                return False
        with grpc.insecure_channel(f"127.0.0.1:{self.ports.services[name].grpc}") as channel:
            try:
                reply = health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest(), timeout=2)
            except grpc.RpcError:
                return False
            return reply.status == health_pb2.HealthCheckResponse.SERVING

    def describe(self) -> str:
        lines = [
            f"gateway     {self.gateway_url}  (docs {self.gateway_url}/docs, metrics {self.gateway_url}/metrics)",
            f"gateway gRPC 127.0.0.1:{self.ports.services['gateway'].grpc}  (haic.v1.Pipeline)",
        ]
        for name in WORKER_SERVICES:
            p = self.ports.services[name]
            lines.append(f"{name:<11} gRPC 127.0.0.1:{p.grpc}, metrics http://127.0.0.1:{p.metrics}/metrics")
        lines += [
            f"triton      gRPC {self.triton_url}",
            f"kafka       {self.bootstrap_servers}",
            f"API key     {self.api_key}",
            f"logs        {self.logs_dir}",
        ]
        return "\n".join(lines)

    def child(self, name: str) -> Child:
        for child in self.children:
            if child.name == name:
                return child
        raise KeyError(f"no child process named {name!r}")

    def restart(self, name: str, timeout_s: float = 60.0) -> None:
        """Starts the named service again after it died or was killed."""
        old = self.child(name)
        if old.process.poll() is None:
            old.process.terminate()
            old.process.wait(timeout_s)
        self.children.remove(old)
        self._spawn(name, f"services.{name}")
        self._wait_healthy(timeout_s)

    def check_children(self) -> None:
        if self.triton is not None and not self.triton.alive:
            raise StackError(f"Triton exited; see {self.triton.log_path}")
        for child in self.children:
            if child.process.poll() is not None:
                raise StackError(f"{child.name} exited with {child.process.returncode}; see {child.log_path}")

    def stop(self, timeout_s: float = 20.0) -> None:
        """SIGTERM every child (workers first, gateway last), wait, then kill what is left; then the broker."""
        for child in reversed(self.children):
            if child.process.poll() is None:
                child.process.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + timeout_s
        for child in reversed(self.children):
            try:
                child.process.wait(max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                log.warning("%s did not stop in %s s; killing pid %d", child.name, timeout_s, child.process.pid)
                child.process.kill()
                child.process.wait()
        self.children.clear()
        if self.triton is not None:
            self.triton.stop()
            self.triton = None
        if self.broker is not None:
            self.broker.stop()
            self.broker = None

    def __enter__(self) -> LocalStack:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
