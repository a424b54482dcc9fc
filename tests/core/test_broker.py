"""The embedded Apache Kafka broker: durable across restarts and crashes, formatted once, readable by kcat,
and the pipeline's topics created with the retention that keeps the dataset."""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
from kafka import KafkaAdminClient

from haic.v1 import events_pb2
from services.core import topics
from services.core.broker import BrokerStartError, EmbeddedBroker, free_port, new_cluster_id
from services.core.bus import Event, EventProducer, Output, Worker, ensure_topics, read_topic_to_end, topic_configs
from services.core.settings import Settings
from tests.kafka_helpers import running, wait_until

pytestmark = pytest.mark.kafka


def _caption(clip_id: str) -> events_pb2.Caption:
    return events_pb2.Caption(
        video_id="v1", span=events_pb2.ClipSpan(clip_id=clip_id), text=f"A man juggles. ({clip_id})"
    )


def _produce_captions(settings: Settings, clip_ids: list[str]) -> None:
    producer = EventProducer(settings, "test")
    try:
        producer.deliver([Output(topics.CAPTIONS, "v1", _caption(clip_id)) for clip_id in clip_ids])
    finally:
        producer.close()


@pytest.fixture
def own_broker(tmp_path: Path) -> Iterator[EmbeddedBroker]:
    """A broker whose life the test controls (the shared fixture's brokers are thrown away)."""
    broker = EmbeddedBroker(free_port(), data_dir=tmp_path / "kafka", log_path=tmp_path / "broker.log", heap_mb=256)
    yield broker
    broker.kill()


def test_records_and_offsets_survive_a_restart_and_a_crash(own_broker: EmbeddedBroker, tmp_path: Path) -> None:
    own_broker.start()
    cluster_id = own_broker.cluster_id
    settings = Settings(data_dir=tmp_path / "haic", kafka_bootstrap_servers=own_broker.bootstrap_servers)
    ensure_topics(settings)
    _produce_captions(settings, ["c1", "c2"])

    own_broker.stop()  # controlled shutdown
    own_broker.start()
    _produce_captions(settings, ["c3"])
    own_broker.kill()  # as a crash or a power cut of the process would
    own_broker.start()

    assert own_broker.cluster_id == cluster_id, "a formatted log directory is not formatted again"
    read = [message.span.clip_id for _key, message in read_topic_to_end(settings, topics.CAPTIONS)]
    assert sorted(read) == ["c1", "c2", "c3"]


def test_committed_offsets_survive_a_restart(own_broker: EmbeddedBroker, tmp_path: Path) -> None:
    """A worker that consumed before the restart does not consume the same messages again after it."""
    own_broker.start()
    settings = Settings(
        data_dir=tmp_path / "haic", kafka_bootstrap_servers=own_broker.bootstrap_servers, retry_backoff_s=0.05
    )
    ensure_topics(settings)
    _produce_captions(settings, ["c1", "c2"])
    seen: list[str] = []

    def handle(event: Event) -> list[Output]:
        seen.append(event.message.span.clip_id)
        return []

    with running(Worker(settings, "reader", [topics.CAPTIONS], handle)):
        wait_until(lambda: len(seen) == 2, what="the first two captions")
    own_broker.stop()
    own_broker.start()
    _produce_captions(settings, ["c3"])
    with running(Worker(settings, "reader", [topics.CAPTIONS], handle)):
        wait_until(lambda: len(seen) >= 3, what="the caption produced after the restart")
    assert seen == ["c1", "c2", "c3"]


def test_formatting_is_idempotent(own_broker: EmbeddedBroker) -> None:
    own_broker.start()
    config = own_broker.data_dir / "server.properties"
    cluster_id = own_broker.cluster_id
    assert cluster_id
    own_broker.format(config)  # formatted already: nothing happens, even while the broker runs
    assert own_broker.cluster_id == cluster_id
    own_broker.stop()
    own_broker.start()
    assert own_broker.cluster_id == cluster_id


def test_a_second_broker_on_the_same_data_is_refused_not_corrupting(own_broker: EmbeddedBroker, tmp_path: Path) -> None:
    own_broker.start()
    twin = EmbeddedBroker(free_port(), data_dir=own_broker.data_dir, heap_mb=256)
    with pytest.raises(BrokerStartError, match="still runs"):
        twin._wait_previous_instance(timeout_s=1.0)
    assert own_broker.alive


def test_cluster_ids_never_start_with_a_dash() -> None:
    ids = [new_cluster_id() for _ in range(2000)]
    assert all(len(cluster_id) == 22 and not cluster_id.startswith("-") for cluster_id in ids)


def test_dataset_topics_keep_everything_and_dead_letters_expire(broker: EmbeddedBroker, tmp_path: Path) -> None:
    settings = Settings(
        data_dir=tmp_path / "haic", kafka_bootstrap_servers=broker.bootstrap_servers, deadletter_retention_days=2
    )
    # a dataset topic that someone created with the broker's default retention (seven days) beforehand
    admin = KafkaAdminClient(bootstrap_servers=broker.bootstrap_servers)
    try:
        admin.create_topics({topics.CAPTIONS: {"num_partitions": 1, "replication_factor": 1}})
    finally:
        admin.close()
    assert "retention.ms" not in topic_configs(settings, [topics.CAPTIONS])[topics.CAPTIONS]

    ensure_topics(settings)
    # a change of a topic's configuration reaches the broker's metadata cache a moment after it is acknowledged
    configs = wait_until(
        lambda: (
            (found := topic_configs(settings, topics.ALL_TOPICS))
            and all("retention.ms" in found[name] for name in topics.ALL_TOPICS)
            and found
        ),
        what="every topic's retention",
    )
    for name in topics.DATASET_TOPICS:
        assert configs[name]["retention.ms"] == "-1", name
        assert configs[name]["retention.bytes"] == "-1", name
    assert configs[topics.DEADLETTER]["retention.ms"] == str(2 * 86_400_000)


@pytest.mark.skipif(shutil.which("kcat") is None, reason="Debian's kcat is not installed (make system-deps)")
def test_kcat_lists_the_topics_and_reads_a_caption(broker: EmbeddedBroker, tmp_path: Path) -> None:
    """The tool people reach for speaks to the embedded broker: it is Apache Kafka, not a look-alike."""
    settings = Settings(data_dir=tmp_path / "haic", kafka_bootstrap_servers=broker.bootstrap_servers)
    ensure_topics(settings)
    _produce_captions(settings, ["c1"])

    listing = subprocess.run(
        ["kcat", "-b", broker.bootstrap_servers, "-L"], capture_output=True, text=True, timeout=30, check=True
    ).stdout
    for name in topics.ALL_TOPICS:
        assert f'topic "{name}"' in listing

    payload = subprocess.run(
        ["kcat", "-b", broker.bootstrap_servers, "-C", "-t", topics.CAPTIONS, "-o", "beginning", "-e", "-c", "1",
         "-f", "%k\t%S\n"],
        capture_output=True, timeout=30, check=True,
    ).stdout  # fmt: skip
    key, size = payload.decode().strip().split("\t")
    assert key == "v1"
    raw = subprocess.run(
        ["kcat", "-b", broker.bootstrap_servers, "-C", "-t", topics.CAPTIONS, "-o", "beginning", "-e", "-c", "1",
         "-f", "%s"],
        capture_output=True, timeout=30, check=True,
    ).stdout  # fmt: skip
    assert len(raw) == int(size)
    caption = events_pb2.Caption.FromString(raw)
    assert caption.span.clip_id == "c1" and caption.text.startswith("A man juggles")
