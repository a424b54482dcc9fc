"""Child processes: interpreters of the project's side venvs, children that cannot outlive the process
that started them, and stopping one by pid."""

from __future__ import annotations

import os
import signal
import subprocess
from collections.abc import Sequence
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[2]


def with_parent_death_signal(command: Sequence[str]) -> list[str]:
    """The command run under util-linux's `setpriv --pdeathsig TERM`: the child gets SIGTERM when the thread
    that started it goes away, however it goes (a SIGKILLed launcher included). setpriv sets it and execs
    the command in place (same pid). Not a Popen preexec_fn: Python code between fork and exec in a process
    with threads can find a lock another thread held at the fork, and Kafka brokers started by the test pool
    beside a running gateway died at birth with SIGABRT that way. The thread must outlive setpriv's first
    instant: a parent that is already gone when the death signal is set sends none."""
    return ["setpriv", "--pdeathsig", "TERM", "--", *command]


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
