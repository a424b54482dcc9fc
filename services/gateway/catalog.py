"""The gateway's catalog: videos, clips, a per-video event log, dead letters and consumer offsets.

The catalog is built in three layers: the tables and the engine (catalog_schema.py), the Kafka
projection that applies every topic's messages to them (catalog_projection.py), and here `Catalog`,
which adds what the API does: register uploads and their sources, and the queries it answers from.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime

import sqlalchemy as sa
from google.protobuf.message import Message
from sqlalchemy.engine import RowMapping

from haic.v1 import events_pb2
from services.core import topics
from services.gateway.catalog_projection import CatalogProjection
from services.gateway.catalog_schema import (
    announced_video_columns,
    batch_videos,
    clips,
    dead_letters,
    events,
    external_ids,
    new_video_columns,
    upload_message,
    utc,
    utc_now,
    videos,
)
from services.gateway.status import VideoState, VideoStatus


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


class Catalog(CatalogProjection):
    """The catalog database: the Kafka projection (`handle`, `load_offset`), upload registration and the
    API's queries."""

    # --- uploads ---
    def register_upload(self, message: events_pb2.VideoUploaded) -> bool:
        """Inserts the video if absent; True when this call inserted it (and so must announce it).

        The database decides between concurrent identical uploads: only one insert wins.
        """
        now = utc_now()
        statement = (
            self._insert(videos)
            .values(**new_video_columns(message.video_id, now), **announced_video_columns(message))
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
        now = utc_now()
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
        now = utc_now()
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

    def uploads(self, video_ids: Iterable[str] | None = None) -> list[events_pb2.VideoUploaded]:
        """The VideoUploaded of every video registered by an upload (or of the given ones), rebuilt from
        the catalog: what announcing them again sends."""
        query = sa.select(videos).where(videos.c.sha256.is_not(None), videos.c.storage_uri.is_not(None))
        if video_ids is not None:
            query = query.where(videos.c.video_id.in_(list(video_ids)))
        with self.engine.connect() as conn:
            rows = conn.execute(query.order_by(videos.c.created_at)).mappings().all()
        return [upload_message(row) for row in rows]

    def last_activity(self, video_id: str) -> datetime | None:
        """When the catalog last heard of the video (its row's last change)."""
        with self.engine.connect() as conn:
            value = conn.execute(sa.select(videos.c.updated_at).where(videos.c.video_id == video_id)).scalar()
        return utc(value)

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
