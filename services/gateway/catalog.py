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
    clip_categories,
    clips,
    dead_letters,
    events,
    external_ids,
    new_video_columns,
    reviews,
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


# A clip's review state: no review yet, reviews by one person, or reviewed by one and checked by another.
REVIEW_STATES = ("unreviewed", "reviewed", "checked")
# The queue's state filter: these, `awaiting` (not yet checked) and `all`.
QUEUE_STATES = ("awaiting", *REVIEW_STATES, "all")


@dataclass(frozen=True)
class QueueEntry:
    """A clip in the review queue: its row (with the video's description), review state and reviewers."""

    clip: RowMapping
    review_state: str
    reviewers: list[str]
    categories: list[str]
    last_reviewed_at: datetime | None


@dataclass(frozen=True)
class CategoryAgreement:
    compared: int
    agreed: int


@dataclass(frozen=True)
class AgreementSummary:
    checked_clips: int
    checks: int
    captions_agreed: int
    items_compared: int
    items_agreed: int
    by_category: dict[str, CategoryAgreement]


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

    # --- reviews (the review desk) ---
    @staticmethod
    def _review_aggregate() -> sa.Subquery:
        """Per reviewed clip: its reviews, the last one's time, and whether one person checked another's."""
        checks_other = sa.and_(
            reviews.c.checked_reviewer.is_not(None), reviews.c.checked_reviewer != reviews.c.reviewer
        )
        return (
            sa.select(
                reviews.c.clip_id,
                sa.func.count().label("review_count"),
                sa.func.max(reviews.c.reviewed_at).label("last_reviewed_at"),
                sa.func.max(sa.case((checks_other, 1), else_=0)).label("checked"),
            )
            .group_by(reviews.c.clip_id)
            .subquery("review_aggregate")
        )

    def review_queue(
        self,
        *,
        state: str = "awaiting",
        video_id: str | None = None,
        stage: str | None = None,
        category: str | None = None,
        reviewer: str | None = None,
        limit: int = 50,
        offset: int = 0,
    ) -> tuple[list[QueueEntry], int]:
        """Captioned clips to review: judge-passed first, then unreviewed before reviewed, then oldest first."""
        aggregate = self._review_aggregate()
        review_count = sa.func.coalesce(aggregate.c.review_count, 0)
        review_state = sa.case(
            (sa.func.coalesce(aggregate.c.checked, 0) == 1, "checked"),
            (review_count > 0, "reviewed"),
            else_="unreviewed",
        )
        conditions: list[sa.ColumnElement[bool]] = [clips.c.caption_text.is_not(None)]
        if state == "awaiting":
            conditions.append(review_state != "checked")
        elif state != "all":
            conditions.append(review_state == state)
        if video_id is not None:
            conditions.append(clips.c.video_id == video_id)
        if stage is not None:
            conditions.append(clips.c.stage == stage)
        if category is not None:
            conditions.append(
                clips.c.clip_id.in_(sa.select(clip_categories.c.clip_id).where(clip_categories.c.category == category))
            )
        if reviewer is not None:
            conditions.append(clips.c.clip_id.in_(sa.select(reviews.c.clip_id).where(reviews.c.reviewer == reviewer)))
        joined = clips.outerjoin(aggregate, aggregate.c.clip_id == clips.c.clip_id).outerjoin(
            videos, videos.c.video_id == clips.c.video_id
        )
        query = (
            sa.select(
                clips,
                videos.c.description,
                review_state.label("review_state"),
                aggregate.c.last_reviewed_at,
            )
            .select_from(joined)
            .where(*conditions)
            .order_by(
                sa.case((clips.c.caption_judge_passed.is_(True), 0), else_=1),
                sa.case((review_count == 0, 0), else_=1),
                clips.c.created_at,
                clips.c.clip_id,
            )
            .limit(limit)
            .offset(offset)
        )
        with self.engine.connect() as conn:
            total = conn.execute(sa.select(sa.func.count()).select_from(joined).where(*conditions)).scalar_one()
            rows = conn.execute(query).mappings().all()
            ids = [row["clip_id"] for row in rows]
            reviewers: dict[str, list[str]] = {clip: [] for clip in ids}
            for row in conn.execute(
                sa.select(reviews.c.clip_id, reviews.c.reviewer)
                .where(reviews.c.clip_id.in_(ids))
                .order_by(reviews.c.reviewed_at, reviews.c.kafka_offset)
            ):
                if row.reviewer not in reviewers[row.clip_id]:
                    reviewers[row.clip_id].append(row.reviewer)
            categories: dict[str, list[str]] = {clip: [] for clip in ids}
            for row in conn.execute(
                sa.select(clip_categories)
                .where(clip_categories.c.clip_id.in_(ids))
                .order_by(clip_categories.c.category)
            ):
                categories[row.clip_id].append(row.category)
        entries = [
            QueueEntry(
                clip=row,
                review_state=row["review_state"],
                reviewers=reviewers[row["clip_id"]],
                categories=categories[row["clip_id"]],
                last_reviewed_at=utc(row["last_reviewed_at"]),
            )
            for row in rows
        ]
        return entries, int(total)

    def clip_reviews(self, clip_id: str) -> list[RowMapping]:
        """The clip's reviews, oldest first (review time, then their order on the topic)."""
        with self.engine.connect() as conn:
            return list(
                conn.execute(
                    sa.select(reviews)
                    .where(reviews.c.clip_id == clip_id)
                    .order_by(reviews.c.reviewed_at, reviews.c.kafka_partition, reviews.c.kafka_offset)
                ).mappings()
            )

    def find_review(self, review_id: str) -> RowMapping | None:
        with self.engine.connect() as conn:
            return conn.execute(sa.select(reviews).where(reviews.c.review_id == review_id)).mappings().first()

    @staticmethod
    def review_state(review_rows: Sequence[RowMapping]) -> str:
        """unreviewed (no review), reviewed (by one person), checked (one person checked another's review)."""
        if not review_rows:
            return "unreviewed"
        checked = any(r["checked_reviewer"] is not None and r["checked_reviewer"] != r["reviewer"] for r in review_rows)
        return "checked" if checked else "reviewed"

    def clip_messages(self, clip_id: str, topic: str) -> list[Message]:
        """The clip's messages of a topic from the event log, in the order the catalog recorded them."""
        with self.engine.connect() as conn:
            payloads = conn.execute(
                sa.select(events.c.payload)
                .where(events.c.entity_id == clip_id, events.c.topic == topic)
                .order_by(events.c.sequence)
            ).scalars()
            message_type = topics.message_type(topic)
            return [message_type.FromString(bytes(payload)) for payload in payloads]

    def review_agreement(self, video_id: str | None = None, batch: str | None = None) -> AgreementSummary:
        """Agreement of the checks (reviews of another person's review) of a video, a batch or all."""
        query = sa.select(
            reviews.c.clip_id,
            reviews.c.caption_agrees,
            reviews.c.items_compared,
            reviews.c.items_agreed,
            reviews.c.agreement_by_category,
        ).where(reviews.c.checked_reviewer.is_not(None), reviews.c.checked_reviewer != reviews.c.reviewer)
        if video_id is not None:
            query = query.where(reviews.c.video_id == video_id)
        if batch is not None:
            query = query.where(
                reviews.c.video_id.in_(sa.select(batch_videos.c.video_id).where(batch_videos.c.batch == batch))
            )
        with self.engine.connect() as conn:
            rows = conn.execute(query).all()
        by_category: dict[str, list[int]] = {}
        for row in rows:
            for slug, (compared, agreed) in (row.agreement_by_category or {}).items():
                counts = by_category.setdefault(slug, [0, 0])
                counts[0] += compared
                counts[1] += agreed
        return AgreementSummary(
            checked_clips=len({row.clip_id for row in rows}),
            checks=len(rows),
            captions_agreed=sum(1 for row in rows if row.caption_agrees),
            items_compared=sum(row.items_compared or 0 for row in rows),
            items_agreed=sum(row.items_agreed or 0 for row in rows),
            by_category={slug: CategoryAgreement(c[0], c[1]) for slug, c in sorted(by_category.items())},
        )
