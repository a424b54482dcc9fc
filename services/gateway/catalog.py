"""The gateway's catalog: videos, clips, a per-video event log, dead letters and consumer offsets.

SQLAlchemy 2 Core on SQLite (the default) or PostgreSQL (by URL). The catalog is a Kafka sink: it
consumes every topic as group haic-gateway-catalog, and writes each message's effect together with
the partition's next offset in one transaction. It implements `bus.OffsetStore`, so a worker started
on an empty database seeks to the beginning of every partition and rebuilds the catalog from Kafka.

Idempotence: a message whose offset is already stored is skipped; a message produced twice (same
topic, entity and stage or variant) adds no second event row; clip rows are upserted by clip id.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from google.protobuf.message import Message
from google.protobuf.timestamp_pb2 import Timestamp
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Connection, Engine, RowMapping

from haic.v1 import events_pb2
from services.core import topics
from services.core.bus import Event, Output, PoisonMessageError
from services.gateway.errors import GatewayConfigError
from services.gateway.status import (
    ClipState,
    ClipStatus,
    StageOutcome,
    UnknownStageError,
    VideoState,
    VideoStatus,
    final_stage_rank,
    merge_clip_outcome,
    video_state,
)

log = logging.getLogger(__name__)

CONSUMER_GROUP = "haic-gateway-catalog"
SUPPORTED_BACKENDS = ("sqlite", "postgresql")

metadata = sa.MetaData()

# SQLite autoincrements (monotonically, with sqlite_autoincrement) only an INTEGER PRIMARY KEY.
_SequenceType = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
_Time = sa.DateTime(timezone=True)

videos = sa.Table(
    "videos",
    metadata,
    sa.Column("video_id", sa.String(64), primary_key=True),
    sa.Column("sha256", sa.String(64)),
    sa.Column("size_bytes", sa.BigInteger),
    sa.Column("storage_uri", sa.Text),
    sa.Column("description", sa.Text),
    sa.Column("source_url", sa.Text),
    sa.Column("width", sa.Integer),
    sa.Column("height", sa.Integer),
    sa.Column("fps", sa.Float),
    sa.Column("duration_s", sa.Float),
    sa.Column("frame_count", sa.BigInteger),
    sa.Column("codec", sa.String(64)),
    sa.Column("container", sa.String(128)),
    sa.Column("uploaded_at", _Time),
    # True once the catalog consumed the video's VideoUploaded (rows may be created first by the upload
    # itself, or by a clip event read from another topic during a rebuild).
    sa.Column("announced", sa.Boolean, nullable=False, default=False),
    sa.Column("status", sa.String(16), nullable=False),
    sa.Column("settled", sa.Boolean, nullable=False, default=False),
    sa.Column("clip_count", sa.Integer),
    sa.Column("rejection_stage", sa.String(64)),
    sa.Column("rejection_reason_code", sa.String(64)),
    sa.Column("rejection_reason", sa.Text),
    sa.Column("rejection_values", sa.JSON),
    sa.Column("created_at", _Time, nullable=False),
    sa.Column("updated_at", _Time, nullable=False),
    sa.Index("ix_videos_status_created", "status", "created_at"),
)

clips = sa.Table(
    "clips",
    metadata,
    sa.Column("clip_id", sa.String(64), primary_key=True),
    sa.Column("video_id", sa.String(64), nullable=False, index=True),
    sa.Column("clip_index", sa.Integer),
    sa.Column("scene_index", sa.Integer),
    sa.Column("clip_count", sa.Integer),
    sa.Column("start_s", sa.Float),
    sa.Column("end_s", sa.Float),
    sa.Column("verdict", sa.String(16), nullable=False),
    sa.Column("stage", sa.String(64), nullable=False),
    sa.Column("reason_code", sa.String(64), nullable=False, default=""),
    sa.Column("reason", sa.Text, nullable=False, default=""),
    sa.Column("measured_values", sa.JSON),
    sa.Column("passed_rank", sa.Integer, nullable=False),
    sa.Column("storage_uri", sa.Text),
    sa.Column("caption_text", sa.Text),
    sa.Column("caption_backend", sa.String(128)),
    sa.Column("caption_judge_passed", sa.Boolean),
    sa.Column("qa_item_count", sa.Integer),
    sa.Column("score_average", sa.Float),
    sa.Column("created_at", _Time, nullable=False),
    sa.Column("updated_at", _Time, nullable=False),
)

# The caller's ids of videos (a manifest row's id, e.g. WebVid's videoid): a registration that names a
# known one is answered without reading the video again, which is how an interrupted ingestion resumes.
external_ids = sa.Table(
    "external_ids",
    metadata,
    sa.Column("external_id", sa.String(512), primary_key=True),
    sa.Column("video_id", sa.String(64), nullable=False, index=True),
    sa.Column("created_at", _Time, nullable=False),
)

# Which videos an ingestion run (a batch) took, duplicates of earlier content included, so that the yield
# report of a batch counts every video it submitted.
batch_videos = sa.Table(
    "batch_videos",
    metadata,
    sa.Column("batch", sa.String(128), primary_key=True),
    sa.Column("video_id", sa.String(64), primary_key=True),
    sa.Column("created_at", _Time, nullable=False),
)

events = sa.Table(
    "events",
    metadata,
    sa.Column("sequence", _SequenceType, primary_key=True, autoincrement=True),
    sa.Column("video_id", sa.String(64), nullable=False),
    sa.Column("topic", sa.String(64), nullable=False),
    # what the event is about (clip id, video id, dead-lettered message) and which stage or variant
    # said it: a message produced twice maps to the same triple and is logged once
    sa.Column("entity_id", sa.String(160), nullable=False),
    sa.Column("variant", sa.String(160), nullable=False),
    sa.Column("status", sa.String(16), nullable=False),  # the video's status after this event
    sa.Column("payload", sa.LargeBinary, nullable=False),  # the serialized protobuf, re-parsed for SSE and gRPC
    sa.Column("kafka_partition", sa.Integer, nullable=False),
    sa.Column("kafka_offset", sa.BigInteger, nullable=False),
    sa.Column("recorded_at", _Time, nullable=False),
    sa.UniqueConstraint("topic", "entity_id", "variant", name="uq_events_topic_entity_variant"),
    sa.Index("ix_events_video_sequence", "video_id", "sequence"),
    sqlite_autoincrement=True,
)

dead_letters = sa.Table(
    "dead_letters",
    metadata,
    sa.Column("id", _SequenceType, primary_key=True, autoincrement=True),
    sa.Column("video_id", sa.String(64), index=True),  # None when the message had no key
    sa.Column("service", sa.String(64), nullable=False),
    sa.Column("original_topic", sa.String(64), nullable=False),
    sa.Column("kafka_partition", sa.Integer, nullable=False),
    sa.Column("kafka_offset", sa.BigInteger, nullable=False),
    sa.Column("error", sa.Text, nullable=False),
    sa.Column("error_type", sa.String(128), nullable=False),
    sa.Column("attempts", sa.Integer, nullable=False),
    sa.Column("failed_at", _Time),
    sa.UniqueConstraint("service", "original_topic", "kafka_partition", "kafka_offset", name="uq_dead_letters_origin"),
)

consumer_offsets = sa.Table(
    "consumer_offsets",
    metadata,
    sa.Column("topic", sa.String(64), primary_key=True),
    sa.Column("kafka_partition", sa.Integer, primary_key=True),
    sa.Column("next_offset", sa.BigInteger, nullable=False),
)

# What the catalog follows: the Kafka cluster id its stored offsets belong to.
catalog_meta = sa.Table(
    "catalog_meta",
    metadata,
    sa.Column("key", sa.String(64), primary_key=True),
    sa.Column("value", sa.Text, nullable=False),
)
CLUSTER_ID_KEY = "kafka_cluster_id"


@dataclass(frozen=True)
class EventRecord:
    """One row of a video's event log."""

    sequence: int
    video_id: str
    topic: str
    status: str
    payload: bytes
    recorded_at: datetime

    def message(self) -> Message:
        message = topics.message_type(self.topic)()
        message.ParseFromString(self.payload)
        return message


@dataclass(frozen=True)
class VideoView:
    """A video row with its clips (in clip order) and dead letters."""

    video: RowMapping
    clips: list[RowMapping]
    dead_letters: list[RowMapping]


def utc(value: datetime | None) -> datetime | None:
    """SQLite hands back naive datetimes; every stored time is UTC."""
    if value is None or value.tzinfo is not None:
        return value
    return value.replace(tzinfo=UTC)


def _now() -> datetime:
    return datetime.now(UTC)


def _timestamp(ts: Timestamp) -> datetime | None:
    if not ts.seconds and not ts.nanos:
        return None
    return ts.ToDatetime(tzinfo=UTC)


def _new_video_columns(video_id: str, now: datetime) -> dict[str, Any]:
    """A video row before anything is known of it beyond its id."""
    return {
        "video_id": video_id,
        "announced": False,
        "status": VideoStatus.uploaded.value,
        "settled": False,
        "created_at": now,
        "updated_at": now,
    }


def _announced_video_columns(message: events_pb2.VideoUploaded) -> dict[str, Any]:
    info = message.info
    return {
        "sha256": message.sha256,
        "size_bytes": message.size_bytes,
        "storage_uri": message.storage_uri,
        "description": message.description,
        "source_url": message.source_url,
        "width": info.width,
        "height": info.height,
        "fps": info.fps,
        "duration_s": info.duration_s,
        "frame_count": info.frame_count,
        "codec": info.codec,
        "container": info.container,
        "uploaded_at": _timestamp(message.uploaded_at),
    }


def video_info(row: RowMapping) -> events_pb2.VideoInfo:
    """A video row's probe results as the VideoInfo its upload announced (the columns carry the proto's
    field names; an unknown one reads as the proto's zero)."""
    fields = events_pb2.VideoInfo.DESCRIPTOR.fields
    return events_pb2.VideoInfo(**{f.name: row[f.name] for f in fields if row[f.name] is not None})


def _upload_message(row: RowMapping) -> events_pb2.VideoUploaded:
    """The inverse of _announced_video_columns."""
    message = events_pb2.VideoUploaded(
        video_id=row["video_id"],
        sha256=row["sha256"] or "",
        storage_uri=row["storage_uri"] or "",
        size_bytes=row["size_bytes"] or 0,
        description=row["description"] or "",
        source_url=row["source_url"] or "",
        info=video_info(row),
    )
    uploaded_at = utc(row["uploaded_at"])
    if uploaded_at is not None:
        message.uploaded_at.FromDatetime(uploaded_at)
    return message


def _set_sqlite_pragmas(dbapi_connection: Any, _record: object) -> None:
    cursor = dbapi_connection.cursor()
    # WAL lets the API read while the catalog worker writes; the catalog can be rebuilt from Kafka,
    # so synchronous=NORMAL (durable up to the last checkpoint) is enough.
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.close()


def create_catalog_engine(url: str) -> Engine:
    try:
        parsed = sa.engine.make_url(url)
    except sa.exc.ArgumentError as exc:
        raise GatewayConfigError(f"HAIC_CATALOG_URL {url!r} is not a database URL: {exc}") from exc
    backend = parsed.get_backend_name()
    if backend not in SUPPORTED_BACKENDS:
        raise GatewayConfigError(f"catalog backend {backend!r} is not supported: use sqlite or postgresql")
    if backend == "sqlite":
        if parsed.database and parsed.database != ":memory:":
            Path(parsed.database).parent.mkdir(parents=True, exist_ok=True)
        engine = sa.create_engine(parsed, connect_args={"timeout": 30})  # wait up to 30 s for a write lock
        sa.event.listen(engine, "connect", _set_sqlite_pragmas)
        return engine
    return sa.create_engine(parsed, pool_pre_ping=True)


class Catalog:
    """The catalog database; `handle` is the Kafka worker's handler, `load_offset` its offset store."""

    def __init__(self, url: str, final_stage: str = "filter") -> None:
        try:
            self.final_rank = final_stage_rank(final_stage)
        except UnknownStageError as exc:
            raise GatewayConfigError(f"HAIC_CATALOG_FINAL_STAGE: {exc}") from exc
        self.final_stage = final_stage
        self.engine = create_catalog_engine(url)
        self.dialect = self.engine.dialect.name
        metadata.create_all(self.engine)
        self._changes = threading.Condition()
        self._change_count = 0

    def close(self) -> None:
        self.engine.dispose()

    # --- change notification (wakes in-process watchers early; they poll the database anyway) ---
    @property
    def change_count(self) -> int:
        return self._change_count

    def wait_for_change(self, seen: int, timeout_s: float) -> int:
        with self._changes:
            self._changes.wait_for(lambda: self._change_count != seen, timeout_s)
            return self._change_count

    def _notify(self) -> None:
        with self._changes:
            self._change_count += 1
            self._changes.notify_all()

    def _insert(self, table: sa.Table) -> sqlite.Insert | postgresql.Insert:
        """An INSERT with ON CONFLICT support for this database's dialect."""
        if self.dialect == "postgresql":
            return postgresql.insert(table)
        return sqlite.insert(table)

    # --- health ---
    def ping(self) -> None:
        with self.engine.connect() as conn:
            conn.execute(sa.text("SELECT 1"))

    # --- uploads ---
    def register_upload(self, message: events_pb2.VideoUploaded) -> bool:
        """Inserts the video if absent; True when this call inserted it (and so must announce it).

        The database decides between concurrent identical uploads: only one insert wins.
        """
        now = _now()
        statement = (
            self._insert(videos)
            .values(**_new_video_columns(message.video_id, now), **_announced_video_columns(message))
            .on_conflict_do_nothing(index_elements=[videos.c.video_id])
            .returning(videos.c.video_id)  # a row comes back only when this statement inserted it
        )
        with self.engine.begin() as conn:
            inserted = conn.execute(statement).first() is not None
        if inserted:
            self._notify()
        return inserted

    def video_for_external_id(self, external_id: str) -> str | None:
        with self.engine.connect() as conn:
            return conn.execute(
                sa.select(external_ids.c.video_id).where(external_ids.c.external_id == external_id)
            ).scalar()

    def record_source(self, video_id: str, external_id: str = "", batch: str = "") -> None:
        """Remembers the caller's id of the video and the batch that took it (first one wins an id)."""
        if not external_id and not batch:
            return
        now = _now()
        with self.engine.begin() as conn:
            if external_id:
                conn.execute(
                    self._insert(external_ids)
                    .values(external_id=external_id, video_id=video_id, created_at=now)
                    .on_conflict_do_nothing(index_elements=[external_ids.c.external_id])
                )
            if batch:
                conn.execute(
                    self._insert(batch_videos)
                    .values(batch=batch, video_id=video_id, created_at=now)
                    .on_conflict_do_nothing(index_elements=[batch_videos.c.batch, batch_videos.c.video_id])
                )

    def forget_upload(self, video_id: str) -> None:
        """Removes a registered upload that could not be announced, so that a retry announces it."""
        with self.engine.begin() as conn:
            conn.execute(sa.delete(videos).where(videos.c.video_id == video_id, videos.c.announced.is_(False)))

    def claim_stale_registration(self, video_id: str, registered_before: datetime) -> bool:
        """Takes over an upload registered before `registered_before` whose VideoUploaded never reached
        the catalog (the gateway stopped between registering and announcing). True for the one caller
        that claimed it; that caller announces the video again."""
        now = _now()
        with self.engine.begin() as conn:
            claimed = conn.execute(
                sa.update(videos)
                .where(
                    videos.c.video_id == video_id,
                    videos.c.announced.is_(False),
                    videos.c.sha256.is_not(None),  # registered by an upload, not a placeholder
                    videos.c.created_at < registered_before,
                )
                .values(created_at=now, updated_at=now)
                .returning(videos.c.video_id)
            ).first()
        return claimed is not None

    # --- the Kafka cluster behind the catalog ---
    def _recorded_cluster(self, conn: Connection) -> str | None:
        return conn.execute(
            sa.select(catalog_meta.c.value).where(catalog_meta.c.key == CLUSTER_ID_KEY)
        ).scalar_one_or_none()

    def follows_other_cluster(self, cluster_id: str) -> bool:
        """True when the catalog followed another Kafka cluster (the broker's data was deleted, or the stack
        points at a new cluster), or stored offsets without saying of which cluster (a catalog older than
        this record): what it knows was not produced on this cluster, and its videos wait for events that
        can no longer come unless they are announced again."""
        with self.engine.connect() as conn:
            recorded = self._recorded_cluster(conn)
            if recorded is not None:
                return recorded != cluster_id
            return conn.execute(sa.select(sa.func.count()).select_from(consumer_offsets)).scalar_one() > 0

    def bind_cluster(self, cluster_id: str) -> None:
        """Records the cluster the catalog follows; when it followed another, its stored offsets (positions in
        logs that are gone) are dropped, so the consumer reads the new cluster from its beginning."""
        with self.engine.begin() as conn:
            recorded = self._recorded_cluster(conn)
            if recorded == cluster_id:
                return
            conn.execute(sa.delete(consumer_offsets))
            conn.execute(
                self._insert(catalog_meta)
                .values(key=CLUSTER_ID_KEY, value=cluster_id)
                .on_conflict_do_update(index_elements=[catalog_meta.c.key], set_={"value": cluster_id})
            )
        log.info("the catalog follows Kafka cluster %s (before: %s)", cluster_id, recorded)

    def uploads(self, video_ids: Iterable[str] | None = None) -> list[events_pb2.VideoUploaded]:
        """The VideoUploaded of every video registered by an upload (or of the given ones), rebuilt from
        the catalog: what announcing them again sends."""
        query = sa.select(videos).where(videos.c.sha256.is_not(None), videos.c.storage_uri.is_not(None))
        if video_ids is not None:
            query = query.where(videos.c.video_id.in_(list(video_ids)))
        with self.engine.connect() as conn:
            rows = conn.execute(query.order_by(videos.c.created_at)).mappings().all()
        return [_upload_message(row) for row in rows]

    def last_activity(self, video_id: str) -> datetime | None:
        """When the catalog last heard of the video (its row's last change)."""
        with self.engine.connect() as conn:
            value = conn.execute(sa.select(videos.c.updated_at).where(videos.c.video_id == video_id)).scalar()
        return utc(value)

    # --- OffsetStore ---
    def load_offset(self, topic: str, partition: int) -> int | None:
        with self.engine.connect() as conn:
            return self._stored_offset(conn, topic, partition)

    @staticmethod
    def _stored_offset(conn: Connection, topic: str, partition: int) -> int | None:
        return conn.execute(
            sa.select(consumer_offsets.c.next_offset).where(
                consumer_offsets.c.topic == topic, consumer_offsets.c.kafka_partition == partition
            )
        ).scalar_one_or_none()

    def _store_offset(self, conn: Connection, topic: str, partition: int, next_offset: int) -> None:
        statement = self._insert(consumer_offsets).values(
            topic=topic, kafka_partition=partition, next_offset=next_offset
        )
        conn.execute(
            statement.on_conflict_do_update(
                index_elements=[consumer_offsets.c.topic, consumer_offsets.c.kafka_partition],
                set_={"next_offset": statement.excluded.next_offset},
            )
        )

    # --- the Kafka handler ---
    def handle(self, event: Event) -> Iterable[Output]:
        """Applies one message and stores the partition's next offset in the same transaction."""
        with self.engine.begin() as conn:
            stored = self._stored_offset(conn, event.topic, event.partition)
            if stored is not None and event.offset < stored:
                log.info(
                    "%s[%d]@%d already applied (next offset %d)", event.topic, event.partition, event.offset, stored
                )
                return ()
            self._apply(conn, event)
            self._store_offset(conn, event.topic, event.partition, event.offset + 1)
        self._notify()
        return ()  # the catalog is a sink

    def _apply(self, conn: Connection, event: Event) -> None:
        message = event.message
        if isinstance(message, events_pb2.DeadLetter):
            self._apply_dead_letter(conn, event, message)
            return
        if isinstance(message, events_pb2.ScoreRecord) and not message.video_id:
            # A leaderboard over many clips (`haic eval`, keyed eval:<answerer>) is about no one video.
            log.info("%s@%d: score over many clips (%s), not about one video", event.topic, event.offset, event.key)
            return
        video_id = getattr(message, "video_id", "") or event.key
        if not video_id:
            raise PoisonMessageError(
                f"{event.topic} message at partition {event.partition} offset {event.offset} has no video id"
            )
        now = _now()
        self._lock_video(conn, video_id, now)
        entity_id, variant = video_id, ""
        if isinstance(message, events_pb2.VideoUploaded):
            conn.execute(
                sa.update(videos)
                .where(videos.c.video_id == video_id)
                .values(**_announced_video_columns(message), announced=True, updated_at=now)
            )
        elif isinstance(message, events_pb2.ClipCandidate):
            entity_id = message.span.clip_id or video_id
            outcome = StageOutcome("filter", rejected=False, values=dict(message.values))
            self._merge_clip(conn, video_id, message.span, outcome, now, {"storage_uri": message.storage_uri or None})
        elif isinstance(message, events_pb2.ClipVerdict):
            entity_id, variant = message.span.clip_id or video_id, message.stage
            self._apply_verdict(conn, event.topic, video_id, message, now)
        elif isinstance(message, events_pb2.Caption):
            entity_id, variant = message.span.clip_id or video_id, message.backend
            judged = message.HasField("judgement")
            judge_passed = message.judgement.passed if judged else None
            outcome = StageOutcome(
                "captioner.judge" if judge_passed is False else "captioner",
                rejected=judge_passed is False,
                reason_code="caption_judgement_failed" if judge_passed is False else "",
                reason="; ".join(message.judgement.reasons) if judged else "",
                values=dict(message.judgement.scores) if judged else {},
            )
            extra = {
                "caption_text": message.text,
                "caption_backend": message.backend,
                "caption_judge_passed": judge_passed,
            }
            self._merge_clip(conn, video_id, message.span, outcome, now, extra)
        elif isinstance(message, events_pb2.QASet):
            entity_id, variant = message.span.clip_id or video_id, message.backend
            outcome = StageOutcome("qagen", rejected=False)
            self._merge_clip(conn, video_id, message.span, outcome, now, {"qa_item_count": len(message.items)})
        elif isinstance(message, events_pb2.ScoreRecord):
            entity_id, variant = message.span.clip_id or video_id, f"{message.answerer}|{message.setting}"
            outcome = StageOutcome("scoring", rejected=False, values={"average": message.average})
            self._merge_clip(conn, video_id, message.span, outcome, now, {"score_average": message.average})
        else:
            raise PoisonMessageError(f"the catalog has no rule for {message.DESCRIPTOR.full_name} on {event.topic}")
        state = self._refresh_status(conn, video_id, now)
        self._append_event(conn, event, video_id, entity_id, variant, state, now)

    def _apply_verdict(
        self, conn: Connection, topic: str, video_id: str, verdict: events_pb2.ClipVerdict, now: datetime
    ) -> None:
        rejected = verdict.verdict == events_pb2.VERDICT_REJECTED or (
            verdict.verdict == events_pb2.VERDICT_UNSPECIFIED and topic == topics.CLIPS_REJECTED
        )
        if verdict.span.clip_id:
            outcome = StageOutcome(verdict.stage, rejected, verdict.reason_code, verdict.reason, dict(verdict.values))
            self._merge_clip(conn, video_id, verdict.span, outcome, now, {"storage_uri": verdict.storage_uri or None})
        elif rejected:  # a whole-video rejection has no span (e.g. low resolution)
            conn.execute(
                sa.update(videos)
                .where(videos.c.video_id == video_id)
                .values(
                    rejection_stage=verdict.stage or "unknown",
                    rejection_reason_code=verdict.reason_code,
                    rejection_reason=verdict.reason,
                    rejection_values=dict(verdict.values),
                    updated_at=now,
                )
            )

    def _apply_dead_letter(self, conn: Connection, event: Event, letter: events_pb2.DeadLetter) -> None:
        video_id = event.key or letter.key.decode("utf-8", errors="replace")
        now = _now()
        if video_id:
            self._lock_video(conn, video_id, now)
        conn.execute(
            self._insert(dead_letters)
            .values(
                video_id=video_id or None,
                service=letter.service,
                original_topic=letter.original_topic,
                kafka_partition=letter.partition,
                kafka_offset=letter.offset,
                error=letter.error,
                error_type=letter.error_type,
                attempts=letter.attempts,
                failed_at=_timestamp(letter.failed_at),
            )
            .on_conflict_do_nothing(
                index_elements=[
                    dead_letters.c.service,
                    dead_letters.c.original_topic,
                    dead_letters.c.kafka_partition,
                    dead_letters.c.kafka_offset,
                ]
            )
        )
        if not video_id:
            log.warning("dead letter from %s for %s has no video id", letter.service, letter.original_topic)
            return
        state = self._refresh_status(conn, video_id, now)
        entity_id = f"{letter.original_topic}:{letter.partition}:{letter.offset}"
        self._append_event(conn, event, video_id, entity_id, letter.service, state, now)

    def _lock_video(self, conn: Connection, video_id: str, now: datetime) -> None:
        """Creates the video row if a clip event arrives before its VideoUploaded, then locks it.

        The lock (PostgreSQL; SQLite has one writer anyway) serializes concurrent writers of one video.
        """
        conn.execute(
            self._insert(videos)
            .values(**_new_video_columns(video_id, now))
            .on_conflict_do_nothing(index_elements=[videos.c.video_id])
        )
        conn.execute(sa.select(videos.c.video_id).where(videos.c.video_id == video_id).with_for_update())

    def _merge_clip(
        self,
        conn: Connection,
        video_id: str,
        span: events_pb2.ClipSpan,
        outcome: StageOutcome,
        now: datetime,
        extra: dict[str, Any],
    ) -> None:
        if not span.clip_id:
            return  # an event about the whole video: only logged
        row = conn.execute(sa.select(clips).where(clips.c.clip_id == span.clip_id).with_for_update()).mappings().first()
        current = None
        if row is not None:
            current = ClipState(
                ClipStatus(row["verdict"]),
                row["stage"],
                row["reason_code"],
                row["reason"],
                dict(row["measured_values"] or {}),
                row["passed_rank"],
            )
        merged = merge_clip_outcome(current, outcome)
        columns: dict[str, Any] = {
            "video_id": video_id,
            "clip_index": span.clip_index,
            "scene_index": span.scene_index,
            "clip_count": span.clip_count,
            "start_s": span.start_s,
            "end_s": span.end_s,
            "verdict": merged.verdict.value,
            "stage": merged.stage,
            "reason_code": merged.reason_code,
            "reason": merged.reason,
            "measured_values": merged.values,
            "passed_rank": merged.passed_rank,
            "updated_at": now,
            **{key: value for key, value in extra.items() if value is not None or key == "caption_judge_passed"},
        }
        statement = self._insert(clips).values(clip_id=span.clip_id, created_at=now, **columns)
        conn.execute(statement.on_conflict_do_update(index_elements=[clips.c.clip_id], set_=columns))
        if span.clip_count:
            conn.execute(sa.update(videos).where(videos.c.video_id == video_id).values(clip_count=span.clip_count))

    def _refresh_status(self, conn: Connection, video_id: str, now: datetime) -> VideoState:
        video = conn.execute(
            sa.select(videos.c.clip_count, videos.c.rejection_stage).where(videos.c.video_id == video_id)
        ).one()
        clip_rows = conn.execute(sa.select(clips.c.verdict, clips.c.passed_rank).where(clips.c.video_id == video_id))
        failed = conn.execute(sa.select(sa.exists().where(dead_letters.c.video_id == video_id))).scalar()
        state = video_state(
            failed=bool(failed),
            video_rejected=video.rejection_stage is not None,
            clip_count=video.clip_count,
            clips=[(row.verdict, row.passed_rank) for row in clip_rows],
            final_rank=self.final_rank,
        )
        conn.execute(
            sa.update(videos)
            .where(videos.c.video_id == video_id)
            .values(status=state.status.value, settled=state.settled, updated_at=now)
        )
        return state

    def _append_event(
        self,
        conn: Connection,
        event: Event,
        video_id: str,
        entity_id: str,
        variant: str,
        state: VideoState,
        now: datetime,
    ) -> None:
        conn.execute(
            self._insert(events)
            .values(
                video_id=video_id,
                topic=event.topic,
                entity_id=entity_id,
                variant=variant,
                status=state.status.value,
                payload=event.message.SerializeToString(),
                kafka_partition=event.partition,
                kafka_offset=event.offset,
                recorded_at=now,
            )
            .on_conflict_do_nothing(index_elements=[events.c.topic, events.c.entity_id, events.c.variant])
        )

    # --- reads ---
    def video_state(self, video_id: str) -> VideoState | None:
        with self.engine.connect() as conn:
            row = conn.execute(
                sa.select(videos.c.status, videos.c.settled).where(videos.c.video_id == video_id)
            ).first()
        return None if row is None else VideoState(VideoStatus(row.status), bool(row.settled))

    def find_video(self, video_id: str) -> VideoView | None:
        with self.engine.connect() as conn:
            video = conn.execute(sa.select(videos).where(videos.c.video_id == video_id)).mappings().first()
            if video is None:
                return None
            clip_rows = conn.execute(
                sa.select(clips).where(clips.c.video_id == video_id).order_by(clips.c.clip_index, clips.c.start_s)
            ).mappings()
            letters = conn.execute(
                sa.select(dead_letters).where(dead_letters.c.video_id == video_id).order_by(dead_letters.c.id)
            ).mappings()
            return VideoView(video, list(clip_rows), list(letters))

    def list_videos(self, status: str | None, limit: int, offset: int) -> tuple[Sequence[RowMapping], int]:
        condition = sa.true() if status is None else videos.c.status == status
        with self.engine.connect() as conn:
            total = conn.execute(sa.select(sa.func.count()).select_from(videos).where(condition)).scalar_one()
            rows = conn.execute(
                sa.select(videos)
                .where(condition)
                .order_by(videos.c.created_at.desc(), videos.c.video_id)
                .limit(limit)
                .offset(offset)
            ).mappings()
            return list(rows), int(total)

    def unsettled_count(self) -> int:
        with self.engine.connect() as conn:
            return int(conn.execute(sa.select(sa.func.count()).where(videos.c.settled.is_(False))).scalar() or 0)

    def find_clip(self, clip_id: str) -> RowMapping | None:
        with self.engine.connect() as conn:
            return conn.execute(sa.select(clips).where(clips.c.clip_id == clip_id)).mappings().first()

    def events_after(self, video_id: str, after_sequence: int, limit: int = 200) -> list[EventRecord]:
        """The video's logged events with a sequence above `after_sequence`, oldest first."""
        with self.engine.connect() as conn:
            rows = conn.execute(
                sa.select(
                    events.c.sequence,
                    events.c.video_id,
                    events.c.topic,
                    events.c.status,
                    events.c.payload,
                    events.c.recorded_at,
                )
                .where(events.c.video_id == video_id, events.c.sequence > after_sequence)
                .order_by(events.c.sequence)
                .limit(limit)
            )
            return [
                EventRecord(row.sequence, row.video_id, row.topic, row.status, bytes(row.payload), utc(row.recorded_at))
                for row in rows
            ]
