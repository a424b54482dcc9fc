"""Child processes: interpreters of the project's side venvs, children that cannot outlive the process
that started them, and stopping one by pid."""

from __future__ import annotations

import ctypes
import os
import signal
import subprocess
from pathlib import Path

_PR_SET_PDEATHSIG = 1
REPO_ROOT = Path(__file__).resolve().parents[2]
# Resolved here, in the parent: between fork and exec only async-signal-safe work is safe in a process
# with threads, and loading libc there (dlopen, malloc) could find a lock another thread held at the fork.
# It did: Kafka brokers started by the test pool beside a running gateway died at birth with SIGABRT.
_prctl = ctypes.CDLL("libc.so.6", use_errno=True).prctl
_prctl.argtypes = (ctypes.c_int, ctypes.c_ulong)
_prctl.restype = ctypes.c_int


def die_with_parent() -> None:
    """A Popen preexec_fn: the child gets SIGTERM when the thread that started it goes away, however
    it goes (a SIGKILLed launcher included)."""
    _prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)


def find_interpreter(python: Path) -> Path | None:
    """A side venv's interpreter (.venv-triton, .venv-llm): as given, else relative to the working
    directory or the repository root; None when there is none."""
    candidates = [python] if python.is_absolute() else [Path.cwd() / python, REPO_ROOT / python]
    for candidate in candidates:
        if candidate.is_file() and os.access(candidate, os.X_OK):
            # absolute() and not resolve(): the venv's python is a symlink, and following it leaves the venv.
            return candidate.absolute()
    return None


def stop_process(process: subprocess.Popen, timeout_s: float = 10.0) -> None:
    """SIGTERM, then SIGKILL if it has not exited within the timeout; returns once it is reaped."""
    if process.poll() is not None:
        return
    process.send_signal(signal.SIGTERM)
    try:
        process.wait(timeout_s)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()
