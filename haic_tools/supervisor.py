"""Supervision of the local stack's children: restart with backoff, a death budget, metrics.

One mechanism for every kind of child (the worker services, the gateway, the embedded Triton and the
embedded broker): each is a `Unit` (a name, start, exit code, stop, a log file) and one `Supervisor`
starts, watches and restarts them all.

A unit that dies is started again after a backoff that doubles with each death inside the budget
window (1, 2, 4 ... s, at most `backoff_max_s`); the death is announced (a console line naming the
unit, its exit code, the restart count and its log) and counted in `haic_launcher_restarts_total`.
A unit that dies `budget` times within `window_s` is left stopped (`haic_launcher_services_given_up`)
and the others keep running.

Why one thread does every start: PR_SET_PDEATHSIG (services.core.process.with_parent_death_signal) fires when
the *thread* that spawned a child exits, not the process. The supervisor's thread starts every child,
the first time and on each restart, and lives until the stack stops, so a child dies with the launcher
however the launcher ends, and never with a short-lived helper thread.
"""

from __future__ import annotations

import collections
import concurrent.futures
import functools
import logging
import queue
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path
from typing import Protocol

from prometheus_client import CollectorRegistry, Counter, Gauge

log = logging.getLogger(__name__)


class SupervisorError(RuntimeError):
    """The supervisor thread is not running (it failed, or was never started)."""


class Unit(Protocol):
    """What the supervisor needs of a child: every kind of child has this shape."""

    name: str

    @property
    def log_path(self) -> Path | None: ...

    def start(self) -> None:
        """Starts the child; returns once it runs (a unit may wait for readiness); raises when it cannot."""

    def exit_code(self) -> int | None:
        """None while the child runs; its exit code once it has exited (negative: killed by that signal)."""

    def pids(self) -> list[int]:
        """Processes of the child now running (recorded so a later launcher can find leftovers)."""

    def begin_stop(self) -> None:
        """Asks the child to stop without waiting (units stop together, then each is waited for)."""

    def stop(self, timeout_s: float) -> None:
        """Stops the child and reaps it (and whatever it left); a no-op when it is not running."""


@dataclass(frozen=True)
class RestartPolicy:
    backoff_s: float = 1.0  # delay before the first restart; doubles with each death inside the window
    backoff_max_s: float = 30.0
    budget: int = 5  # deaths within window_s after which the unit is left stopped
    window_s: float = 120.0

    def delay(self, deaths_in_window: int) -> float:
        return min(self.backoff_s * 2 ** max(deaths_in_window - 1, 0), self.backoff_max_s)


class UnitStatus(StrEnum):
    pending = "pending"  # not started yet
    running = "running"
    waiting = "waiting"  # died; restarts when its backoff has passed
    given_up = "given_up"  # died too often; left stopped
    stopped = "stopped"  # stopped with the stack


@dataclass
class UnitState:
    unit: Unit
    status: UnitStatus = UnitStatus.pending
    restarts: int = 0
    last_exit: int | str | None = None  # exit code, or why the (re)start failed
    restart_at: float = 0.0
    deaths: collections.deque[float] = field(default_factory=collections.deque)


class LauncherMetrics:
    """The launcher's own metrics, in a registry per stack (tests run several stacks in one process)."""

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry or CollectorRegistry()
        self.restarts = Counter(
            "haic_launcher_restarts_total",
            "Children the launcher started again after they died",
            ["service"],
            registry=self.registry,
        )
        self.given_up = Gauge(
            "haic_launcher_services_given_up",
            "Children that died too often and are left stopped",
            registry=self.registry,
        )
        self.up = Gauge(
            "haic_launcher_service_up", "1 while the child runs, 0 otherwise", ["service"], registry=self.registry
        )


Announce = Callable[[int, str], None]  # (logging level, one line for the console)


def _log_announce(level: int, line: str) -> None:
    log.log(level, line)


class Supervisor:
    """Starts the units in order on its own thread, then restarts those that die (see the module doc)."""

    def __init__(
        self,
        units: Sequence[Unit],
        policy: RestartPolicy | None = None,
        metrics: LauncherMetrics | None = None,
        announce: Announce = _log_announce,
        poll_interval_s: float = 0.2,
        on_change: Callable[[], None] | None = None,
    ) -> None:
        self.policy = policy or RestartPolicy()
        self.metrics = metrics or LauncherMetrics()
        self.announce = announce
        self.poll_interval_s = poll_interval_s
        self.on_change = on_change  # after every start and death (the launcher records its children's pids)
        self.states = {unit.name: UnitState(unit) for unit in units}
        self._commands: queue.Queue[tuple[str, str, concurrent.futures.Future[None]]] = queue.Queue()
        self._thread: threading.Thread | None = None
        self._stop_timeout_s = 20.0
        for name in self.states:
            self.metrics.up.labels(name).set(0)
            self.metrics.restarts.labels(name)  # every series exists from the start, at 0

    # --- the caller's side -------------------------------------------------------------------------

    def start(self) -> None:
        """Starts every unit in order on the supervisor thread; returns once all were started. A unit whose
        first start raises stops the ones already started and the error is raised here: a first start that
        fails is a configuration error (missing models, a port in use), not a crash to retry."""
        started: concurrent.futures.Future[None] = concurrent.futures.Future()
        self._thread = threading.Thread(target=self._run, args=(started,), name="haic-supervisor", daemon=True)
        self._thread.start()
        started.result()

    def stop(self, timeout_s: float = 20.0) -> None:
        """Stops every unit (in reverse start order) and the supervisor thread."""
        if self._thread is None:
            return
        if self._thread.is_alive():
            self._stop_timeout_s = timeout_s
            self._call("stop", "").result()
            self._thread.join()
        self._thread = None

    def restart(self, name: str) -> None:
        """Stops the unit if it runs and starts it now (no backoff, not counted as a death); revives a
        given-up unit."""
        self._call("restart", name).result()

    @property
    def alive(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def status(self, name: str) -> UnitStatus:
        return self.states[name].status

    def given_up(self) -> list[str]:
        return [name for name, state in self.states.items() if state.status is UnitStatus.given_up]

    def _call(self, command: str, name: str) -> concurrent.futures.Future[None]:
        if not self.alive:
            raise SupervisorError("the supervisor thread is not running")
        done: concurrent.futures.Future[None] = concurrent.futures.Future()
        self._commands.put((command, name, done))
        return done

    # --- the supervisor thread ---------------------------------------------------------------------

    def _run(self, started: concurrent.futures.Future[None]) -> None:
        try:
            for state in self.states.values():
                state.unit.start()
                self._mark_running(state)
        except BaseException as exc:  # noqa: BLE001 - handed to the caller of start(), which raises it
            self._stop_all(timeout_s=20.0)
            started.set_exception(exc)
            return
        started.set_result(None)
        while True:
            try:
                command, name, done = self._commands.get(timeout=self.poll_interval_s)
            except queue.Empty:
                command, name, done = "", "", None
            if command == "stop":
                try:
                    self._stop_all(self._stop_timeout_s)
                finally:
                    assert done is not None
                    done.set_result(None)
                return
            if command == "restart":
                assert done is not None
                try:
                    self._restart_now(self.states[name])
                    done.set_result(None)
                except BaseException as exc:  # noqa: BLE001 - handed to the caller of restart(), which raises it
                    done.set_exception(exc)
            # A bug here must not end the thread: its end would SIGTERM every child (PDEATHSIG).
            _guarded("watching the children", self._watch)

    def _watch(self) -> None:
        now = time.monotonic()
        for state in self.states.values():
            if state.status is UnitStatus.running:
                code = state.unit.exit_code()
                if code is not None:
                    self._died(state, code)
            elif state.status is UnitStatus.waiting and now >= state.restart_at:
                state.restarts += 1
                self.metrics.restarts.labels(state.unit.name).inc()
                try:
                    state.unit.start()
                except Exception as exc:  # noqa: BLE001 - a failed start counts as a death, under the same budget
                    self._died(state, f"start failed: {exc}")
                    continue
                self._mark_running(state)
                self.announce(logging.WARNING, f"{state.unit.name} restarted (restart {state.restarts})")

    def _died(self, state: UnitState, code: int | str) -> None:
        unit, now = state.unit, time.monotonic()
        state.last_exit = code
        self.metrics.up.labels(unit.name).set(0)
        # Reaps what the child left (Triton's server tree, the broker's pid file).
        _guarded(f"cleaning up after {unit.name}", lambda: unit.stop(timeout_s=10.0))
        state.deaths.append(now)
        while state.deaths and now - state.deaths[0] > self.policy.window_s:
            state.deaths.popleft()
        deaths = len(state.deaths)
        what = f"exited with code {code}" if isinstance(code, int) else code
        if deaths >= self.policy.budget:
            state.status = UnitStatus.given_up
            self.metrics.given_up.set(len(self.given_up()))
            self.announce(
                logging.ERROR,
                f"{unit.name} {what}; it died {deaths} times within {self.policy.window_s:g} s, so it is left "
                f"stopped (restarts so far: {state.restarts}); the rest of the stack keeps running; "
                f"see its log {unit.log_path}",
            )
        else:
            delay = self.policy.delay(deaths)
            state.status = UnitStatus.waiting
            state.restart_at = now + delay
            self.announce(
                logging.WARNING,
                f"{unit.name} {what}; restart {state.restarts + 1} in {delay:g} s "
                f"({deaths} of {self.policy.budget} deaths allowed within {self.policy.window_s:g} s); "
                f"log {unit.log_path}",
            )
        self._changed()

    def _restart_now(self, state: UnitState) -> None:
        if state.status is UnitStatus.running:
            state.unit.begin_stop()
            state.unit.stop(timeout_s=20.0)
        if state.status is UnitStatus.given_up:
            state.deaths.clear()
        state.restarts += 1
        self.metrics.restarts.labels(state.unit.name).inc()
        try:
            state.unit.start()
        except Exception as exc:
            self._died(state, f"start failed: {exc}")
            raise
        self._mark_running(state)
        self.metrics.given_up.set(len(self.given_up()))

    def _mark_running(self, state: UnitState) -> None:
        state.status = UnitStatus.running
        self.metrics.up.labels(state.unit.name).set(1)
        self._changed()

    def _stop_all(self, timeout_s: float) -> None:
        """Reverse start order. Every unit is asked to stop first and then each is waited for, so the
        workers wind down together, and the broker they commit to stops last."""
        states = list(reversed(self.states.values()))
        for state in states:
            _guarded(f"stopping {state.unit.name}", state.unit.begin_stop)
        deadline = time.monotonic() + timeout_s
        for state in states:
            remaining = max(1.0, deadline - time.monotonic())
            _guarded(f"stopping {state.unit.name}", functools.partial(state.unit.stop, timeout_s=remaining))
            if state.status is not UnitStatus.given_up:
                state.status = UnitStatus.stopped
            self.metrics.up.labels(state.unit.name).set(0)
        self._changed()

    def _changed(self) -> None:
        if self.on_change is not None:
            _guarded("recording the children", self.on_change)


def _guarded(what: str, action: Callable[[], object]) -> None:
    """Runs a stop or clean-up step; its failure is logged: one unit's failure must not keep the
    supervisor from stopping or restarting the others."""
    try:
        action()
    except Exception as exc:  # noqa: BLE001 - see the docstring
        log.warning("%s failed: %s", what, exc)
