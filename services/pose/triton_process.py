"""Starts and stops the embedded Triton (triton_server.py under .venv-triton) as a child process.

Process tree while it runs::

    this process
      └─ .venv-triton python -m services.pose.triton_server    (child; PR_SET_PDEATHSIG=SIGTERM)
           └─ tritonserver                                     (PyTriton sets PR_SET_PDEATHSIG=SIGTERM)
                └─ triton_python_backend_stub, one per model instance, and its helpers

How nothing outlives us:
- `stop()` sends SIGTERM to the child; its handler stops tritonserver through PyTriton's API
  (`Triton.stop()`: SIGINT to tritonserver, wait, kill), which unloads the models and ends the stubs.
- If this process dies however it dies (even SIGKILL), the kernel sends the child SIGTERM
  (PDEATHSIG) and the same orderly stop runs. If the child itself is SIGKILLed, tritonserver gets
  SIGTERM from PyTriton's own PDEATHSIG and shuts down with the stubs.
- `stop()` then checks by pid (and start time, so a reused pid is not mistaken) that every process
  of the tree it recorded is gone, kills any survivor, and raises if one remains.

PDEATHSIG fires when the *thread* that started the child ends: start it from a thread that lives as
long as the server should (the main thread in `haic up` and in tests).
"""

from __future__ import annotations

import contextlib
import logging
import os
import re
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import IO

from services.core.broker import free_port
from services.core.process import REPO_ROOT, find_interpreter, with_parent_death_signal
from services.core.settings import Settings
from services.pose.repository import ModelRepositoryError, models, read_config
from services.pose.triton_client import TritonInference

log = logging.getLogger(__name__)


class TritonProcessError(RuntimeError):
    """The embedded Triton could not be started or stopped."""


class TritonEnvironmentError(TritonProcessError):
    """The interpreter with PyTriton (.venv-triton) is missing."""


class TritonRepositoryError(TritonProcessError, ModelRepositoryError):
    """The model repository is missing or holds no model."""


class TritonStartError(TritonProcessError):
    """The server exited or did not become ready in time."""


class TritonStopError(TritonProcessError):
    """A process of the server's tree survived stop()."""


@dataclass(frozen=True)
class TritonPorts:
    """Triton's standard ports by default; tests use `free()`."""

    grpc: int = 8001
    http: int = 8000
    metrics: int = 8002

    @classmethod
    def free(cls) -> TritonPorts:
        return cls(free_port(), free_port(), free_port())


@dataclass(frozen=True)
class ProcessId:
    """A pid plus its start time (clock ticks since boot), which tells a reused pid apart."""

    pid: int
    start: int
    name: str


def _stat(pid: int) -> tuple[str, int, int, str] | None:
    """(state, ppid, start time, name) from /proc/<pid>/stat, or None when the process is gone."""
    try:
        raw = Path(f"/proc/{pid}/stat").read_text()
    except (FileNotFoundError, ProcessLookupError, PermissionError):
        return None
    # The name is in parentheses and may itself hold spaces or parentheses.
    name = raw[raw.index("(") + 1 : raw.rindex(")")]
    rest = raw[raw.rindex(")") + 2 :].split()
    return rest[0], int(rest[1]), int(rest[19]), name


def process_tree(pid: int) -> list[ProcessId]:
    """The process and all its descendants, found by scanning /proc (children files need
    CONFIG_PROC_CHILDREN, which not every kernel has)."""
    children: dict[int, list[int]] = {}
    stats: dict[int, tuple[str, int, int, str]] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            stat = _stat(int(entry.name))
            if stat is not None:
                stats[int(entry.name)] = stat
                children.setdefault(stat[1], []).append(int(entry.name))
    found: list[ProcessId] = []
    todo = [pid]
    while todo:
        current = todo.pop()
        stat = stats.get(current)
        if stat is None:
            continue
        found.append(ProcessId(current, stat[2], stat[3]))
        todo.extend(children.get(current, []))
    return found


def is_running(process: ProcessId) -> bool:
    """True while that very process exists and is not a zombie (a zombie has exited already)."""
    stat = _stat(process.pid)
    return stat is not None and stat[2] == process.start and stat[0] not in ("Z", "X")


# PyTriton names its shared-memory regions `pytrtion<pid of the server's Python process>-...` and unlinks them
# on a clean stop; a crashed or SIGKILLed server leaves them in /dev/shm (4 to 12 MB each) for good.
_PYTRITON_SHM = re.compile(r"^pytrtion(\d+)-")
SHARED_MEMORY_DIR = Path("/dev/shm")


def remove_orphaned_shared_memory(directory: Path = SHARED_MEMORY_DIR) -> list[str]:
    """Unlinks the PyTriton regions whose process no longer runs; returns their names. Those of a live process
    (another Triton on this machine) are left alone."""
    removed = []
    for entry in directory.glob("pytrtion*"):
        match = _PYTRITON_SHM.match(entry.name)
        if match is None or Path(f"/proc/{match.group(1)}").exists():
            continue
        with contextlib.suppress(FileNotFoundError):  # its owner's resource tracker may unlink it first
            entry.unlink()
            removed.append(entry.name)
    if removed:
        log.warning("removed %d shared-memory regions left by stopped Triton servers", len(removed))
    return removed


def find_python(python: Path) -> Path:
    """The .venv-triton interpreter: as given, else relative to the repository root."""
    found = find_interpreter(python)
    if found is not None:
        return found
    raise TritonEnvironmentError(
        f"the PyTriton interpreter {python} is missing; run `make install` (it creates .venv-triton), "
        f"or set HAIC_TRITON_PYTHON"
    )


class EmbeddedTriton:
    """A real tritonserver serving the repository's ONNX models, as a context manager."""

    def __init__(
        self,
        repository: Path,
        python: Path = Path(".venv-triton/bin/python"),
        ports: TritonPorts | None = None,
        *,
        address: str = "127.0.0.1",
        workspace: Path | None = None,
        log_path: Path | None = None,
        threads: int | None = None,
        startup_timeout_s: float = 120.0,
        stop_timeout_s: float = 30.0,
    ) -> None:
        self.repository = Path(repository)
        self.python = python
        self.ports = ports or TritonPorts()
        self.address = address
        self.workspace = workspace
        self.log_path = log_path
        self.threads = threads
        self.startup_timeout_s = startup_timeout_s
        self.stop_timeout_s = stop_timeout_s
        self.process: subprocess.Popen[bytes] | None = None
        self.tree: list[ProcessId] = []
        self.models: list[str] = []
        self.ready_s = 0.0  # seconds from spawn to every model ready
        self._own_workspace = False
        self._log: IO[bytes] | None = None

    @classmethod
    def from_settings(cls, settings: Settings, ports: TritonPorts | None = None, **kwargs: object) -> EmbeddedTriton:
        """The repository `haic models build` writes, the gRPC port of HAIC_TRITON_URL, logs under data_dir."""
        if ports is None:
            grpc_port = int(settings.triton_url.rsplit(":", 1)[1])
            ports = TritonPorts(grpc=grpc_port)
        data_dir = settings.data_dir.resolve()
        kwargs.setdefault("workspace", data_dir / "triton")
        kwargs.setdefault("log_path", data_dir / "logs" / "triton.log")
        return cls(settings.models_dir / "repository", settings.triton_python, ports, **kwargs)  # type: ignore[arg-type]

    @property
    def url(self) -> str:
        """host:port of the gRPC endpoint (HAIC_TRITON_URL)."""
        return f"{self.address}:{self.ports.grpc}"

    def _check_repository(self) -> list[str]:
        try:
            names = [read_config(d).name for d in models(self.repository)]
        except ModelRepositoryError as exc:
            raise TritonRepositoryError(str(exc)) from exc
        if not names:
            raise TritonRepositoryError(f"model repository {self.repository} holds no model; run `haic models build`")
        return names

    def _check_ports(self) -> None:
        """A port in use would make tritonserver exit during start-up; say which one, before starting."""
        for kind, port in (("gRPC", self.ports.grpc), ("HTTP", self.ports.http), ("metrics", self.ports.metrics)):
            with socket.socket() as probe:
                probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as servers bind: TIME_WAIT is no clash
                try:
                    probe.bind((self.address, port))
                except OSError as exc:
                    raise TritonStartError(f"Triton's {kind} port {self.address}:{port} is not free: {exc}") from exc

    def start(self) -> EmbeddedTriton:
        if self.process is not None:
            raise TritonProcessError("already started")
        python = find_python(self.python)
        remove_orphaned_shared_memory()
        self.models = self._check_repository()
        self._check_ports()
        if self.workspace is None:
            self.workspace = Path(tempfile.mkdtemp(prefix="haic-triton-"))
            self._own_workspace = True
        self.workspace.mkdir(parents=True, exist_ok=True)
        if self.log_path is None:
            self.log_path = self.workspace / "triton.log"
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        command = [
            str(python),
            "-m",
            "services.pose.triton_server",
            "--repository",
            str(self.repository.resolve()),
            "--grpc-port",
            str(self.ports.grpc),
            "--http-port",
            str(self.ports.http),
            "--metrics-port",
            str(self.ports.metrics),
            "--address",
            self.address,
            "--workspace",
            str(self.workspace.resolve()),
            "--threads",
            str(self.threads or 0),
        ]
        pythonpath = os.pathsep.join(p for p in (str(REPO_ROOT), os.environ.get("PYTHONPATH", "")) if p)
        env = {**os.environ, "PYTHONPATH": pythonpath, "PYTHONUNBUFFERED": "1"}
        env.pop("VIRTUAL_ENV", None)
        started = time.monotonic()
        self._log = self.log_path.open("ab")
        # Its own session: a terminal's Ctrl-C reaches only our process, which stops the pose service
        # before the server it calls (stop() order), instead of every process at once.
        self.process = subprocess.Popen(
            with_parent_death_signal(command),
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=self._log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        log.info("started embedded Triton (pid %d) for %s, log %s", self.process.pid, self.models, self.log_path)
        try:
            self._wait_ready(started)
        except BaseException:
            self.stop()
            raise
        self.ready_s = time.monotonic() - started
        self._record_tree()
        log.info("embedded Triton ready at %s in %.1f s (%d processes)", self.url, self.ready_s, len(self.tree))
        return self

    def _wait_ready(self, started: float) -> None:
        assert self.process is not None
        # a readiness probe: short deadline, one attempt, and no images sent (any batch size will do)
        with TritonInference(self.url, timeout_s=2.0, retries=1, max_batch_size=1) as client:
            while not client.is_ready(tuple(self.models)):
                self._record_tree()
                if self.process.poll() is not None:
                    raise TritonStartError(
                        f"embedded Triton exited with {self.process.returncode}; log tail:\n{self.log_tail()}"
                    )
                if time.monotonic() - started > self.startup_timeout_s:
                    raise TritonStartError(
                        f"embedded Triton not ready after {self.startup_timeout_s} s; log tail:\n{self.log_tail()}"
                    )
                time.sleep(0.2)

    def _record_tree(self) -> None:
        """Adds the child's current descendants to those recorded: once the child is gone, an orphaned
        grandchild can only be found by the pid recorded here."""
        if self.process is None or self.process.poll() is not None:
            return
        known = set(self.tree)
        self.tree += [p for p in process_tree(self.process.pid) if p not in known]

    def log_tail(self, chars: int = 3000) -> str:
        if self.log_path is None or not self.log_path.exists():
            return ""
        return self.log_path.read_text(errors="replace")[-chars:]

    @property
    def alive(self) -> bool:
        """The server process runs (after start(), before stop())."""
        return self.process is not None and self.process.poll() is None

    def survivors(self) -> list[ProcessId]:
        """Processes of the recorded tree still running."""
        return [p for p in self.tree if is_running(p)]

    def stop(self, timeout_s: float | None = None) -> None:
        """Stops the server and makes sure no process of its tree is left (TritonStopError otherwise)."""
        if self.process is None:
            return
        timeout_s = self.stop_timeout_s if timeout_s is None else timeout_s
        process = self.process
        if process.poll() is None:
            # Stubs and helpers may have started since start(); record them before the tree unravels.
            self._record_tree()
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(timeout_s)
            except subprocess.TimeoutExpired:
                log.warning("embedded Triton (pid %d) did not stop in %s s; killing it", process.pid, timeout_s)
                process.kill()
                process.wait()
        # After a kill, tritonserver still gets SIGTERM from its PDEATHSIG; give it its exit timeout.
        deadline = time.monotonic() + 10.0
        while self.survivors() and time.monotonic() < deadline:
            time.sleep(0.1)
        for survivor in self.survivors():
            log.warning("killing leftover %s (pid %d)", survivor.name, survivor.pid)
            with contextlib.suppress(ProcessLookupError):
                os.kill(survivor.pid, signal.SIGKILL)
        deadline = time.monotonic() + 5.0
        while self.survivors() and time.monotonic() < deadline:
            time.sleep(0.1)
        left = self.survivors()
        self.process = None
        if self._log is not None:
            self._log.close()
            self._log = None
        if self._own_workspace and self.workspace is not None:
            shutil.rmtree(self.workspace, ignore_errors=True)
        if left:
            raise TritonStopError(f"processes of the embedded Triton survived: {left}")
        log.info("embedded Triton stopped (exit code %s)", process.returncode)

    def __enter__(self) -> EmbeddedTriton:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
