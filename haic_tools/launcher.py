"""Starts the whole stack on one machine: the embedded broker, Triton and every service as child
processes, and keeps them running.

`haic up` runs it. Children get fixed default ports and log to <data_dir>/logs/. Every child is a
supervised unit (haic_tools/supervisor.py): one that dies is restarted with backoff, one that keeps
dying is left stopped while the others keep serving. Children die with the launcher
(PR_SET_PDEATHSIG), so even a killed launcher leaves no orphan; the next launcher on the same data
directory finds what is left of the previous one (<data_dir>/run/) and waits for it to be gone.
"""

from __future__ import annotations

import contextlib
import functools
import json
import logging
import os
import secrets
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from urllib.parse import quote

import grpc
import httpx
from grpc_health.v1 import health_pb2, health_pb2_grpc
from prometheus_client import start_http_server

from haic_tools.models.build import build_model_repository
from haic_tools.supervisor import Announce, LauncherMetrics, RestartPolicy, Supervisor, SupervisorError, UnitStatus
from services.core import topology
from services.core.broker import EmbeddedBroker, free_port
from services.core.bus import ensure_topics
from services.core.process import stop_process, with_parent_death_signal
from services.core.settings import PoseModelFamily, Settings
from services.pose.triton_process import EmbeddedTriton, ProcessId, TritonPorts, is_running, process_tree

log = logging.getLogger(__name__)


class StackError(RuntimeError):
    """A component did not become healthy, or the supervisor itself stopped."""


@dataclass(frozen=True)
class ServicePorts:
    grpc: int
    metrics: int


@dataclass(frozen=True)
class StackPorts:
    """Fixed defaults so users and dashboards find every service; tests use `free()`."""

    broker: int = 9092
    http: int = topology.GATEWAY_HTTP_PORT
    triton: TritonPorts = field(default_factory=TritonPorts)  # Triton's standard 8001 (gRPC), 8000, 8002
    services: dict[str, ServicePorts] = field(
        default_factory=lambda: {
            # the gateway serves /metrics on its HTTP port
            topology.GATEWAY_NAME: ServicePorts(grpc=topology.GATEWAY_GRPC_PORT, metrics=0),
            **{stage.name: ServicePorts(grpc=stage.grpc_port, metrics=stage.metrics_port) for stage in topology.STAGES},
        }
    )
    launcher_metrics: int = 9106  # the launcher's own /metrics (restarts, services given up); 0: off

    @classmethod
    def free(cls) -> StackPorts:
        names = cls().services
        return cls(
            broker=free_port(),
            http=free_port(),
            triton=TritonPorts.free(),
            services={n: ServicePorts(free_port(), free_port() if p.metrics else 0) for n, p in names.items()},
            launcher_metrics=free_port(),
        )

    def with_pose_workers(self, count: int) -> StackPorts:
        """These ports plus those of pose workers 2..count ("pose-2", ...) where missing. The extra workers
        get free ports: the fixed defaults are the single-worker layout's, and `describe()` lists the rest."""
        missing = [name for name in pose_worker_names(count)[1:] if name not in self.services]
        if not missing:
            return self
        return replace(self, services={**self.services, **{n: ServicePorts(free_port(), free_port()) for n in missing}})

    def all(self) -> list[int]:
        ports = [self.broker, self.http, self.triton.grpc, self.triton.http, self.triton.metrics]
        ports += [p for s in self.services.values() for p in (s.grpc, s.metrics)] + [self.launcher_metrics]
        return [p for p in ports if p]

    def save(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(asdict(self), indent=2))

    @classmethod
    def load(cls, path: Path) -> StackPorts:
        raw = json.loads(path.read_text())
        return cls(
            broker=raw["broker"],
            http=raw["http"],
            triton=TritonPorts(**raw["triton"]),
            services={name: ServicePorts(**p) for name, p in raw["services"].items()},
            launcher_metrics=raw.get("launcher_metrics", 0),
        )


# The worker services, in start order: the topology's stages.
WORKER_SERVICES: tuple[str, ...] = topology.STAGE_ORDER


def pose_worker_names(count: int) -> list[str]:
    """The pose workers' unit names: "pose", then "pose-2" ... (HAIC_POSE_WORKERS); all in one consumer group."""
    return ["pose", *(f"pose-{i}" for i in range(2, count + 1))]


def worker_units(pose_workers: int) -> list[tuple[str, str]]:
    """(unit name, module) of every worker in start order, the pose stage as HAIC_POSE_WORKERS processes."""
    units: list[tuple[str, str]] = []
    for service in WORKER_SERVICES:
        names = pose_worker_names(pose_workers) if service == "pose" else [service]
        units += [(name, topology.stage(service).module) for name in names]
    return units


# Without these nothing is served: the stack does not come up when one of them is given up during start.
ESSENTIAL_UNITS: frozenset[str] = frozenset({"broker", "triton", "gateway"})


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


# The reviewer `haic up` makes when HAIC_REVIEWERS names none: the desk's URL signs in as them.
LOCAL_REVIEWER = "reviewer"


def ensure_reviewer(settings: Settings) -> tuple[str, str]:
    """(name, key) of the reviewer the printed desk URL signs in as: the first of HAIC_REVIEWERS, or
    `reviewer` with a key generated once into <data_dir>/reviewer_key (kept apart from the API key: only a
    reviewer's key may submit reviews, and its reviews carry the reviewer's name)."""
    if settings.reviewers:
        name, _, key = settings.reviewers[0].partition(":")
        return name, key
    path = settings.data_dir / "reviewer_key"
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(secrets.token_urlsafe(24))
        path.chmod(0o600)
    return LOCAL_REVIEWER, path.read_text().strip()


@dataclass
class Child:
    name: str
    process: subprocess.Popen
    log_path: Path


class ServiceUnit:
    """A Python service (`python -m services.<name>`) as a supervised unit."""

    def __init__(
        self,
        name: str,
        module: str,
        env: Callable[[], dict[str, str]],
        log_path: Path,
        args: tuple[str, ...] = (),
    ) -> None:
        self.name = name
        self.module = module
        self.args = args
        self.env = env  # read at every start: the broker's or Triton's address is the current one
        self.log_path = log_path
        self.process: subprocess.Popen | None = None
        self.starts = 0

    def start(self) -> None:
        with self.log_path.open("ab") as out:
            self.starts += 1
            # The log is appended to across restarts; a marker tells one run's lines from the next's.
            stamp = time.strftime("%Y-%m-%d %H:%M:%S")
            out.write(f"--- haic launcher: starting {self.name} (start {self.starts}) at {stamp} ---\n".encode())
            out.flush()
            self.process = subprocess.Popen(
                with_parent_death_signal([sys.executable, "-m", self.module, *self.args]),
                env=self.env(),
                stdout=out,
                stderr=subprocess.STDOUT,
            )
        log.info("started %s (pid %d), log %s", self.name, self.process.pid, self.log_path)

    def exit_code(self) -> int | None:
        return None if self.process is None else self.process.poll()

    def pids(self) -> list[int]:
        return [self.process.pid] if self.process is not None and self.process.poll() is None else []

    def begin_stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)

    def stop(self, timeout_s: float) -> None:
        if self.process is not None:
            # SIGTERM: the service finishes its in-flight message, commits and leaves its group; it is
            # killed only when that takes longer than the timeout.
            stop_process(self.process, timeout_s)


class BrokerUnit:
    """The embedded broker as a supervised unit: a new broker object per start, on the same port and data."""

    name = "broker"

    def __init__(self, factory: Callable[[], EmbeddedBroker], settings: Settings, log_path: Path) -> None:
        self.factory = factory
        self.settings = settings
        self.log_path = log_path
        self.broker: EmbeddedBroker | None = None

    def start(self) -> None:
        self.broker = self.factory().start()
        # Idempotent; on a broker whose data survived, the topics are there already.
        ensure_topics(self.settings.model_copy(update={"kafka_bootstrap_servers": self.broker.bootstrap_servers}))

    def exit_code(self) -> int | None:
        process = self.broker.process if self.broker is not None else None
        return None if process is None else process.poll()

    def pids(self) -> list[int]:
        process = self.broker.process if self.broker is not None else None
        return [process.pid] if process is not None and process.poll() is None else []

    def begin_stop(self) -> None:
        """The broker stops last: the workers commit their offsets to it while they stop."""

    def stop(self, timeout_s: float) -> None:
        if self.broker is not None:
            self.broker.stop()


class TritonUnit:
    """The embedded Triton (PyTriton under .venv-triton) as a supervised unit."""

    name = "triton"

    def __init__(self, factory: Callable[[], EmbeddedTriton], log_path: Path) -> None:
        self.factory = factory
        self.log_path = log_path
        self.triton: EmbeddedTriton | None = None

    def start(self) -> None:
        self.triton = self.factory().start()
        log.info("Triton serving %s at %s", ", ".join(self.triton.models), self.triton.url)

    def exit_code(self) -> int | None:
        process = self.triton.process if self.triton is not None else None
        return None if process is None else process.poll()

    def pids(self) -> list[int]:
        if self.triton is None or not self.triton.alive:
            return []
        return [p.pid for p in self.triton.survivors()]

    def begin_stop(self) -> None:
        """Triton stops after the pose service that calls it."""

    def stop(self, timeout_s: float) -> None:
        if self.triton is not None:
            # Also after a crash: kills what is left of the server's tree (tritonserver, backend stubs).
            self.triton.stop()


def wait_for_free_ports(ports: list[int], timeout_s: float, host: str = "127.0.0.1") -> None:
    """Waits until every port can be bound (a previous stack's children may still be shutting down)."""
    deadline = time.monotonic() + timeout_s
    busy = ports
    while True:
        busy = [p for p in busy if not _bindable(host, p)]
        if not busy:
            return
        if time.monotonic() > deadline:
            waited = f" after waiting {timeout_s:g} s" if timeout_s else ""
            raise StackError(f"ports {busy} are in use{waited} (by another stack or program)")
        time.sleep(0.2)


def _bindable(host: str, port: int) -> bool:
    with socket.socket() as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as the servers bind: TIME_WAIT is no clash
        try:
            probe.bind((host, port))
        except OSError:
            return False
        return True


class RunRecord:
    """<data_dir>/run/launcher-<pid>.json: this launcher and the pids of its children, rewritten as they
    change. A launcher that was SIGKILLed leaves its file behind; the next one on the same data directory
    stops what is left of its children (they got SIGTERM from PDEATHSIG and may still be finishing) and
    waits for them, instead of failing on their ports or on the broker's log directory lock."""

    def __init__(self, data_dir: Path) -> None:
        self.dir = data_dir / "run"
        self.me = _identity(os.getpid())
        self.path = self.dir / f"launcher-{os.getpid()}.json"

    def write(self, children: dict[str, list[int]]) -> None:
        self.dir.mkdir(parents=True, exist_ok=True)
        entries = [_identity(pid) for pids in children.values() for pid in pids]
        record = {
            "launcher": asdict(self.me) if self.me is not None else None,
            "children": [asdict(e) for e in entries if e is not None],
        }
        tmp = self.path.with_suffix(".tmp")
        tmp.write_text(json.dumps(record))
        tmp.replace(self.path)

    def remove(self) -> None:
        with contextlib.suppress(FileNotFoundError):
            self.path.unlink()

    def reap_previous(self, grace_s: float = 10.0, timeout_s: float = 5.0) -> tuple[list[ProcessId], list[int]]:
        """Stops the children left by launchers of this data directory that are gone. Returns them, and
        the pids of launchers of this data directory that still run."""
        leftovers: list[ProcessId] = []
        live: list[int] = []
        for path in self.dir.glob("launcher-*.json") if self.dir.is_dir() else []:
            if path == self.path:
                continue
            try:
                record = json.loads(path.read_text())
                launcher = ProcessId(**record["launcher"])
                children = [ProcessId(**c) for c in record["children"]]
            except (OSError, ValueError, KeyError, TypeError):
                path.unlink(missing_ok=True)
                continue
            if is_running(launcher):
                live.append(launcher.pid)  # another stack on this data directory (`haic up --free-ports`)
                continue
            leftovers += [c for c in children if is_running(c)]
            path.unlink(missing_ok=True)
        if not leftovers:
            return [], live
        log.warning("a previous launcher left %s; waiting for them", [f"{p.name}:{p.pid}" for p in leftovers])
        # They got SIGTERM from PDEATHSIG when it died: a worker finishes and commits its in-flight
        # message, the broker flushes its logs. Give them that time, then ask again, then kill: one still
        # there is usually waiting on the broker, which got the same SIGTERM and is gone (the gateway's
        # catalog consumer waited 30 s to commit and leave its group), and its uncommitted message is
        # redelivered anyway.
        for signum, wait_s in ((None, grace_s), (signal.SIGTERM, timeout_s), (signal.SIGKILL, 5.0)):
            running = [p for p in leftovers if is_running(p)]
            if not running:
                break
            if signum is not None:
                log.warning("signalling %s to leftover %s", signum.name, [f"{p.name}:{p.pid}" for p in running])
                for process in running:
                    with contextlib.suppress(ProcessLookupError):
                        os.kill(process.pid, signum)
            deadline = time.monotonic() + wait_s
            while any(is_running(p) for p in running) and time.monotonic() < deadline:
                time.sleep(0.2)
        return leftovers, live


def _identity(pid: int) -> ProcessId | None:
    tree = process_tree(pid)
    return tree[0] if tree else None


class LocalStack:
    def __init__(
        self,
        settings: Settings,
        ports: StackPorts | None = None,
        embedded_broker: bool = True,
        embedded_triton: bool = True,
        *,
        service_env: Mapping[str, Mapping[str, str]] | None = None,
        announce: Announce | None = None,
        port_wait_s: float = 60.0,
        require_all: bool = True,
    ) -> None:
        self.settings = settings
        self.ports = (ports or StackPorts()).with_pose_workers(settings.pose_workers)
        self.embedded_broker = embedded_broker
        self.embedded_triton = embedded_triton
        self.service_env = {name: dict(env) for name, env in (service_env or {}).items()}  # per service, on top
        self.announce = announce
        self.port_wait_s = port_wait_s
        # False (`haic up`): a worker given up during the start leaves the rest serving; True: start() fails.
        self.require_all = require_all
        self.data_dir = settings.data_dir.resolve()
        self.logs_dir = self.data_dir / "logs"
        self.api_key = ""
        self.reviewer = ("", "")  # (name, key) of the desk URL's reviewer
        self.policy = RestartPolicy(
            backoff_s=settings.restart_backoff_s,
            backoff_max_s=settings.restart_backoff_max_s,
            budget=settings.restart_budget,
            window_s=settings.restart_budget_window_s,
        )
        self.metrics = LauncherMetrics()
        self.services: dict[str, ServiceUnit] = {}
        self.broker_unit: BrokerUnit | None = None
        self.triton_unit: TritonUnit | None = None
        self.supervisor: Supervisor | None = None
        self.run_record = RunRecord(self.data_dir)
        self._metrics_server: object | None = None

    @property
    def broker(self) -> EmbeddedBroker | None:
        return self.broker_unit.broker if self.broker_unit else None

    @property
    def triton(self) -> EmbeddedTriton | None:
        return self.triton_unit.triton if self.triton_unit else None

    @property
    def bootstrap_servers(self) -> str:
        return f"127.0.0.1:{self.ports.broker}" if self.embedded_broker else self.settings.kafka_bootstrap_servers

    @property
    def triton_url(self) -> str:
        return f"127.0.0.1:{self.ports.triton.grpc}" if self.embedded_triton else self.settings.triton_url

    @property
    def gateway_url(self) -> str:
        return f"http://127.0.0.1:{self.ports.http}"

    @property
    def desk_url(self) -> str:
        """The review desk, signing in as the stack's reviewer: the key rides in the fragment, which the
        browser never sends to a server (the page reads it, signs in and removes it from the address bar)."""
        return f"{self.gateway_url}/desk/#key={quote(self.reviewer[1], safe='')}"

    @property
    def children(self) -> list[Child]:
        """The service processes (the latest of each service)."""
        return [Child(u.name, u.process, u.log_path) for u in self.services.values() if u.process is not None]

    def start(self, timeout_s: float = 90.0) -> LocalStack:
        self.logs_dir.mkdir(parents=True, exist_ok=True)
        self.ensure_keys()
        try:
            leftovers, live = self.run_record.reap_previous()
            # Wait for ports only while a killed launcher's children may still hold them; busy ports
            # otherwise mean another program (or another live stack) has them: say so at once.
            try:
                wait_for_free_ports(self.ports.all(), self.port_wait_s if leftovers else 0.0)
            except StackError as exc:
                others = f"; haic up (pid {', '.join(map(str, live))}) runs on this data directory" if live else ""
                raise StackError(f"{exc}{others}") from None
            units: list = []
            if self.embedded_broker:
                self.broker_unit = BrokerUnit(self._new_broker, self.settings, self.logs_dir / "broker.log")
                units.append(self.broker_unit)
            else:
                ensure_topics(self.settings)
            if self.embedded_triton:
                if self.settings.pose_model_family is PoseModelFamily.movenet:
                    # Builds the embedded default's models when missing or stale (a no-op otherwise; the
                    # rtmpose family is built beforehand from its ONNX files).
                    log.info(build_model_repository(self.settings).describe())
                self.triton_unit = TritonUnit(self._new_triton, self.logs_dir / "triton.log")
                units.append(self.triton_unit)
            for name, module in [("gateway", "services.gateway"), *worker_units(self.settings.pose_workers)]:
                self.services[name] = ServiceUnit(
                    name, module, functools.partial(self._service_env, name), self.logs_dir / f"{name}.log"
                )
                units.append(self.services[name])
            self.supervisor = Supervisor(
                units,
                self.policy,
                self.metrics,
                announce=self.announce or _log_line,
                on_change=self._record_children,
            )
            self.supervisor.start()
            if self.ports.launcher_metrics:
                self._metrics_server, _ = start_http_server(
                    self.ports.launcher_metrics, addr="127.0.0.1", registry=self.metrics.registry
                )
            self._wait_healthy(timeout_s)
        except BaseException:
            self.stop()
            raise
        return self

    def ensure_keys(self) -> None:
        """The API key and the desk's reviewer the services get (from the settings, else generated once)."""
        self.api_key = ensure_api_key(self.settings)
        self.reviewer = ensure_reviewer(self.settings)

    def _new_broker(self) -> EmbeddedBroker:
        return EmbeddedBroker.from_settings(self.settings, self.ports.broker, log_path=self.logs_dir / "broker.log")

    def _new_triton(self) -> EmbeddedTriton:
        return EmbeddedTriton.from_settings(
            self.settings,
            self.ports.triton,
            workspace=self.data_dir / "triton",
            log_path=self.logs_dir / "triton.log",
        )

    def _service_env(self, name: str) -> dict[str, str]:
        ports = self.ports.services[name]
        return {
            **os.environ,
            "HAIC_KAFKA_BOOTSTRAP_SERVERS": self.bootstrap_servers,
            "HAIC_DATA_DIR": str(self.data_dir),
            "HAIC_API_KEYS": ",".join(self.settings.api_keys) or self.api_key,
            "HAIC_REVIEWERS": ",".join(self.settings.reviewers) or ":".join(self.reviewer),
            "HAIC_GRPC_PORT": str(ports.grpc),
            "HAIC_METRICS_PORT": str(ports.metrics),
            "HAIC_HTTP_PORT": str(self.ports.http),
            "HAIC_TRITON_URL": self.triton_url,
            # Every service that ensures the topics counts the pose input's partitions the same way.
            "HAIC_POSE_WORKERS": str(self.settings.pose_workers),
            **self.service_env.get(name, {}),
        }

    def _record_children(self) -> None:
        if self.supervisor is not None:
            self.run_record.write({name: s.unit.pids() for name, s in self.supervisor.states.items()})

    def _wait_healthy(self, timeout_s: float) -> None:
        """Until every service answers its health check or is given up (a crash in between is restarted
        like any other). A given-up gateway, broker or Triton fails the start: nothing would be served; so
        does any given-up service with require_all."""
        assert self.supervisor is not None
        deadline = time.monotonic() + timeout_s
        pending = set(self.services)
        while pending:
            self.check_children()
            given_up = self.supervisor.given_up()
            fatal = given_up if self.require_all else sorted(ESSENTIAL_UNITS.intersection(given_up))
            if fatal:
                unit = self.supervisor.states[fatal[0]].unit
                tail = unit.log_path.read_text(errors="replace")[-2000:] if unit.log_path else ""
                raise StackError(f"{fatal} kept dying and were given up; {unit.log_path} ends with:\n{tail}")
            pending = {
                name
                for name in pending
                if self.supervisor.status(name) is not UnitStatus.given_up and not self._healthy(name)
            }
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
            f"gateway gRPC 127.0.0.1:{self.ports.services['gateway'].grpc}  (haic.v1.PipelineService)",
        ]
        for name, _module in worker_units(self.settings.pose_workers):
            p = self.ports.services[name]
            lines.append(f"{name:<11} gRPC 127.0.0.1:{p.grpc}, metrics http://127.0.0.1:{p.metrics}/metrics")
        lines += [
            f"triton      gRPC {self.triton_url}",
            f"kafka       {self.bootstrap_servers}",
        ]
        if self.ports.launcher_metrics:
            lines.append(f"launcher    metrics http://127.0.0.1:{self.ports.launcher_metrics}/metrics (restarts)")
        lines += [
            f"API key     {self.api_key}",
            f"review desk  {self.desk_url}",
            f"logs        {self.logs_dir}",
        ]
        given_up = self.given_up()
        if given_up:
            lines.append(f"given up    {', '.join(given_up)} (left stopped; see their logs)")
        return "\n".join(lines)

    def child(self, name: str) -> Child:
        unit = self.services.get(name)
        if unit is None or unit.process is None:
            raise KeyError(f"no child process named {name!r}")
        return Child(unit.name, unit.process, unit.log_path)

    def given_up(self) -> list[str]:
        return self.supervisor.given_up() if self.supervisor is not None else []

    def restart(self, name: str, timeout_s: float = 60.0) -> None:
        """Starts the named unit again now (a service, "triton" or "broker"), and waits until it is healthy."""
        if self.supervisor is None:
            raise StackError("the stack is not running")
        self.supervisor.restart(name)
        if name in self.services:
            deadline = time.monotonic() + timeout_s
            while not self._healthy(name):
                if time.monotonic() > deadline:
                    raise StackError(f"{name} not healthy {timeout_s} s after its restart; see {self.logs_dir}")
                time.sleep(0.3)

    def check_children(self) -> None:
        """Raises when the supervisor itself is gone; a dead child is the supervisor's to restart."""
        if self.supervisor is None or not self.supervisor.alive:
            raise StackError("the launcher's supervisor stopped; the stack is down")

    def stop(self, timeout_s: float = 20.0) -> None:
        """SIGTERM every service (workers first, gateway last), wait, kill what is left; then Triton, then
        the broker (haic_tools/supervisor.py `_stop_all`)."""
        if self.supervisor is not None:
            with contextlib.suppress(SupervisorError):  # it failed: the units are stopped below
                self.supervisor.stop(timeout_s)
        for unit in [*self.services.values(), self.triton_unit, self.broker_unit]:
            if unit is not None:  # a supervisor that failed must not leave its children behind
                with contextlib.suppress(Exception):
                    unit.stop(timeout_s)
        if self._metrics_server is not None:
            self._metrics_server.shutdown()  # type: ignore[attr-defined]
            self._metrics_server.server_close()  # type: ignore[attr-defined]
            self._metrics_server = None
        self.run_record.remove()

    def __enter__(self) -> LocalStack:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


def _log_line(level: int, line: str) -> None:
    log.log(level, line)
