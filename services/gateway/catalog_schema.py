"""The catalog's database: its tables, the engine, and how a row maps to and from the protos.

SQLAlchemy 2 Core on SQLite (the default) or PostgreSQL (by URL): videos, clips, a per-video event log,
dead letters, consumer offsets and the Kafka cluster they belong to, the caller's external ids and
batches. `CatalogDatabase` owns the engine, the dialect's upserts and the change notification that the
projection (catalog_projection.py) and the queries (catalog.py) build on.
"""

from __future__ import annotations

import threading
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, overload

import sqlalchemy as sa
from google.protobuf.timestamp_pb2 import Timestamp
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Engine, RowMapping

from haic.v1 import events_pb2
from services.gateway.errors import GatewayConfigError
from services.gateway.status import VideoStatus

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

# People's reviews of clips (haic.reviews.v1, the review desk): one row per Review, so a catalog rebuilt from
# Kafka has them. A check (checks_review_id set) carries its agreement with the review it checks, computed
# when the check was applied; checked_reviewer is that review's reviewer (None when it was not found).
reviews = sa.Table(
    "reviews",
    metadata,
    sa.Column("review_id", sa.String(64), primary_key=True),
    sa.Column("clip_id", sa.String(64), nullable=False, index=True),
    sa.Column("video_id", sa.String(64), nullable=False, index=True),
    sa.Column("reviewer", sa.String(128), nullable=False, index=True),
    sa.Column("reviewed_at", _Time),
    sa.Column("checks_review_id", sa.String(64), nullable=False, default=""),
    sa.Column("checked_reviewer", sa.String(128)),
    sa.Column("decision", sa.String(16), nullable=False),  # accepted, rejected
    sa.Column("caption_changed", sa.Boolean, nullable=False),
    sa.Column("items_approved", sa.Integer, nullable=False),
    sa.Column("items_edited", sa.Integer, nullable=False),
    sa.Column("items_rejected", sa.Integer, nullable=False),
    sa.Column("items_added", sa.Integer, nullable=False),
    sa.Column("caption_agrees", sa.Boolean),
    sa.Column("items_compared", sa.Integer),
    sa.Column("items_agreed", sa.Integer),
    sa.Column("agreement_by_category", sa.JSON),  # {slug: [compared, agreed]}
    sa.Column("payload", sa.LargeBinary, nullable=False),  # the serialized Review
    sa.Column("kafka_partition", sa.Integer, nullable=False),
    sa.Column("kafka_offset", sa.BigInteger, nullable=False),
    sa.Column("recorded_at", _Time, nullable=False),
)

# The QA categories of each clip's QA set, for the review queue's category filter (a clip's QASet is in the
# events log as a serialized proto, which no query can look into).
clip_categories = sa.Table(
    "clip_categories",
    metadata,
    sa.Column("clip_id", sa.String(64), primary_key=True),
    sa.Column("category", sa.String(64), primary_key=True),
    sa.Index("ix_clip_categories_category", "category"),
)

# What the catalog follows: the Kafka cluster id its stored offsets belong to.
catalog_meta = sa.Table(
    "catalog_meta",
    metadata,
    sa.Column("key", sa.String(64), primary_key=True),
    sa.Column("value", sa.Text, nullable=False),
)
CLUSTER_ID_KEY = "kafka_cluster_id"


@overload
def utc(value: datetime) -> datetime: ...


@overload
def utc(value: None) -> None: ...


def utc(value: datetime | None) -> datetime | None:
    """SQLite hands back naive datetimes; every stored time is UTC."""
    if value is None or value.tzinfo is not None:
        return value
    return value.replace(tzinfo=UTC)


def utc_now() -> datetime:
    return datetime.now(UTC)


def proto_time(ts: Timestamp) -> datetime | None:
    """A proto Timestamp as a UTC datetime; an unset one (zero) is None."""
    if not ts.seconds and not ts.nanos:
        return None
    return ts.ToDatetime(tzinfo=UTC)


def new_video_columns(video_id: str, now: datetime) -> dict[str, Any]:
    """A video row before anything is known of it beyond its id."""
    return {
        "video_id": video_id,
        "announced": False,
        "status": VideoStatus.uploaded.value,
        "settled": False,
        "created_at": now,
        "updated_at": now,
    }


def announced_video_columns(message: events_pb2.VideoUploaded) -> dict[str, Any]:
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
        "uploaded_at": proto_time(message.uploaded_at),
    }


def video_info(row: RowMapping) -> events_pb2.VideoInfo:
    """A video row's probe results as the VideoInfo its upload announced (the columns carry the proto's
    field names; an unknown one reads as the proto's zero)."""
    fields = events_pb2.VideoInfo.DESCRIPTOR.fields
    return events_pb2.VideoInfo(**{f.name: row[f.name] for f in fields if row[f.name] is not None})


def upload_message(row: RowMapping) -> events_pb2.VideoUploaded:
    """The inverse of announced_video_columns."""
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


class CatalogDatabase:
    """The catalog's engine with its tables created, and a counter that wakes watchers on each change."""

    def __init__(self, url: str) -> None:
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
