"""The catalog's Kafka projection: every topic's messages applied to the catalog's tables.

The catalog is a Kafka sink: it consumes every topic as group haic-gateway-catalog, and writes each
message's effect together with the partition's next offset in one transaction. It implements
`bus.OffsetStore`, so a worker started on an empty database seeks to the beginning of every partition
and rebuilds the catalog from Kafka; it records which Kafka cluster those offsets belong to.

Idempotence: a message whose offset is already stored is skipped; a message produced twice (same
topic, entity and stage or variant) adds no second event row; clip rows are upserted by clip id.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from haic.v1 import events_pb2
from services.core import topics
from services.core.bus import Event, Output, PoisonMessageError
from services.core.contracts import category_slug
from services.gateway.catalog_schema import (
    CLUSTER_ID_KEY,
    CatalogDatabase,
    announced_video_columns,
    catalog_meta,
    clip_categories,
    clips,
    consumer_offsets,
    dead_letters,
    events,
    new_video_columns,
    proto_time,
    reviews,
    utc_now,
    videos,
)
from services.gateway.errors import GatewayConfigError
from services.gateway.status import (
    ClipState,
    ClipStatus,
    StageOutcome,
    UnknownStageError,
    VideoState,
    final_stage_rank,
    merge_clip_outcome,
    video_state,
)

log = logging.getLogger(__name__)

CONSUMER_GROUP = "haic-gateway-catalog"

_KEPT = (events_pb2.ITEM_DECISION_APPROVED, events_pb2.ITEM_DECISION_EDITED, events_pb2.ITEM_DECISION_ADDED)


def kept_items(review: events_pb2.Review) -> dict[str, events_pb2.QAItem | None]:
    """Each reviewed item's outcome: the item as kept (approved, edited or added: its after), or None
    when the reviewer rejected it."""
    return {
        item.item_id: (item.after if item.decision in _KEPT else None)
        for item in review.items
        if item.decision != events_pb2.ITEM_DECISION_UNSPECIFIED
    }


def _item_category(item: events_pb2.QAItemReview) -> str:
    return category_slug(item.after.category if item.HasField("after") else item.before.category)


def review_agreement(check: events_pb2.Review, checked: events_pb2.Review) -> dict[str, Any]:
    """How far a check agrees with the review it checks: the caption agrees when its rendered text is
    unchanged; an item both reviewed agrees when both kept it with the same after, or both rejected it."""
    mine, theirs = kept_items(check), kept_items(checked)
    by_category: dict[str, list[int]] = {}
    for item in check.items:
        if item.item_id not in theirs or item.item_id not in mine:
            continue  # added by the check: nothing to agree with
        counts = by_category.setdefault(_item_category(item), [0, 0])
        counts[0] += 1
        counts[1] += int(mine[item.item_id] == theirs[item.item_id])
    return {
        "caption_agrees": check.caption_after.text == checked.caption_after.text,
        "items_compared": sum(c[0] for c in by_category.values()),
        "items_agreed": sum(c[1] for c in by_category.values()),
        "agreement_by_category": by_category,
    }


def review_counts(review: events_pb2.Review) -> dict[str, int]:
    counts = {"items_approved": 0, "items_edited": 0, "items_rejected": 0, "items_added": 0}
    names = {
        events_pb2.ITEM_DECISION_APPROVED: "items_approved",
        events_pb2.ITEM_DECISION_EDITED: "items_edited",
        events_pb2.ITEM_DECISION_REJECTED: "items_rejected",
        events_pb2.ITEM_DECISION_ADDED: "items_added",
    }
    for item in review.items:
        if item.decision in names:
            counts[names[item.decision]] += 1
    return counts


def caption_changed(review: events_pb2.Review) -> bool:
    before, after = review.caption_before, review.caption_after
    return list(before.subjects) != list(after.subjects) or list(before.interactions) != list(after.interactions)


class CatalogProjection(CatalogDatabase):
    """Applies the topics' messages to the catalog; `handle` is the Kafka worker's handler, `load_offset`
    its offset store."""

    def __init__(self, url: str, final_stage: str = "filter") -> None:
        try:
            self.final_rank = final_stage_rank(final_stage)
        except UnknownStageError as exc:
            raise GatewayConfigError(f"HAIC_CATALOG_FINAL_STAGE: {exc}") from exc
        self.final_stage = final_stage
        super().__init__(url)
        self._backfill_categories()

    def _backfill_categories(self) -> None:
        """Fills clip_categories from the QA sets already logged, in a catalog made before the table was:
        its stored offsets are past those messages, which would not be applied again."""
        with self.engine.begin() as conn:
            if conn.execute(sa.select(sa.exists().select_from(clip_categories))).scalar():
                return
            payloads = conn.execute(sa.select(events.c.payload).where(events.c.topic == topics.QA)).scalars().all()
            for payload in payloads:
                self._record_categories(conn, events_pb2.QASet.FromString(bytes(payload)))

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
        if isinstance(message, events_pb2.Review):
            # A person's review, not a pipeline stage: its own table, outside the video's status and its
            # progress log (which ends when the pipeline settled the video; reviews come any time later).
            self._apply_review(conn, event, message)
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
        now = utc_now()
        self._lock_video(conn, video_id, now)
        entity_id, variant = video_id, ""
        if isinstance(message, events_pb2.VideoUploaded):
            conn.execute(
                sa.update(videos)
                .where(videos.c.video_id == video_id)
                .values(**announced_video_columns(message), announced=True, updated_at=now)
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
            self._record_categories(conn, message)
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

    def _record_categories(self, conn: Connection, qa: events_pb2.QASet) -> None:
        if not qa.span.clip_id:
            return
        for slug in sorted({category_slug(item.category) for item in qa.items}):
            conn.execute(
                self._insert(clip_categories)
                .values(clip_id=qa.span.clip_id, category=slug)
                .on_conflict_do_nothing(index_elements=[clip_categories.c.clip_id, clip_categories.c.category])
            )

    def _apply_review(self, conn: Connection, event: Event, review: events_pb2.Review) -> None:
        """One row per review id (a review produced twice is stored once); a check's agreement with the
        review it checks is computed here, from that review's stored payload (both are keyed by the video
        id, so on one partition, the checked one first)."""
        if not review.review_id or not review.span.clip_id:
            raise PoisonMessageError(f"{event.topic}@{event.offset}: a review without review_id or clip id")
        agreement: dict[str, Any] = {}
        checked_reviewer = None
        if review.checks_review_id:
            checked = conn.execute(
                sa.select(reviews.c.payload).where(reviews.c.review_id == review.checks_review_id)
            ).scalar_one_or_none()
            if checked is None:
                log.warning(
                    "review %s checks %s, which the catalog does not have", review.review_id, review.checks_review_id
                )
            else:
                checked_review = events_pb2.Review.FromString(bytes(checked))
                checked_reviewer = checked_review.reviewer
                agreement = review_agreement(review, checked_review)
        conn.execute(
            self._insert(reviews)
            .values(
                review_id=review.review_id,
                clip_id=review.span.clip_id,
                video_id=review.video_id or event.key,
                reviewer=review.reviewer,
                reviewed_at=proto_time(review.reviewed_at),
                checks_review_id=review.checks_review_id,
                checked_reviewer=checked_reviewer,
                decision="rejected" if review.decision == events_pb2.REVIEW_DECISION_REJECTED else "accepted",
                caption_changed=caption_changed(review),
                payload=review.SerializeToString(),
                kafka_partition=event.partition,
                kafka_offset=event.offset,
                recorded_at=utc_now(),
                **review_counts(review),
                **agreement,
            )
            .on_conflict_do_nothing(index_elements=[reviews.c.review_id])
        )

    def _apply_dead_letter(self, conn: Connection, event: Event, letter: events_pb2.DeadLetter) -> None:
        video_id = event.key or letter.key.decode("utf-8", errors="replace")
        now = utc_now()
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
                failed_at=proto_time(letter.failed_at),
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
            .values(**new_video_columns(video_id, now))
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
