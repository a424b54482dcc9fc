"""The supervising launcher (haic_tools/supervisor.py, haic_tools/launcher.py, `haic up`), with real processes.

The first tests supervise small real processes (a `python -m http.server`, a module that does not exist)
and take seconds; the ones marked e2e launch the whole stack on the real broker and kill its children,
and `haic up` itself, in the middle of a batch.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import textwrap
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from clients.export import run_export
from clients.sdk import HaicClient
from haic_tools.launcher import (
    WORKER_SERVICES,
    LocalStack,
    RunRecord,
    ServiceUnit,
    StackError,
    StackPorts,
    worker_units,
)
from haic_tools.supervisor import LauncherMetrics, RestartPolicy, Supervisor, UnitStatus
from services.core import topics
from services.core.settings import Settings
from services.pose.triton_process import ProcessId, is_running, process_tree
from tests.captioner.two_people import two_people_clip
from tests.kafka_helpers import wait_until
from tests.test_e2e import DESCRIPTIONS, EXPECTATION

REPO_ROOT = Path(__file__).resolve().parents[2]


class Console:
    """Collects the supervisor's announcements, as `haic up` prints them."""

    def __init__(self) -> None:
        self.lines: list[tuple[int, str]] = []
        self._lock = threading.Lock()

    def __call__(self, level: int, line: str) -> None:
        with self._lock:
            self.lines.append((level, line))

    def text(self) -> str:
        with self._lock:
            return "\n".join(line for _, line in self.lines)


def sample(metrics: LauncherMetrics, name: str, **labels: str) -> float | None:
    return metrics.registry.get_sample_value(name, labels or None)


def server_unit(tmp_path: Path, name: str = "server") -> ServiceUnit:
    """A child that runs until stopped: a real HTTP server on a free port."""
    args = ("0", "--bind", "127.0.0.1")
    return ServiceUnit(name, "http.server", lambda: dict(os.environ), tmp_path / f"{name}.log", args)


def crashing_unit(tmp_path: Path, name: str = "crasher") -> ServiceUnit:
    """A child that exits at once, as a service does that fails at import."""
    return ServiceUnit(name, "services.no_such_service", lambda: dict(os.environ), tmp_path / f"{name}.log")


@pytest.fixture
def console() -> Console:
    return Console()


def test_backoff_doubles_up_to_its_cap() -> None:
    policy = RestartPolicy(backoff_s=1.0, backoff_max_s=30.0)
    assert [policy.delay(n) for n in range(1, 8)] == [1, 2, 4, 8, 16, 30, 30]


def test_settings_make_the_launchers_policy(tmp_path: Path) -> None:
    settings = Settings(
        data_dir=tmp_path, restart_backoff_s=0.5, restart_backoff_max_s=4, restart_budget=2, restart_budget_window_s=9
    )
    assert LocalStack(settings, StackPorts.free()).policy == RestartPolicy(0.5, 4.0, 2, 9.0)
    assert Settings().restart_budget == 5 and Settings().restart_budget_window_s == 120.0


def test_a_killed_child_is_restarted_logged_and_counted(tmp_path: Path, console: Console) -> None:
    unit = server_unit(tmp_path)
    metrics = LauncherMetrics()
    supervisor = Supervisor([unit], RestartPolicy(backoff_s=0.1), metrics, announce=console, poll_interval_s=0.05)
    supervisor.start()
    try:
        assert unit.process is not None
        first = unit.process
        first.send_signal(signal.SIGKILL)
        wait_until(lambda: unit.process is not first and supervisor.status("server") is UnitStatus.running, 10)
        assert unit.process.poll() is None
        assert sample(metrics, "haic_launcher_restarts_total", service="server") == 1
        assert sample(metrics, "haic_launcher_service_up", service="server") == 1
        assert sample(metrics, "haic_launcher_services_given_up") == 0
        # One line on the console names the service, its exit code, the restart and its log.
        assert (
            f"server exited with code -9; restart 1 in 0.1 s (1 of 5 deaths allowed within 120 s); log {unit.log_path}"
            in console.text()
        )
        assert "server restarted (restart 1)" in console.text()
        assert unit.log_path.read_text().count("--- haic launcher: starting server") == 2
    finally:
        supervisor.stop()
    assert unit.process.poll() is not None


def test_a_crash_loop_is_given_up_and_the_others_keep_running(tmp_path: Path, console: Console) -> None:
    server, crasher = server_unit(tmp_path), crashing_unit(tmp_path)
    metrics = LauncherMetrics()
    policy = RestartPolicy(backoff_s=0.05, backoff_max_s=0.2, budget=3, window_s=60)
    supervisor = Supervisor([server, crasher], policy, metrics, announce=console, poll_interval_s=0.05)
    supervisor.start()
    try:
        server_process = server.process
        wait_until(lambda: supervisor.given_up() == ["crasher"], 30, "the crasher to be given up")
        time.sleep(0.5)  # nothing restarts it any more
        assert supervisor.status("crasher") is UnitStatus.given_up and crasher.process.poll() is not None
        assert sample(metrics, "haic_launcher_restarts_total", service="crasher") == 2  # 3 deaths: 2 restarts
        assert sample(metrics, "haic_launcher_services_given_up") == 1
        assert sample(metrics, "haic_launcher_service_up", service="crasher") == 0
        # The others keep running, untouched.
        assert server.process is server_process and server_process.poll() is None
        assert supervisor.status("server") is UnitStatus.running
        errors = [line for level, line in console.lines if level >= 40]
        assert errors == [
            f"crasher exited with code 1; it died 3 times within 60 s, so it is left stopped (restarts so far: 2); "
            f"the rest of the stack keeps running; see its log {crasher.log_path}"
        ]
        assert "No module named services.no_such_service" in crasher.log_path.read_text()
        # A given-up unit can be started again by hand (after fixing its cause).
        crasher.module, crasher.args = "http.server", ("0", "--bind", "127.0.0.1")
        supervisor.restart("crasher")
        assert supervisor.status("crasher") is UnitStatus.running and supervisor.given_up() == []
        assert sample(metrics, "haic_launcher_services_given_up") == 0
    finally:
        supervisor.stop()
    assert server.process.poll() is not None and crasher.process.poll() is not None


CHILD_OF_A_KILLED_LAUNCHER = textwrap.dedent(
    """
    import os, sys, time
    from pathlib import Path
    from haic_tools.launcher import ServiceUnit
    from haic_tools.supervisor import RestartPolicy, Supervisor

    log_dir = Path(sys.argv[1])
    unit = ServiceUnit("server", "http.server", lambda: dict(os.environ), log_dir / "server.log", ("0",))
    supervisor = Supervisor([unit], RestartPolicy(backoff_s=0.05), poll_interval_s=0.05)
    supervisor.start()
    first = unit.process
    first.kill()  # the restart is spawned by the supervisor thread too
    while unit.process is first or unit.process is None:
        time.sleep(0.05)
    print(unit.process.pid, flush=True)
    time.sleep(600)
    """
)


def test_children_die_with_a_sigkilled_launcher(tmp_path: Path) -> None:
    """PR_SET_PDEATHSIG fires when the spawning *thread* ends: every child, restarted ones included, is
    spawned by the supervisor thread, which lives as long as the launcher."""
    launcher = subprocess.Popen(
        [sys.executable, "-c", CHILD_OF_A_KILLED_LAUNCHER, str(tmp_path)],
        cwd=REPO_ROOT,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert launcher.stdout is not None
        child_pid = int(launcher.stdout.readline())
        assert _alive(child_pid)
    finally:
        launcher.kill()
        launcher.wait()
    wait_until(lambda: not _alive(child_pid), 10, "the restarted child to die with its launcher")


def _alive(pid: int) -> bool:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat[stat.rindex(")") + 2] not in "ZX"


def test_a_killed_launchers_leftovers_are_stopped_before_a_new_start(tmp_path: Path) -> None:
    """A record left by a launcher that is gone: its children still running are stopped (here one that
    ignores its parent's death, as a child without PDEATHSIG would), and the record goes."""
    leftover = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(600)"])
    try:
        [child] = [p for p in process_tree(leftover.pid) if p.pid == leftover.pid]
        gone_launcher = ProcessId(pid=leftover.pid, start=child.start - 1, name="python")  # same pid, not it
        run = tmp_path / "run"
        run.mkdir()
        record = run / "launcher-1.json"
        record.write_text(json.dumps({"launcher": gone_launcher.__dict__, "children": [child.__dict__]}))
        started = time.monotonic()
        leftovers, live = RunRecord(tmp_path).reap_previous(grace_s=0.3, timeout_s=10)
        assert leftovers == [child] and live == [] and not record.exists()
        assert leftover.wait(1) == -signal.SIGTERM and time.monotonic() - started < 5
    finally:
        leftover.kill()
        leftover.wait()


def test_a_port_held_by_another_program_fails_the_start_at_once(tmp_path: Path) -> None:
    ports = StackPorts.free()
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", ports.http))
        holder.listen()
        started = time.monotonic()
        with pytest.raises(StackError, match=f"ports \\[{ports.http}\\] are in use"):
            LocalStack(Settings(data_dir=tmp_path / "haic"), ports).start()
        assert time.monotonic() - started < 5


def test_pose_workers_are_units_of_the_pose_module_on_ports_of_their_own() -> None:
    assert worker_units(1) == [(name, f"services.{name}") for name in WORKER_SERVICES]
    units = worker_units(3)
    assert [name for name, _ in units] == ["filter", "pose", "pose-2", "pose-3", "captioner", "qagen", "scoring"]
    assert {module for name, module in units if name.startswith("pose")} == {"services.pose"}
    ports = StackPorts.free()
    assert ports.with_pose_workers(1) is ports
    more = ports.with_pose_workers(3)
    assert set(more.services) == set(ports.services) | {"pose-2", "pose-3"}
    assert len(more.all()) == len(set(more.all())) == len(ports.all()) + 4
    assert more.with_pose_workers(3) is more  # a saved layout keeps its ports


# --- the whole stack ------------------------------------------------------------------------------


def launcher_metrics(stack: LocalStack) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    text = httpx.get(f"http://127.0.0.1:{stack.ports.launcher_metrics}/metrics", timeout=5).text
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


def in_flight(port: int) -> float:
    try:
        text = httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=2).text
    except httpx.HTTPError:
        return 0.0
    return sum(
        s.value for f in text_string_to_metric_families(text) for s in f.samples if s.name == "haic_in_flight_messages"
    )


def assert_each_clip_once(client: HaicClient, ids: dict[str, str], videos: dict[str, dict]) -> None:
    for name, video in videos.items():
        expected = EXPECTATION[name]
        clip_ids = [c["clip_id"] for c in video["clips"]]
        assert len(clip_ids) == len(set(clip_ids)) == expected["clips"] == video["clip_count"], (name, video)
        assert video["status"] == expected["status"], (name, video)
        assert all(c["verdict"] in ("accepted", "rejected") for c in video["clips"]), video
    assert client.videos(limit=100)["total"] == len(ids)


def assert_export_complete(settings: Settings, out: Path, videos: dict[str, dict]) -> None:
    """`haic export`: exactly one training example per accepted clip, none twice."""
    report = run_export(settings, out, clips=False, progress=False)
    accepted = sorted(c["clip_id"] for v in videos.values() for c in v["clips"] if c["verdict"] == "accepted")
    train = [json.loads(line) for line in report.train_path.read_text().splitlines()]
    assert sorted(t["clip_id"] for t in train) == accepted, report.describe()
    assert report.train_examples == len(accepted) and report.qa_items > 0, report.describe()


@pytest.fixture
def fast_settings(tmp_path: Path) -> Settings:
    return Settings(data_dir=tmp_path / "haic", api_keys=["launcher-key"], restart_backoff_s=0.5)


@pytest.fixture
def stack(fast_settings: Settings) -> Iterator[LocalStack]:
    with LocalStack(fast_settings, StackPorts.free()) as running:
        yield running


BATCH = [
    "juggle_one_person.mp4",
    "slideshow_three_stills.mp4",
    "camera_pan_static_person.mp4",
    "test_card_no_person.mp4",
]


def kill_when_busy(stack: LocalStack, name: str, timeout_s: float) -> bool:
    """SIGKILLs the worker as soon as it is in the middle of a message (or after timeout_s: the message
    was quicker than the polling); waits for the launcher to have it serving again. True: mid-message."""
    port = stack.ports.services[name].metrics
    deadline = time.monotonic() + timeout_s
    while (busy := in_flight(port) > 0) is False and time.monotonic() < deadline:
        time.sleep(0.02)
    killed = stack.child(name).process
    killed_at = time.monotonic()
    killed.send_signal(signal.SIGKILL)
    wait_until(lambda: stack.child(name).process is not killed and stack._healthy(name), 60, f"{name} back")
    print(
        f"{name} killed {'mid-message' if busy else 'idle'}; serving again {time.monotonic() - killed_at:.1f} s later"
    )
    return busy


@pytest.mark.e2e
@pytest.mark.kafka
@pytest.mark.timeout(600)  # 180 to 220 s on a quiet 2-core machine: room for a busy one
def test_killed_children_are_restarted_and_the_batch_settles_once(
    stack: LocalStack, shared_videos: Path, tmp_path: Path
) -> None:
    """SIGKILL each worker in the middle of a message (pose in the middle of a clip): the launcher restarts
    it, every video settles with each clip once, in the catalog and in `haic export`. Then SIGKILL Triton
    and the broker: they are restarted the same way, and every worker reconnects by itself (a new video
    goes all the way through)."""
    with HaicClient(stack.gateway_url, stack.api_key) as client:
        ids = {n: client.submit(shared_videos / n, description=DESCRIPTIONS[n])["video_id"] for n in BATCH}
        # qagen and scoring answer in milliseconds: polling rarely sees them busy, so they wait less.
        patience = {"filter": 120, "pose": 120, "captioner": 60, "qagen": 15, "scoring": 15}
        mid_message = {name: kill_when_busy(stack, name, patience[name]) for name in WORKER_SERVICES}
        assert mid_message["pose"], "pose was never seen in the middle of a clip"
        videos = {n: client.wait(i, timeout_s=300) for n, i in ids.items()}
        assert_each_clip_once(client, ids, videos)
        metrics = launcher_metrics(stack)
        for name in WORKER_SERVICES:
            assert metrics[("haic_launcher_restarts_total", (("service", name),))] == 1, name

        for unit in ("triton", "broker"):
            process = (stack.triton if unit == "triton" else stack.broker).process  # type: ignore[union-attr]
            killed_at = time.monotonic()
            process.send_signal(signal.SIGKILL)
            wait_until(
                lambda unit=unit, process=process: (
                    stack.supervisor.status(unit) is UnitStatus.running
                    and (stack.triton if unit == "triton" else stack.broker).process is not process
                ),
                120,
                f"{unit} restarted",
            )
            print(f"{unit} running again {time.monotonic() - killed_at:.1f} s after its SIGKILL")
        # Every worker and the gateway reconnect to the restarted broker and Triton by themselves: a new
        # video goes through every stage.
        new_id = client.submit(two_people_clip(), description="Two men juggle footballs")["video_id"]
        new_video = client.wait(new_id, timeout_s=300)
        assert new_video["status"] == "completed" and [c["verdict"] for c in new_video["clips"]] == ["accepted"]
        metrics = launcher_metrics(stack)
        assert metrics[("haic_launcher_restarts_total", (("service", "triton"),))] == 1
        assert metrics[("haic_launcher_restarts_total", (("service", "broker"),))] == 1
        assert metrics[("haic_launcher_services_given_up", ())] == 0
    bus = stack.settings.model_copy(update={"kafka_bootstrap_servers": stack.bootstrap_servers})
    assert_export_complete(bus, tmp_path / "export", {**videos, "two_people": new_video})


@pytest.mark.e2e
@pytest.mark.kafka
def test_a_service_in_a_crash_loop_is_given_up_while_the_stack_keeps_serving(
    tmp_path: Path, shared_videos: Path, console: Console
) -> None:
    """The scoring service fails at start (bad settings): after its restart budget it is left stopped, with
    an error naming its log, and every other service keeps serving (scoring comes after the last curation
    stage, so videos still complete)."""
    settings = Settings(
        data_dir=tmp_path / "haic",
        api_keys=["launcher-key"],
        restart_backoff_s=0.2,
        restart_budget=3,
        restart_budget_window_s=60,
    )
    bad = {"scoring": {"HAIC_SCORING_BOOTSTRAP_SAMPLES": "not-a-number"}}
    with LocalStack(settings, StackPorts.free(), service_env=bad, announce=console, require_all=False) as stack:
        assert stack.given_up() == ["scoring"]
        scoring_log = stack.logs_dir / "scoring.log"
        assert f"see its log {scoring_log}" in console.text()
        assert "scoring_bootstrap_samples" in scoring_log.read_text()  # the cause, in the log named
        assert "given up    scoring" in stack.describe()
        metrics = launcher_metrics(stack)
        assert metrics[("haic_launcher_services_given_up", ())] == 1
        assert metrics[("haic_launcher_restarts_total", (("service", "scoring"),))] == 2
        assert metrics[("haic_launcher_service_up", (("service", "scoring"),))] == 0
        assert metrics[("haic_launcher_service_up", (("service", "pose"),))] == 1
        with HaicClient(stack.gateway_url, stack.api_key) as client:
            video_id = client.submit(shared_videos / "juggle_one_person.mp4", description="A man juggles")["video_id"]
            assert client.wait(video_id, timeout_s=300)["status"] == "completed"
        assert stack.given_up() == ["scoring"]  # still left stopped


def haic_up(data_dir: Path, ports_file: Path, log: Path) -> subprocess.Popen:
    env = {**os.environ, "HAIC_DATA_DIR": str(data_dir), "HAIC_API_KEYS": "launcher-key", "PYTHONUNBUFFERED": "1"}
    with log.open("ab") as out:
        return subprocess.Popen(
            [sys.executable, "-m", "clients.cli", "up", "--ports-file", str(ports_file)],
            cwd=REPO_ROOT,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
        )


def wait_up(launcher: subprocess.Popen, log: Path, runs: int, timeout_s: float = 240) -> None:
    def up() -> bool:
        assert launcher.poll() is None, log.read_text()[-3000:]
        return log.read_text().count("stack is up") >= runs

    wait_until(up, timeout_s, "haic up to be up")


@pytest.mark.e2e
@pytest.mark.kafka
@pytest.mark.timeout(600)  # 180 to 220 s on a quiet 2-core machine: room for a busy one
def test_sigkilled_launcher_then_haic_up_again_loses_nothing(tmp_path: Path, shared_videos: Path) -> None:
    """SIGKILL `haic up` in the middle of a batch, then run it again: it waits for what the killed one
    left, starts cleanly, and every video settles; nothing lost, nothing duplicated, the export complete.
    Needs a broker whose data outlives it (Apache Kafka with its log directory under the data directory)."""
    data_dir, ports_file, log = tmp_path / "haic", tmp_path / "ports.json", tmp_path / "haic-up.log"
    first = haic_up(data_dir, ports_file, log)
    second: subprocess.Popen | None = None
    try:
        wait_up(first, log, runs=1)
        ports = StackPorts.load(ports_file)
        gateway = f"http://127.0.0.1:{ports.http}"
        records = list((data_dir / "run").glob("launcher-*.json"))
        assert len(records) == 1
        children = [ProcessId(**c) for c in json.loads(records[0].read_text())["children"]]
        with HaicClient(gateway, "launcher-key") as client:
            ids = {n: client.submit(shared_videos / n, description=DESCRIPTIONS[n])["video_id"] for n in BATCH}
            wait_until(lambda: any(client.video(i)["clips"] for i in ids.values()), 120, "the batch under way")
        first.send_signal(signal.SIGKILL)
        first.wait()
        restarted_at = time.monotonic()
        second = haic_up(data_dir, ports_file, log)
        wait_up(second, log, runs=2)
        print(f"haic up serving again {time.monotonic() - restarted_at:.1f} s after the SIGKILL")
        assert not [c for c in children if is_running(c)], "a child of the killed launcher outlived it"
        with HaicClient(gateway, "launcher-key") as client:
            videos = {n: client.wait(i, timeout_s=300) for n, i in ids.items()}
            assert_each_clip_once(client, ids, videos)
        settings = Settings(data_dir=data_dir, kafka_bootstrap_servers=f"127.0.0.1:{ports.broker}")
        assert_export_complete(settings, tmp_path / "export", videos)
    finally:
        for launcher in (first, second):
            if launcher is not None and launcher.poll() is None:
                launcher.send_signal(signal.SIGTERM)
                launcher.wait(120)
    assert second is not None and second.returncode == 0, log.read_text()[-3000:]
    assert not list((data_dir / "run").glob("launcher-*.json"))


def held_partitions(metrics_port: int, topic: str) -> set[int]:
    """The partitions of `topic` a worker reports lag for: those its consumer holds now."""
    text = httpx.get(f"http://127.0.0.1:{metrics_port}/metrics", timeout=5).text
    return {
        int(s.labels["partition"])
        for family in text_string_to_metric_families(text)
        for s in family.samples
        if s.name == "haic_consumer_lag" and s.labels["topic"] == topic
    }


@pytest.mark.e2e
@pytest.mark.kafka
@pytest.mark.timeout(600)
def test_two_pose_workers_split_the_candidate_partitions_and_the_batch_settles_once(
    tmp_path: Path, shared_videos: Path
) -> None:
    settings = Settings(data_dir=tmp_path / "haic", api_keys=["launcher-key"], pose_workers=2)
    with LocalStack(settings, StackPorts.free()) as stack, HaicClient(stack.gateway_url, stack.api_key) as client:
        assert "pose-2" in stack.describe()
        ids = {name: client.submit(shared_videos / name, description=DESCRIPTIONS[name])["video_id"] for name in BATCH}
        videos = {name: client.wait(video_id, timeout_s=300) for name, video_id in ids.items()}
        assert_each_clip_once(client, ids, videos)
        held = {
            name: held_partitions(stack.ports.services[name].metrics, topics.CLIPS_CANDIDATE)
            for name in ("pose", "pose-2")
        }
    # One consumer group: each worker holds its own share of haic.clips.candidate.v1, together all of it.
    assert held["pose"] and held["pose-2"] and not held["pose"] & held["pose-2"], held
    # 4 partitions (HAIC_TOPIC_PARTITIONS 3 rounded up to a multiple of the workers): two each, not 2:1.
    assert len(held["pose"]) == len(held["pose-2"]) == 2 and held["pose"] | held["pose-2"] == {0, 1, 2, 3}, held
