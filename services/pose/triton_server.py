"""The embedded Triton: every ONNX model of a repository served by a real tritonserver through PyTriton.

Run by .venv-triton's interpreter (PyTriton 0.7.0 needs numpy<2), with the repository root on
PYTHONPATH; `EmbeddedTriton` (triton_process.py) starts it::

    python -m services.pose.triton_server --repository DIR --grpc-port 8001 --http-port 8000 \
        --metrics-port 8002 --workspace DIR

Each model's config.pbtxt (the same file NVIDIA Triton's onnxruntime backend reads in production)
gives the tensors, max_batch_size, the dynamic batcher's preferred sizes and queue delay, and the
instance count; the graph runs in an onnxruntime session in this process, fed by tritonserver's
Python backend. SIGTERM or SIGINT stops tritonserver through PyTriton's API (SIGINT to tritonserver,
wait, kill), which a bare signal to this process would not do.

Imports from services/ only what .venv-triton has: numpy, onnxruntime, tritonclient, protobuf.
"""

from __future__ import annotations

import argparse
import hashlib
import logging
import os
import shutil
import signal
import sys
import sysconfig
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path
from types import FrameType

import numpy as np
from pytriton.decorators import batch
from pytriton.model_config import DynamicBatcher, ModelConfig, Tensor
from pytriton.triton import Triton, TritonConfig

from services.pose.onnx_backend import check_session, create_session
from services.pose.repository import ModelRepositoryError, latest_version, models, read_config, spec_from_config

log = logging.getLogger("haic.triton_server")

# Triton waits this long for in-flight requests when it stops; the pose client retries anything cut off.
EXIT_TIMEOUT_S = 5
_MAX_SOCKET_PATH = 107  # sun_path of a Unix socket address holds 108 bytes with the terminating NUL


class _StartFailed(BaseException):
    """Raised in the main thread when tritonserver died before the models were ready."""


class _Stop(BaseException):
    """Raised from the signal handler so a stop during start-up aborts start-up too; a BaseException
    (like KeyboardInterrupt) so that no `except Exception` inside PyTriton swallows it."""


def fix_library_path() -> None:
    """Puts this interpreter's lib directory first on LD_LIBRARY_PATH.

    PyTriton's backend stub links libpython3.11.so.1.0 by name; on a pyenv (or any non-system)
    Python the loader would find the system's copy, whose ABI differs, and model load fails with
    `'_thread.RLock' object has no attribute '_recursion_count'`. The stub is a grandchild that
    inherits this environment at its own start, so setting it here (before tritonserver starts) is
    enough; this process needs no re-exec.
    """
    if not sysconfig.get_config_var("Py_ENABLE_SHARED"):
        return
    libdir = sysconfig.get_config_var("LIBDIR")
    if not libdir:
        return
    current = [p for p in os.environ.get("LD_LIBRARY_PATH", "").split(":") if p and p != libdir]
    os.environ["LD_LIBRARY_PATH"] = ":".join([libdir, *current])


def _infer_fn(session: object, input_names: list[str], output_names: list[str]) -> Callable:
    run = session.run  # type: ignore[attr-defined]

    @batch
    def infer(**inputs: np.ndarray) -> dict[str, np.ndarray]:
        feed = {name: np.ascontiguousarray(inputs[name]) for name in input_names}
        return dict(zip(output_names, run(output_names, feed), strict=True))

    return infer


def bind_repository(triton: Triton, repository: Path, threads: int | None) -> list[str]:
    """Binds every model of the repository with the knobs its config.pbtxt states. Returns the names."""
    names = []
    for model_dir in models(repository):
        config = read_config(model_dir)
        spec = spec_from_config(config)
        model_file = latest_version(model_dir)
        session = create_session(model_file, threads)
        check_session(session, spec, model_file)
        batching = config.dynamic_batching
        instances = max((g.count for g in config.instance_group), default=1) or 1
        input_names = [t.name for t in spec.inputs]
        output_names = [t.name for t in spec.outputs]
        # One callable per instance; onnxruntime's Run is thread-safe, so the instances share a session.
        infer = [_infer_fn(session, input_names, output_names) for _ in range(instances)]
        triton.bind(
            model_name=spec.name,
            infer_func=infer if instances > 1 else infer[0],
            inputs=[Tensor(name=t.name, dtype=t.numpy_dtype().type, shape=t.dims) for t in spec.inputs],
            outputs=[Tensor(name=t.name, dtype=t.numpy_dtype().type, shape=t.dims) for t in spec.outputs],
            config=ModelConfig(
                batching=config.max_batch_size > 0,
                max_batch_size=config.max_batch_size,
                batcher=DynamicBatcher(
                    max_queue_delay_microseconds=batching.max_queue_delay_microseconds,
                    preferred_batch_size=list(batching.preferred_batch_size) or None,
                ),
            ),
            strict=True,
        )
        log.info(
            "bound %s from %s: max_batch_size %d, preferred %s, queue delay %d us, %d instance(s)",
            spec.name,
            model_file,
            config.max_batch_size,
            list(batching.preferred_batch_size),
            batching.max_queue_delay_microseconds,
            instances,
        )
        names.append(spec.name)
    return names


def _fresh_workspace(parent: Path, model_names: list[str]) -> Path:
    """PyTriton creates its workspace itself and deletes it on stop; one left by a killed server is removed.

    PyTriton binds Unix sockets named `<workspace>/<model>_0_<instance>-server.sock`, and a socket path
    holds at most 107 bytes: under a deep directory (a pytest tmp_path, a long data_dir) the workspace
    moves to a short one in the temp directory, named after the requested path so a stale one is found.
    """
    workspace = parent.resolve() / "pytriton"
    longest_socket = max(len(f"{name}_0_99-server.sock") for name in model_names)
    if len(str(workspace).encode()) + 1 + longest_socket > _MAX_SOCKET_PATH:
        digest = hashlib.sha256(str(workspace).encode()).hexdigest()[:12]
        short = Path(tempfile.gettempdir()) / f"haic-pytriton-{digest}"
        log.info("workspace path %s is too long for Unix sockets; using %s", workspace, short)
        workspace = short
    if workspace.exists():
        log.warning("removing stale PyTriton workspace %s", workspace)
        shutil.rmtree(workspace)
    workspace.parent.mkdir(parents=True, exist_ok=True)
    return workspace


def _on_signal(signum: int, _frame: FrameType | None) -> None:
    if signum == signal.SIGUSR1:
        raise _StartFailed("tritonserver exited during start-up")
    raise _Stop(signal.Signals(signum).name)


def _tritonserver_children() -> list[int]:
    """Pids of this process's tritonserver children (from /proc; PyTriton does not expose its pid)."""
    me = str(os.getpid())
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            raw = (entry / "stat").read_text()
        except OSError:
            continue
        name, rest = raw[raw.index("(") + 1 : raw.rindex(")")], raw[raw.rindex(")") + 2 :].split()
        if name == "tritonserver" and rest[1] == me:
            found.append(int(entry.name))
    return found


def _watch_start_up(started: threading.Event) -> None:
    """While Triton.run() waits for the server (up to PyTriton's 120 s), notices a tritonserver that
    exited (a port in use, a bad flag) and interrupts the main thread, so the failure shows at once."""
    seen = False
    while not started.wait(0.5):
        alive = bool(_tritonserver_children())
        if seen and not alive:
            os.kill(os.getpid(), signal.SIGUSR1)
            return
        seen = seen or alive


def serve(args: argparse.Namespace) -> int:
    fix_library_path()
    config = TritonConfig(
        grpc_port=args.grpc_port,
        http_port=args.http_port,
        metrics_port=args.metrics_port,
        grpc_address=args.address,
        http_address=args.address,
        metrics_address=args.address,
        exit_timeout_secs=EXIT_TIMEOUT_S,
        strict_readiness=True,
        allow_gpu_metrics=False,
        log_verbose=args.log_verbose,
    )
    model_names = [read_config(d).name for d in models(args.repository)]
    if not model_names:
        raise ModelRepositoryError(f"model repository {args.repository} holds no model; run `haic models build`")
    triton = Triton(config=config, workspace=_fresh_workspace(args.workspace, model_names))
    for signum in (signal.SIGTERM, signal.SIGINT, signal.SIGUSR1):
        signal.signal(signum, _on_signal)
    started = time.monotonic()
    running = threading.Event()
    code = 0
    try:
        names = bind_repository(triton, args.repository, args.threads)
        # Triton.run() must run in this thread: tritonserver's PDEATHSIG fires when its forking thread ends.
        threading.Thread(target=_watch_start_up, args=(running,), daemon=True, name="start-up-watch").start()
        triton.run()
        running.set()
        log.info("serving %s on gRPC %d in %.1f s", names, args.grpc_port, time.monotonic() - started)
        while triton.is_alive():
            time.sleep(1.0)
        log.error("tritonserver or a model proxy exited")
        code = 1
    except _Stop as stop:
        log.info("%s received; stopping tritonserver", stop)
    except _StartFailed as failed:
        log.error("%s; its log is above", failed)
        code = 3
    finally:
        running.set()
        # A second signal must not interrupt the stop itself.
        for signum in (signal.SIGTERM, signal.SIGINT, signal.SIGUSR1):
            signal.signal(signum, signal.SIG_IGN)
        triton.stop()
        log.info("stopped")
    return code


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repository", type=Path, required=True, help="Triton model repository")
    parser.add_argument("--grpc-port", type=int, default=8001)
    parser.add_argument("--http-port", type=int, default=8000)
    parser.add_argument("--metrics-port", type=int, default=8002)
    parser.add_argument("--address", default="127.0.0.1", help="bind address of all three endpoints")
    parser.add_argument("--workspace", type=Path, required=True, help="directory for PyTriton files")
    parser.add_argument("--threads", type=int, default=0, help="onnxruntime intra-op threads (0: one per core)")
    parser.add_argument("--log-verbose", type=int, default=0, help="tritonserver verbose logging level")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:
        return serve(args)
    except ModelRepositoryError as exc:
        log.error("%s", exc)
        return 2


if __name__ == "__main__":
    sys.exit(main())
