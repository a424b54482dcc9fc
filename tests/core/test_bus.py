"""The Kafka bus against a real Apache Kafka broker."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
from pathlib import Path

import pytest
from kafka import KafkaAdminClient, KafkaProducer
from prometheus_client import REGISTRY

from haic.v1 import events_pb2
from services.core import topics
from services.core.bus import DependencyUnavailableError, Event, EventProducer, Output, Worker, ensure_topics
from services.core.settings import Settings
from tests.conftest import REPO_ROOT
from tests.kafka_helpers import read_topic, read_topic_to_end, running, wait_until

pytestmark = pytest.mark.kafka


def upload(video_id: str) -> Output:
    return Output(topics.VIDEOS, video_id, events_pb2.VideoUploaded(video_id=video_id))


def to_candidate(event: Event) -> list[Output]:
    return [Output(topics.CLIPS_CANDIDATE, event.key, events_pb2.ClipCandidate(video_id=event.message.video_id))]


def test_round_trip(kafka_settings: Settings) -> None:
    producer = EventProducer(kafka_settings, "test")
    producer.deliver([upload("vid_a"), upload("vid_b")])
    with running(Worker(kafka_settings, "copier", [topics.VIDEOS], to_candidate)):
        out = read_topic(kafka_settings, topics.CLIPS_CANDIDATE, expected=2)
    assert sorted(out) == [
        ("vid_a", events_pb2.ClipCandidate(video_id="vid_a")),
        ("vid_b", events_pb2.ClipCandidate(video_id="vid_b")),
    ]


def test_producer_refuses_wrong_message_type(kafka_settings: Settings) -> None:
    producer = EventProducer(kafka_settings, "test")
    with pytest.raises(TypeError, match=r"haic\.videos\.v1 carries haic\.v1\.VideoUploaded"):
        producer.send(Output(topics.VIDEOS, "v", events_pb2.ClipCandidate()))


def test_two_consumers_of_one_group_split_the_partitions(kafka_settings: Settings) -> None:
    ensure_topics(kafka_settings)
    seen: dict[str, list[tuple[int, str]]] = {"one": [], "two": []}
    lock = threading.Lock()

    def recorder(name: str):
        def handle(event: Event) -> list[Output]:
            with lock:
                seen[name].append((event.partition, event.key))
            return []

        return handle

    one = Worker(kafka_settings, "one", [topics.VIDEOS], recorder("one"), group_id="shared")
    two = Worker(kafka_settings, "two", [topics.VIDEOS], recorder("two"), group_id="shared")
    with running(one), running(two):
        assert wait_until(lambda: len(one.consumer.assignment()) + len(two.consumer.assignment()) == 3)
        partitions_one = {tp.partition for tp in one.consumer.assignment()}
        partitions_two = {tp.partition for tp in two.consumer.assignment()}
        assert partitions_one and partitions_two and not partitions_one & partitions_two
        keys = [f"vid_{i}" for i in range(30)]
        EventProducer(kafka_settings, "test").deliver(upload(k) for k in keys)
        assert wait_until(lambda: len(seen["one"]) + len(seen["two"]) == 30)
    assert sorted(k for _, k in seen["one"] + seen["two"]) == sorted(keys)
    assert {p for p, _ in seen["one"]} <= partitions_one
    assert {p for p, _ in seen["two"]} <= partitions_two


def test_committed_offsets_resume_after_restart(kafka_settings: Settings) -> None:
    handled: list[str] = []

    def handle(event: Event) -> list[Output]:
        handled.append(event.key)
        return []

    producer = EventProducer(kafka_settings, "test")
    producer.deliver(upload(f"first_{i}") for i in range(3))
    with running(Worker(kafka_settings, "resumer", [topics.VIDEOS], handle)):
        assert wait_until(lambda: len(handled) == 3)
    producer.deliver(upload(f"second_{i}") for i in range(2))
    with running(Worker(kafka_settings, "resumer", [topics.VIDEOS], handle)):
        assert wait_until(lambda: len(handled) == 5)
    assert sorted(handled[3:]) == ["second_0", "second_1"]
    assert len(set(handled)) == 5


def test_failing_handler_retries_then_dead_letters(kafka_settings: Settings) -> None:
    attempts: dict[str, int] = {}

    def flaky(event: Event) -> list[Output]:
        attempts[event.key] = attempts.get(event.key, 0) + 1
        if event.key == "vid_bad":
            raise ValueError(f"cannot handle {event.key}")
        return to_candidate(event)

    EventProducer(kafka_settings, "test").deliver([upload("vid_bad"), upload("vid_good")])
    with running(Worker(kafka_settings, "flaky", [topics.VIDEOS], flaky)):
        letters = read_topic(kafka_settings, topics.DEADLETTER, expected=1)
        outputs = read_topic(kafka_settings, topics.CLIPS_CANDIDATE, expected=1)
    assert attempts["vid_bad"] == kafka_settings.max_attempts == 3
    [(key, letter)] = letters
    assert key == "vid_bad"
    assert letter.original_topic == topics.VIDEOS
    assert letter.error == "cannot handle vid_bad" and letter.error_type == "ValueError"
    assert letter.attempts == 3 and letter.service == "flaky"
    assert events_pb2.VideoUploaded.FromString(letter.payload).video_id == "vid_bad"
    assert [k for k, _ in outputs] == ["vid_good"]


def test_an_unavailable_dependency_is_waited_for_not_dead_lettered(kafka_settings: Settings) -> None:
    settings = kafka_settings.model_copy(update={"retry_backoff_s": 0.05})
    outage = {"failures_left": settings.max_attempts + 2}

    def needs_triton(event: Event) -> list[Output]:
        if outage["failures_left"]:
            outage["failures_left"] -= 1
            raise DependencyUnavailableError("triton at 127.0.0.1:1 is unavailable")
        return to_candidate(event)

    EventProducer(settings, "test").deliver([upload("vid_waits")])
    with running(Worker(settings, "waiter", [topics.VIDEOS], needs_triton)):
        outputs = read_topic(settings, topics.CLIPS_CANDIDATE, expected=1)
    assert [k for k, _ in outputs] == ["vid_waits"]
    assert outage["failures_left"] == 0
    assert read_topic_to_end(settings, topics.DEADLETTER) == []


def test_undecodable_message_is_dead_lettered_at_once(kafka_settings: Settings) -> None:
    ensure_topics(kafka_settings)
    raw = KafkaProducer(bootstrap_servers=kafka_settings.kafka_bootstrap_servers)
    raw.send(topics.VIDEOS, key=b"vid_poison", value=b"\xff\xff not protobuf")
    raw.flush()
    raw.close()
    calls: list[str] = []

    def handle(event: Event) -> list[Output]:
        calls.append(event.key)
        return []

    with running(Worker(kafka_settings, "strict", [topics.VIDEOS], handle)):
        [(key, letter)] = read_topic(kafka_settings, topics.DEADLETTER, expected=1)
    assert key == "vid_poison" and letter.attempts == 1 and letter.error_type == "PoisonMessageError"
    assert letter.payload == b"\xff\xff not protobuf"
    assert calls == []


def test_sigterm_mid_message_loses_nothing_and_duplicates_nothing(kafka_settings: Settings, tmp_path: Path) -> None:
    keys = [f"vid_{i}" for i in range(4)]
    EventProducer(kafka_settings, "test").deliver(upload(k) for k in keys)
    marker = tmp_path / "marker.txt"
    marker.touch()
    command = [sys.executable, "-m", "tests.core.slow_worker", kafka_settings.kafka_bootstrap_servers, str(marker)]
    env = {**os.environ, "PYTHONPATH": str(REPO_ROOT)}

    first = subprocess.Popen(command, cwd=REPO_ROOT, env=env)
    try:
        assert wait_until(lambda: marker.read_text().count("start") >= 2, timeout_s=60)
        first.send_signal(signal.SIGTERM)  # in the middle of the second message
        assert first.wait(30) == 0
    finally:
        first.kill()
    started_before_stop = marker.read_text().count("start")

    second = subprocess.Popen(command, cwd=REPO_ROOT, env=env)
    try:
        outputs = read_topic(kafka_settings, topics.CLIPS_CANDIDATE, expected=len(keys), timeout_s=60)
        second.send_signal(signal.SIGTERM)
        assert second.wait(30) == 0
    finally:
        second.kill()
    assert sorted(k for k, _ in outputs) == keys  # every input exactly once
    # The first worker finished the message it was in when signalled, so nothing was processed twice.
    assert marker.read_text().count("start") == len(keys) >= started_before_stop


def test_a_workers_counters_start_at_zero(kafka_settings: Settings) -> None:
    """Prometheus' rate() misses a series' first step: every counter a worker will move exists from the start."""
    Worker(kafka_settings, "zero-test", [topics.VIDEOS], lambda event: [], output_topics=[topics.CAPTIONS])
    for name, topic in [
        ("haic_messages_consumed_total", topics.VIDEOS),
        ("haic_messages_failed_total", topics.VIDEOS),
        ("haic_messages_dead_lettered_total", topics.VIDEOS),
        ("haic_messages_produced_total", topics.CAPTIONS),
        ("haic_messages_produced_total", topics.DEADLETTER),
    ]:
        assert REGISTRY.get_sample_value(name, {"service": "zero-test", "topic": topic}) == 0.0, (name, topic)


# --- exactly once: outputs and the consumed offset in one transaction (HAIC_KAFKA_TRANSACTIONS) ---


def test_transactional_worker_outputs_once_and_resumes_after_restart(kafka_settings: Settings) -> None:
    settings = kafka_settings.model_copy(update={"kafka_transactions": True})
    producer = EventProducer(settings, "test")
    producer.deliver(upload(f"first_{i}") for i in range(3))
    with running(Worker(settings, "tx-copier", [topics.VIDEOS], to_candidate)) as worker:
        assert worker.producer.transactional
        wait_until(
            lambda: len(read_topic_to_end(settings, topics.CLIPS_CANDIDATE)) == 3, timeout_s=90, what="three outputs"
        )
    producer.deliver(upload(f"second_{i}") for i in range(2))
    with running(Worker(settings, "tx-copier", [topics.VIDEOS], to_candidate)):
        # the second worker first waits for the group to give it the partitions the first one left
        wait_until(
            lambda: len(read_topic_to_end(settings, topics.CLIPS_CANDIDATE)) == 5, timeout_s=90, what="five outputs"
        )
    keys = sorted(key for key, _ in read_topic_to_end(settings, topics.CLIPS_CANDIDATE))
    assert keys == sorted([*(f"first_{i}" for i in range(3)), *(f"second_{i}" for i in range(2))])


def test_aborted_transaction_leaves_no_output_and_the_message_is_redone(kafka_settings: Settings) -> None:
    """A worker that fails between producing its outputs and committing (here: the commit itself fails) leaves
    outputs that read_committed readers never see, and an uncommitted offset: the next worker does the
    message again, and the output is there exactly once."""
    from kafka.errors import KafkaError

    settings = kafka_settings.model_copy(update={"kafka_transactions": True})
    EventProducer(settings, "test").deliver([upload("vid_once")])
    failing = Worker(settings, "tx-failing", [topics.VIDEOS], to_candidate)
    real_commit = failing.producer._producer.commit_transaction
    calls = {"n": 0}

    def commit_fails_once() -> None:
        calls["n"] += 1
        if calls["n"] == 1:
            raise KafkaError("broker went away before the commit")
        real_commit()

    failing.producer._producer.commit_transaction = commit_fails_once
    crashed: list[BaseException] = []

    def run() -> None:
        try:
            failing.run()
        except BaseException as exc:  # noqa: BLE001 - the test inspects the worker's crash
            crashed.append(exc)

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    thread.join(60)
    assert crashed and "transaction of tx-failing aborted" in str(crashed[0])
    assert read_topic_to_end(settings, topics.CLIPS_CANDIDATE) == []

    with running(Worker(settings, "tx-failing", [topics.VIDEOS], to_candidate)):
        wait_until(lambda: read_topic_to_end(settings, topics.CLIPS_CANDIDATE), timeout_s=90, what="the redone output")
    assert [key for key, _ in read_topic_to_end(settings, topics.CLIPS_CANDIDATE)] == ["vid_once"]


def test_a_partition_that_moved_leaves_no_lag_gauge_behind(kafka_settings: Settings) -> None:
    """haic_consumer_lag is per partition held: after a rebalance the member that lost a partition stops
    reporting it (a stale series would add its lag at the time of the move to the stage's lag for good)."""
    ensure_topics(kafka_settings)

    def lag_partitions(service: str) -> set[int]:
        return {
            int(sample.labels["partition"])
            for family in REGISTRY.collect()
            if family.name == "haic_consumer_lag"
            for sample in family.samples
            if sample.labels["service"] == service and sample.labels["topic"] == topics.VIDEOS
        }

    one = Worker(kafka_settings, "lag-one", [topics.VIDEOS], lambda event: [], group_id="lag-shared")
    with running(one):
        assert wait_until(lambda: lag_partitions("lag-one") == {0, 1, 2})
        two = Worker(kafka_settings, "lag-two", [topics.VIDEOS], lambda event: [], group_id="lag-shared")
        with running(two):
            assert wait_until(
                lambda: (
                    two.consumer.assignment() and len(one.consumer.assignment()) + len(two.consumer.assignment()) == 3
                )
            )
            held = {tp.partition for tp in one.consumer.assignment()}
            assert held and held != {0, 1, 2}
            assert wait_until(lambda: lag_partitions("lag-one") == held)
            assert wait_until(lambda: lag_partitions("lag-two") == {0, 1, 2} - held)


def partition_counts(settings: Settings) -> dict[str, int]:
    admin = KafkaAdminClient(bootstrap_servers=settings.kafka_bootstrap_servers)
    try:
        # the topic's name is "name" from Metadata v10 on, "topic" before
        described = admin.describe_topics(list(topics.ALL_TOPICS))
        return {t.get("name") or t["topic"]: len(t["partitions"]) for t in described}
    finally:
        admin.close()


def test_the_pose_input_gets_a_multiple_of_the_pose_workers_partitions() -> None:
    assert [topics.partition_count(topics.CLIPS_CANDIDATE, 3, n) for n in (1, 2, 3, 4, 5)] == [3, 4, 3, 4, 5]
    assert topics.partition_count(topics.VIDEOS, 3, 2) == 3  # the other stages are not split by it


def test_ensure_topics_splits_the_pose_input_evenly_over_the_pose_workers(kafka_settings: Settings) -> None:
    ensure_topics(kafka_settings)  # a data directory first run with one pose worker
    assert set(partition_counts(kafka_settings).values()) == {3}
    two = kafka_settings.model_copy(update={"pose_workers": 2})
    ensure_topics(two)  # then with two: the pose input grows to 4 partitions, nothing else changes
    counts = partition_counts(two)
    assert counts.pop(topics.CLIPS_CANDIDATE) == 4 and set(counts.values()) == {3}
    ensure_topics(kafka_settings)  # back to one worker: partitions are never taken away
    assert partition_counts(kafka_settings)[topics.CLIPS_CANDIDATE] == 4
