"""The Kafka event bus on kafka-python: typed protobuf producer and consumer, and the Worker loop.

Delivery contract (DESIGN.md): at least once per message, effectively once in results.
- One consumer group per service; offsets are committed manually, and only after every output of a
  message has been acknowledged by the broker.
- A failing handler is retried with exponential backoff up to `max_attempts`; then the message goes
  to haic.deadletter.v1 with the error, and the worker moves on. A message that cannot be decoded is
  dead-lettered at once (retrying cannot help).
- SIGTERM or SIGINT: the in-flight message finishes, its offset is committed, the consumer leaves
  its group and the producer flushes. A second signal exits at once and hands the message back
  (uncommitted, so another member of the group redelivers it).
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import threading
import time
import uuid
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Protocol

from google.protobuf.message import DecodeError, Message
from google.protobuf.timestamp_pb2 import Timestamp
from kafka import KafkaAdminClient, KafkaConsumer, KafkaProducer, TopicPartition
from kafka.admin import ConfigResource, ConfigResourceType, NewPartitions
from kafka.consumer.subscription_state import ConsumerRebalanceListener
from kafka.errors import InvalidPartitionsError, KafkaError, TopicAlreadyExistsError
from kafka.structs import OffsetAndMetadata

from haic.v1 import events_pb2
from services.core import metrics, topics
from services.core.logs import log_context
from services.core.settings import KafkaSettings
from services.core.topology import StageSpec

log = logging.getLogger(__name__)

TYPE_HEADER = "haic-type"
_DEPENDENCY_MAX_WAIT_S = 30.0


class PoisonMessageError(Exception):
    """The message can never be processed (undecodable, or invalid content): dead-letter without retrying."""


class ClipPoisonError(PoisonMessageError):
    """A message about one clip that no retry can process; the error names the clip."""

    def __init__(self, clip_id: str, message: str) -> None:
        super().__init__(f"clip {clip_id or '<no id>'}: {message}")
        self.clip_id = clip_id


class DependencyUnavailableError(RuntimeError):
    """A service the handler needs (e.g. Triton) is unreachable: the message is fine, so it is neither
    dead-lettered nor committed; the worker waits and tries it again until the dependency is back."""


class _HandBack(Exception):
    """Stop was requested while a message waited on a dependency: leave it uncommitted for the next owner."""


DELIVERY_TIMEOUT_S = 30


class OutputDeliveryError(RuntimeError):
    """The broker did not acknowledge an output."""


@dataclass(frozen=True)
class Event:
    """A decoded message with where it came from."""

    topic: str
    partition: int
    offset: int
    key: str
    message: Message
    headers: dict[str, bytes] = field(default_factory=dict)


@dataclass(frozen=True)
class Output:
    """A message a handler wants produced; the key is the video id."""

    topic: str
    key: str
    message: Message


Handler = Callable[[Event], Iterable[Output]]


class OffsetStore(Protocol):
    """Where a sink keeps its own offsets (e.g. the catalog, in the same transaction as its writes)."""

    def load_offset(self, topic: str, partition: int) -> int | None: ...


def client_config(settings: KafkaSettings, service: str) -> dict:
    return {"bootstrap_servers": settings.kafka_bootstrap_servers.split(","), "client_id": f"haic-{service}"}


def ensure_topics(settings: KafkaSettings, names: Iterable[str] = topics.ALL_TOPICS) -> None:
    """Creates the topics with the configured partitions and their retention (topics.topic_config); a topic
    that exists keeps its partitions and gets its retention set, so one created with the broker's
    default (seven days) stops expiring the dataset. A cluster that refuses the change is logged, not fatal."""
    wanted = {name: topics.topic_config(name, settings.deadletter_retention_ms) for name in names}
    partitions = {
        name: topics.partition_count(name, settings.topic_partitions, settings.pose_workers) for name in names
    }
    admin = KafkaAdminClient(**client_config(settings, "admin"))
    try:
        existing = set(admin.list_topics())
        missing = {
            name: {
                "num_partitions": partitions[name],
                "replication_factor": settings.topic_replication_factor,
                "configs": config,
            }
            for name, config in wanted.items()
            if name not in existing
        }
        if missing:
            # another service may create them between list and create
            with contextlib.suppress(TopicAlreadyExistsError):
                admin.create_topics(missing, wait_for_metadata=True)
        present = [name for name in wanted if name in existing]
        if settings.pose_workers > 1 and topics.CLIPS_CANDIDATE in present:
            _grow_for_pose_workers(admin, partitions[topics.CLIPS_CANDIDATE])
        if present:
            try:
                admin.alter_configs(
                    [ConfigResource(ConfigResourceType.TOPIC, name, configs=wanted[name]) for name in present]
                )
            except KafkaError as exc:
                log.warning("could not set the retention of %s: %s", ", ".join(present), exc)
    finally:
        admin.close()


class ConsumerLag:
    """How far each stage's consumer group is behind its input topic (messages produced, not yet committed).

    One admin client and one group-less consumer, kept open and shared by the callers (under a lock): the
    gateway answers GET /v1/backlog with it, which `haic ingest` polls to hold back when the pipeline lags.
    A group that never committed on a partition is behind by everything on it. The stages and their groups
    come from the topology.
    """

    def __init__(self, settings: KafkaSettings, stages: Sequence[StageSpec]) -> None:
        self.stages = tuple(stages)
        self._settings = settings
        self._lock = threading.Lock()
        self._admin: KafkaAdminClient | None = None
        self._consumer: KafkaConsumer | None = None

    def lag(self) -> dict[str, int]:
        """{stage: messages behind}; raises KafkaError when the broker cannot tell."""
        with self._lock:
            if self._admin is None or self._consumer is None:
                self._admin = KafkaAdminClient(**client_config(self._settings, "lag-admin"))
                self._consumer = KafkaConsumer(**client_config(self._settings, "lag"), enable_auto_commit=False)
            wanted: dict[StageSpec, list[TopicPartition]] = {}
            for stage in self.stages:
                partitions = self._consumer.partitions_for_topic(stage.input_topic) or set()
                wanted[stage] = [TopicPartition(stage.input_topic, p) for p in sorted(partitions)]
            ends = self._consumer.end_offsets([tp for tps in wanted.values() for tp in tps])
            groups = {stage.consumer_group: tps for stage, tps in wanted.items() if tps}
            committed = self._admin.list_group_offsets(groups) if groups else {}
            lags: dict[str, int] = {}
            for stage, tps in wanted.items():
                done = committed.get(stage.consumer_group, {})
                lags[stage.name] = sum(
                    max(0, ends.get(tp, 0) - (done[tp].offset if tp in done and done[tp].offset >= 0 else 0))
                    for tp in tps
                )
            return lags

    def close(self) -> None:
        with self._lock:
            if self._consumer is not None:
                self._consumer.close()
            if self._admin is not None:
                self._admin.close()
            self._admin = self._consumer = None


_PARTITIONS_VISIBLE_S = 15.0
# A worker that holds no partitions this long (after its first join, or after losing them) joins its group
# again; the wait doubles with each rejoin that did not bring partitions, up to the maximum.
_UNASSIGNED_REJOIN_S = 30.0
_UNASSIGNED_REJOIN_MAX_S = 480.0


def _grow_for_pose_workers(admin: KafkaAdminClient, wanted: int) -> None:
    """Adds partitions to an existing pose input topic that has fewer than the pose workers need (a data
    directory first run with fewer workers). Only this topic grows: its clips are independent of each other,
    and only new videos map to the new partitions; every other topic keeps the count it was created with."""
    described = admin.describe_topics([topics.CLIPS_CANDIDATE])
    have = len(described[0]["partitions"]) if described else 0
    if 0 < have < wanted:
        log.warning("%s has %d partitions; adding %d for the pose workers", topics.CLIPS_CANDIDATE, have, wanted - have)
        with contextlib.suppress(InvalidPartitionsError):  # another launcher grew it in between
            admin.create_partitions({topics.CLIPS_CANDIDATE: NewPartitions(total_count=wanted)})
        # Returns once the metadata shows them: the pose workers started next must find every partition.
        deadline = time.monotonic() + _PARTITIONS_VISIBLE_S
        while time.monotonic() < deadline:
            described = admin.describe_topics([topics.CLIPS_CANDIDATE])
            if described and len(described[0]["partitions"]) >= wanted:
                return
            time.sleep(0.1)
        log.warning("%s: %d partitions not visible after %.0f s", topics.CLIPS_CANDIDATE, wanted, _PARTITIONS_VISIBLE_S)


class ClusterIdError(RuntimeError):
    """The Kafka cluster did not say its id (unreachable, or a broker too old to tell)."""


def kafka_cluster_id(settings: KafkaSettings) -> str:
    """The id of the Kafka cluster at HAIC_KAFKA_BOOTSTRAP_SERVERS: it changes when the broker's data is
    deleted or the bootstrap servers point at another cluster, and with it every offset."""
    admin = KafkaAdminClient(**client_config(settings, "admin"))
    try:
        cluster_id = admin.describe_cluster().get("cluster_id")
    except KafkaError as exc:
        raise ClusterIdError(f"could not ask {settings.kafka_bootstrap_servers} for its cluster id: {exc}") from exc
    finally:
        admin.close()
    if not cluster_id:
        raise ClusterIdError(f"{settings.kafka_bootstrap_servers} did not say its cluster id")
    return str(cluster_id)


def topic_configs(settings: KafkaSettings, names: Iterable[str]) -> dict[str, dict[str, str]]:
    """The settings each topic has apart from the broker's defaults, as the broker reports them."""
    admin = KafkaAdminClient(**client_config(settings, "admin"))
    try:
        described = admin.describe_configs([ConfigResource(ConfigResourceType.TOPIC, name) for name in names])
    finally:
        admin.close()
    by_name: dict[str, dict[str, dict[str, object]]] = next(iter(described.values()), {}) if described else {}
    return {name: {key: str(data.get("value")) for key, data in entries.items()} for name, entries in by_name.items()}


def decode(topic: str, payload: bytes) -> Message:
    message = topics.message_type(topic)()
    try:
        message.ParseFromString(payload)
    except DecodeError as exc:
        raise PoisonMessageError(f"payload is not a {message.DESCRIPTOR.full_name}: {exc}") from exc
    return message


class TopicReadError(RuntimeError):
    """A topic could not be read to its end (broker unreachable or not delivering)."""


def read_topic_to_end(settings: KafkaSettings, topic: str, timeout_s: float = 60.0) -> list[tuple[str, Message]]:
    """Every message on the topic up to its end offsets at the time of the call, as (key, decoded
    message), without a consumer group: what `haic eval` and `haic export` read, and tests check.
    Undecodable payloads are skipped with a warning (the producing service dead-letters its own)."""
    consumer = KafkaConsumer(
        bootstrap_servers=settings.kafka_bootstrap_servers.split(","),
        enable_auto_commit=False,
        isolation_level="read_committed",
    )
    try:
        partitions = [TopicPartition(topic, p) for p in sorted(consumer.partitions_for_topic(topic) or [])]
        if not partitions:
            return []
        consumer.assign(partitions)
        consumer.seek_to_beginning(*partitions)
        end_offsets = consumer.end_offsets(partitions)
        messages: list[tuple[str, Message]] = []
        deadline = time.monotonic() + timeout_s
        while any(consumer.position(tp) < end_offsets[tp] for tp in partitions):
            if time.monotonic() > deadline:
                raise TopicReadError(f"could not read {topic} to its end in {timeout_s:.0f} s")
            for records in consumer.poll(timeout_ms=200).values():
                for record in records:
                    try:
                        messages.append(((record.key or b"").decode(), decode(topic, record.value)))
                    except PoisonMessageError as exc:
                        log.warning("%s offset %d skipped: %s", topic, record.offset, exc)
        return messages
    finally:
        consumer.close()


def latest_per_clip(records: Iterable[tuple[str, Message]]) -> tuple[dict[str, Message], int]:
    """The latest message per clip id (by produced_at, then by position: one clip's records share a key,
    hence a partition, so position is offset order) and how many older records it replaced."""
    chosen: dict[str, tuple[tuple[int, int, int], Message]] = {}
    total = 0
    for position, (_key, message) in enumerate(records):
        total += 1
        rank = (message.produced_at.seconds, message.produced_at.nanos, position)
        if message.span.clip_id not in chosen or rank > chosen[message.span.clip_id][0]:
            chosen[message.span.clip_id] = (rank, message)
    return {clip: message for clip, (_, message) in chosen.items()}, total - len(chosen)


def now_timestamp() -> Timestamp:
    ts = Timestamp()
    ts.GetCurrentTime()
    return ts


class EventProducer:
    """Produces protobuf messages keyed by video id; `deliver` waits for the broker's acknowledgements."""

    def __init__(self, settings: KafkaSettings, service: str, transactional_id: str | None = None) -> None:
        """With a `transactional_id`, outputs go out in transactions (`deliver_transaction`) that commit the
        consumed offset with them; without one, `deliver` only waits for the acknowledgements."""
        self.service = service
        self.transactional = transactional_id is not None
        # The coordinator answers CONCURRENT_TRANSACTIONS while it writes the previous transaction's markers;
        # with the default 100 ms backoff a transaction took 142 ms, with 10 ms 43 ms (bench/bus_transactions.py).
        options: dict = (
            {"transactional_id": transactional_id, "enable_idempotence": True, "retry_backoff_ms": 10}
            if transactional_id
            else {}
        )
        self._producer = KafkaProducer(
            **client_config(settings, service),
            acks="all",
            linger_ms=5,
            max_request_size=16 * 1024 * 1024,
            # retried until delivered or this long (kafka-python's default retries, bounded like `deliver`):
            # a partition whose leader is still being elected, or a broker restarting, is waited for
            delivery_timeout_ms=DELIVERY_TIMEOUT_S * 1000,
            request_timeout_ms=DELIVERY_TIMEOUT_S * 1000 // 2,  # must leave room for a retry within the above
            **options,
        )
        if self.transactional:
            # fences an earlier instance with the same id and aborts what it left open
            self._producer.init_transactions()

    def send(self, output: Output):
        expected = topics.message_type(output.topic)
        if not isinstance(output.message, expected):
            raise TypeError(
                f"{output.topic} carries {expected.DESCRIPTOR.full_name}, got {output.message.DESCRIPTOR.full_name}"
            )
        future = self._producer.send(
            output.topic,
            key=output.key.encode(),
            value=output.message.SerializeToString(),
            headers=[(TYPE_HEADER, output.message.DESCRIPTOR.full_name.encode())],
        )
        metrics.MESSAGES_PRODUCED.labels(self.service, output.topic).inc()
        return future

    def deliver(self, outputs: Iterable[Output], timeout_s: float = DELIVERY_TIMEOUT_S) -> None:
        """Sends every output and returns once the broker acknowledged all of them."""
        futures = [(o, self.send(o)) for o in outputs]
        self._producer.flush(timeout_s)
        for output, future in futures:
            try:
                future.get(timeout=timeout_s)
            except Exception as exc:
                raise OutputDeliveryError(f"{output.topic} key {output.key}: {exc}") from exc

    def deliver_transaction(
        self, outputs: Iterable[Output], offsets: dict[TopicPartition, OffsetAndMetadata], group: object
    ) -> None:
        """Sends the outputs and commits the consumed offsets in one Kafka transaction: a read_committed
        consumer sees the outputs exactly when the input counts as consumed, never one without the other."""
        self._producer.begin_transaction()
        try:
            for output in outputs:
                self.send(output)
            self._producer.send_offsets_to_transaction(offsets, group)
            self._producer.commit_transaction()
        except KafkaError as exc:
            with contextlib.suppress(KafkaError):
                self._producer.abort_transaction()
            raise OutputDeliveryError(f"transaction of {self.service} aborted: {exc}") from exc

    def close(self, timeout_s: float = 10.0) -> None:
        self._producer.flush(timeout_s)
        self._producer.close(timeout_s)


def _partitions(tps: Iterable[TopicPartition]) -> str:
    return ", ".join(f"{tp.topic}[{tp.partition}]" for tp in sorted(tps)) or "none"


class _SeekToStoredOffsets(ConsumerRebalanceListener):
    def __init__(self, worker: Worker) -> None:
        self.worker = worker

    def on_partitions_revoked(self, revoked: list[TopicPartition]) -> None:
        self.worker.assigned.clear()
        if revoked:  # group membership in the service's log: kafka-python's own lines are silenced
            log.info("%s: partitions revoked: %s", self.worker.service, _partitions(revoked))
        # A partition that moved to another member of the group is that member's to report: a gauge left
        # here would repeat its lag at the time it moved, for as long as this process runs.
        for tp in revoked:
            with contextlib.suppress(KeyError):
                metrics.CONSUMER_LAG.remove(self.worker.service, tp.topic, str(tp.partition))

    def on_partitions_assigned(self, assigned: list[TopicPartition]) -> None:
        store = self.worker.offset_store
        consumer = self.worker.consumer
        if store is not None and consumer is not None:
            for tp in assigned:
                offset = store.load_offset(tp.topic, tp.partition)
                if offset is None:
                    consumer.seek_to_beginning(tp)
                else:
                    consumer.seek(tp, offset)
        log.info("%s: partitions assigned: %s", self.worker.service, _partitions(assigned))
        self.worker.assigned.set()


class Worker:
    """Consumes `input_topics` as consumer group `group_id` and runs `handler` on every message."""

    def __init__(
        self,
        settings: KafkaSettings,
        service: str,
        input_topics: Iterable[str],
        handler: Handler,
        *,
        group_id: str | None = None,
        offset_store: OffsetStore | None = None,
        producer: EventProducer | None = None,
        output_topics: Iterable[str] = (),
    ) -> None:
        """`output_topics`: where the handler may produce; their counters start at zero, as do the input
        topics', so Prometheus' rate() sees a series' first events too."""
        self.settings = settings
        self.service = service
        self.input_topics = list(input_topics)
        for topic in self.input_topics:
            for counter in (metrics.MESSAGES_CONSUMED, metrics.MESSAGES_FAILED, metrics.MESSAGES_DEAD_LETTERED):
                counter.labels(service, topic)
        for topic in [*output_topics, topics.DEADLETTER]:
            metrics.MESSAGES_PRODUCED.labels(service, topic)
        self.handler = handler
        self.group_id = group_id or f"haic-{service}"
        self.offset_store = offset_store
        # One transactional id per worker instance: KIP-447's group-metadata fencing (the consumer's
        # generation goes with the offsets) replaces the old one-id-per-partition scheme.
        transactional_id = f"{self.group_id}-{uuid.uuid4().hex[:12]}" if settings.kafka_transactions else None
        self.producer = producer or EventProducer(settings, service, transactional_id=transactional_id)
        self.consumer: KafkaConsumer | None = None
        self.assigned = threading.Event()  # set while the group has given this worker its partitions
        self._lag_reported: set[TopicPartition] = set()  # partitions this worker has a lag gauge for
        self._stop = threading.Event()
        self._signals = 0

    # --- lifecycle ---
    def stop(self) -> None:
        self._stop.set()

    def install_signal_handlers(self) -> None:
        """First SIGTERM/SIGINT: finish the in-flight message and stop. Second: exit, handing it back."""

        def on_signal(signum: int, _frame: object) -> None:
            self._signals += 1
            if self._signals > 1:
                log.warning("second signal %d: exiting without committing the in-flight message", signum)
                os._exit(128 + signum)
            log.info("signal %d: stopping after the in-flight message", signum)
            self.stop()

        signal.signal(signal.SIGTERM, on_signal)
        signal.signal(signal.SIGINT, on_signal)

    def run(self) -> None:
        ensure_topics(self.settings, {*self.input_topics, topics.DEADLETTER})
        self.consumer = KafkaConsumer(
            **client_config(self.settings, self.service),
            group_id=self.group_id,
            enable_auto_commit=False,
            auto_offset_reset="earliest",
            session_timeout_ms=self.settings.kafka_session_timeout_ms,
            heartbeat_interval_ms=max(500, self.settings.kafka_session_timeout_ms // 3),
            max_poll_interval_ms=self.settings.kafka_max_poll_interval_ms,
            max_poll_records=1,
            fetch_max_wait_ms=200,
            # outputs of aborted transactions are never seen (the same as read_uncommitted without transactions)
            isolation_level="read_committed",
        )
        self._await_topic_metadata()
        self.consumer.subscribe(self.input_topics, listener=_SeekToStoredOffsets(self))
        log.info("consuming %s as group %s", self.input_topics, self.group_id)
        unassigned_since: float | None = time.monotonic()  # None while partitions are held
        patience_s = _UNASSIGNED_REJOIN_S
        try:
            while not self._stop.is_set():
                batches = self.consumer.poll(timeout_ms=300)
                if self.consumer.assignment():
                    unassigned_since, patience_s = None, _UNASSIGNED_REJOIN_S
                elif unassigned_since is None:
                    unassigned_since = time.monotonic()
                elif time.monotonic() - unassigned_since > patience_s:
                    self._join_again(patience_s)
                    # a member that legitimately holds nothing (more members than partitions) rejoins ever
                    # more rarely: each rejoin costs the group a rebalance
                    unassigned_since, patience_s = time.monotonic(), min(2 * patience_s, _UNASSIGNED_REJOIN_MAX_S)
                self._update_lag()
                for records in batches.values():
                    for record in records:
                        if self._stop.is_set():
                            break  # not processed, not committed: the next owner gets it
                        self._process(record)
        finally:
            self.assigned.clear()
            self.consumer.close(autocommit=False)
            self.producer.close()
            log.info("worker %s stopped", self.service)

    def _join_again(self, waited_s: float) -> None:
        """Leaves the group and joins it once more. Launched stacks' workers have sat for minutes holding no
        partitions while messages waited: after their first join (kafka-python's join can miss the
        assignment), and after a restart next to a killed stack's members (a caption waited 5 minutes for
        the QA generator)."""
        assert self.consumer is not None
        log.warning("%s: no partitions for %.0f s in group %s; joining again", self.service, waited_s, self.group_id)
        self.consumer.unsubscribe()
        self._await_topic_metadata()
        self.consumer.subscribe(self.input_topics, listener=_SeekToStoredOffsets(self))

    def _await_topic_metadata(self, timeout_s: float = 30.0) -> None:
        """Waits until the client knows every input topic's partitions. A group leader that joins before
        its metadata cache has them assigns nothing ("No partition metadata for topic ..."), and kafka-python
        did not always rejoin once the metadata came: a gateway restarted after a killed launcher sat with no
        partitions and never became ready."""
        assert self.consumer is not None
        deadline = time.monotonic() + timeout_s
        missing = set(self.input_topics)
        while missing and not self._stop.is_set():
            missing = {topic for topic in missing if not self.consumer.partitions_for_topic(topic)}
            if missing and time.monotonic() > deadline:
                log.warning("no partition metadata for %s after %.0f s; subscribing anyway", sorted(missing), timeout_s)
                return
            if missing:
                time.sleep(0.2)

    # --- one message ---
    def _process(self, record) -> None:
        key = record.key.decode(errors="replace") if record.key else ""
        labels = (self.service, record.topic)
        metrics.MESSAGES_CONSUMED.labels(*labels).inc()
        metrics.IN_FLIGHT.labels(self.service).inc()
        started = time.perf_counter()
        try:
            with log_context(video_id=key):
                outputs = self._handle_with_retries(record, key)
                self._publish(record, outputs)
        except _HandBack:
            log.info("stopping: %s[%d]@%d handed back uncommitted", record.topic, record.partition, record.offset)
        finally:
            metrics.IN_FLIGHT.labels(self.service).dec()
            metrics.PROCESSING_SECONDS.labels(*labels).observe(time.perf_counter() - started)

    def _handle_with_retries(self, record, key: str) -> list[Output]:
        """The handler's outputs, or the dead letter that replaces them; retried and waited as the contract says."""
        attempt = 0
        waited: int | None = None  # consecutive waits on an unavailable dependency
        while True:
            attempt += 1
            try:
                event = Event(
                    record.topic,
                    record.partition,
                    record.offset,
                    key,
                    decode(record.topic, record.value or b""),
                    {k: v for k, v in (record.headers or [])},
                )
                return list(self.handler(event))
            except PoisonMessageError as exc:
                metrics.MESSAGES_FAILED.labels(self.service, record.topic).inc()
                return [self._dead_letter(record, key, exc, attempt)]
            except OutputDeliveryError:
                raise  # the broker is unreachable: dead-lettering would fail too; crash and redeliver
            except DependencyUnavailableError as exc:
                metrics.MESSAGES_FAILED.labels(self.service, record.topic).inc()
                waited = 0 if waited is None else waited + 1
                delay = min(_DEPENDENCY_MAX_WAIT_S, self.settings.retry_backoff_s * 2**waited)
                log.warning("%s; trying again in %.1f s", exc, delay)
                if self._stop.wait(delay):
                    raise _HandBack from exc
                attempt = 0  # an outage is not the message's fault: it never counts toward dead-lettering
            except Exception as exc:  # noqa: BLE001 - any handler error is retried, then dead-lettered
                metrics.MESSAGES_FAILED.labels(self.service, record.topic).inc()
                if attempt >= self.settings.max_attempts:
                    return [self._dead_letter(record, key, exc, attempt)]
                delay = self.settings.retry_backoff_s * 2 ** (attempt - 1)
                log.warning("attempt %d failed (%s: %s); retrying in %.1f s", attempt, type(exc).__name__, exc, delay)
                time.sleep(delay)

    def _dead_letter(self, record, key: str, exc: Exception, attempts: int) -> Output:
        log.error(
            "dead-lettering %s[%d]@%d after %d attempt(s): %s",
            record.topic,
            record.partition,
            record.offset,
            attempts,
            exc,
        )
        letter = events_pb2.DeadLetter(
            original_topic=record.topic,
            partition=record.partition,
            offset=record.offset,
            key=record.key or b"",
            payload=record.value or b"",
            error=str(exc),
            error_type=type(exc).__name__,
            attempts=attempts,
            service=self.service,
            failed_at=now_timestamp(),
        )
        metrics.MESSAGES_DEAD_LETTERED.labels(self.service, record.topic).inc()
        return Output(topics.DEADLETTER, key, letter)

    def _publish(self, record, outputs: list[Output]) -> None:
        """Produces the outputs, then counts the input as consumed: in one transaction with
        HAIC_KAFKA_TRANSACTIONS, otherwise the offset is committed once the broker acknowledged every output."""
        assert self.consumer is not None
        offsets = {TopicPartition(record.topic, record.partition): OffsetAndMetadata(record.offset + 1, "", -1)}
        if self.producer.transactional:
            self.producer.deliver_transaction(outputs, offsets, self.consumer.group_metadata())
        else:
            self.producer.deliver(outputs)
            self.consumer.commit(offsets)

    def _update_lag(self) -> None:
        assert self.consumer is not None
        assignment = set(self.consumer.assignment())
        # A partition no longer held is another member's to report. The revocation callback removes its gauge,
        # but kafka-python does not call it on every path that loses partitions (a launched stack's pose worker
        # went on reporting all four partitions of its input after a rebalance had given two to its peer).
        for tp in self._lag_reported - assignment:
            with contextlib.suppress(KeyError):
                metrics.CONSUMER_LAG.remove(self.service, tp.topic, str(tp.partition))
        self._lag_reported &= assignment
        for tp in assignment:
            highwater = self.consumer.highwater(tp)
            if highwater is None:
                continue
            lag = max(0, highwater - self.consumer.position(tp))
            metrics.CONSUMER_LAG.labels(self.service, tp.topic, str(tp.partition)).set(lag)
            self._lag_reported.add(tp)
