"""The yield report: the funnel of a batch of videos (or of all) through the pipeline, from the catalog.

`build_report(engine, ...)` runs read-only SQLAlchemy Core queries over the catalog's videos, clips and
events tables (SQLite or PostgreSQL alike) and aggregates in Python: measured values are a JSON column,
whose operators differ between the two databases, and a report reads each row once anyway.

Percentages are of the videos in: the paper's 0.31%-1.3% yield is the share of videos with at least one
caption the judge passed.
"""

from __future__ import annotations

import itertools
from collections import Counter, defaultdict
from collections.abc import Sequence
from datetime import UTC, datetime

import numpy as np
import sqlalchemy as sa
from pydantic import BaseModel, Field
from sqlalchemy.engine import Engine

from services.core import topics
from services.gateway.catalog_schema import batch_videos, clips, events, reviews, utc, videos
from services.gateway.status import stage_rank

HISTOGRAM_BINS = 20
# The measured values behind the pose stage's rules (services/pose/filters.py), with the rule's threshold
# key where the clip's values carry it.
DISTRIBUTIONS: tuple[tuple[str, str, str | None], ...] = (
    ("keypoint_l1_max", "keypoint L1 (largest over tracks)", "min_keypoint_l1"),
    ("affine_residual_max", "affine residual (largest over tracks)", "min_affine_residual"),
    ("coverage_min", "person coverage (lowest sampled frame)", "min_person_area_ratio"),
    ("people_max", "people per frame (most in a sampled frame)", "max_people"),
)
# Stages in pipeline order; a video's time in a stage is from its last event of the stage before to its
# last event of this one (catalog time: when the gateway recorded the event).
STAGES: tuple[str, ...] = ("upload", "filter", "pose", "captioner", "qagen")
_TOPIC_STAGE = {
    topics.VIDEOS: "upload",
    topics.CLIPS_CANDIDATE: "filter",
    topics.CAPTIONS: "captioner",
    topics.QA: "qagen",
}


class FunnelStep(BaseModel):
    step: str
    description: str
    videos: int = Field(description="Videos with at least one clip at this step (videos in: all of them)")
    percent: float = Field(description="videos / videos in, in percent")
    clips: int | None = Field(None, description="Clips at this step (QA items for the QA step)")


class RejectionRow(BaseModel):
    level: str = Field(description="`video` (the whole video was rejected) or `clip`")
    stage: str
    reason_code: str
    videos: int = Field(description="Videos with this rejection")
    percent: float = Field(description="videos / videos in, in percent")
    clips: int = Field(description="Clips with this rejection (0 for video-level ones)")


class Distribution(BaseModel):
    key: str = Field(description="The key in the clips' measured values")
    label: str
    count: int
    threshold: float | None = Field(None, description="The rule's threshold, as the clips recorded it")
    min: float | None = None
    p10: float | None = None
    p50: float | None = None
    p90: float | None = None
    max: float | None = None
    bin_edges: list[float] = Field(default_factory=list, description=f"{HISTOGRAM_BINS} equal bins, min to max")
    bin_counts: list[int] = Field(default_factory=list)


class StageTime(BaseModel):
    stage: str
    videos: int = Field(description="Videos whose time in this stage is known")
    p50_s: float | None = None
    p90_s: float | None = None


class ReviewSection(BaseModel):
    """People's reviews of the captioned clips (the review desk): how many were reviewed and checked, and how
    often the checker agreed with the first reviewer."""

    captioned_clips: int
    unreviewed: int
    reviewed: int = Field(description="Reviewed by one person")
    checked: int = Field(description="Reviewed by one person and checked by another")
    checks: int = Field(description="Reviews that check another person's review")
    caption_agreement: float | None = Field(None, description="Share of checks that left the caption text as it was")
    items_compared: int = 0
    item_agreement: float | None = Field(None, description="Share of QA items both kept alike or both rejected")


class YieldReport(BaseModel):
    generated_at: datetime
    since: datetime | None = None
    until: datetime | None = None
    video_ids: list[str] | None = None
    batch: str | None = None
    videos_in: int
    yield_percent: float = Field(description="Videos with a judge-passed caption / videos in, in percent")
    funnel: list[FunnelStep]
    rejections: list[RejectionRow]
    distributions: list[Distribution]
    stage_times: list[StageTime]
    review: ReviewSection


def _percent(part: int, whole: int) -> float:
    return round(100.0 * part / whole, 4) if whole else 0.0


def _as_utc(value: datetime | None) -> datetime | None:
    """A naive bound is UTC; an aware one is converted (SQLite compares the stored UTC text)."""
    if value is None:
        return None
    if value.tzinfo is None:
        return value.replace(tzinfo=UTC)
    try:
        return value.astimezone(UTC)
    except OverflowError:  # year 1 or 9999 shifted out of range: the bound is before or after any upload
        return datetime.min.replace(tzinfo=UTC) if value.year == 1 else datetime.max.replace(tzinfo=UTC)


def _distribution(key: str, label: str, values: list[float], threshold: float | None) -> Distribution:
    if not values:
        return Distribution(key=key, label=label, count=0, threshold=threshold)
    data = np.asarray(values, dtype=float)
    p10, p50, p90 = (float(v) for v in np.percentile(data, [10, 50, 90]))
    counts, edges = np.histogram(data, bins=HISTOGRAM_BINS)
    return Distribution(
        key=key,
        label=label,
        count=len(values),
        threshold=threshold,
        min=float(data.min()),
        p10=p10,
        p50=p50,
        p90=p90,
        max=float(data.max()),
        bin_edges=[float(e) for e in edges],
        bin_counts=[int(c) for c in counts],
    )


def _event_stage(topic: str, variant: str) -> str | None:
    if topic in _TOPIC_STAGE:
        return _TOPIC_STAGE[topic]
    if topic in (topics.CLIPS_ACCEPTED, topics.CLIPS_REJECTED):
        stage = variant.split(".", 1)[0]
        return stage if stage in STAGES else None
    return None


def _stage_times(rows: Sequence[sa.Row]) -> list[StageTime]:
    last: dict[str, dict[str, datetime]] = defaultdict(dict)
    for row in rows:
        stage = _event_stage(row.topic, row.variant)
        recorded = utc(row.recorded_at)
        if stage is None or recorded is None:
            continue
        seen = last[row.video_id].get(stage)
        if seen is None or recorded > seen:
            last[row.video_id][stage] = recorded
    durations: dict[str, list[float]] = {stage: [] for stage in STAGES[1:]}
    for per_stage in last.values():
        for before, stage in itertools.pairwise(STAGES):
            if before in per_stage and stage in per_stage:
                durations[stage].append(max(0.0, (per_stage[stage] - per_stage[before]).total_seconds()))
    result = []
    for stage, values in durations.items():
        if values:
            p50, p90 = (round(float(v), 3) for v in np.percentile(values, [50, 90]))
            result.append(StageTime(stage=stage, videos=len(values), p50_s=p50, p90_s=p90))
        else:
            result.append(StageTime(stage=stage, videos=0))
    return result


def _review_section(captioned_clips: int, rows: Sequence[sa.Row]) -> ReviewSection:
    checks = [row for row in rows if row.checked_reviewer is not None and row.checked_reviewer != row.reviewer]
    checked = {row.clip_id for row in checks}
    reviewed = {row.clip_id for row in rows} - checked
    compared = sum(row.items_compared or 0 for row in checks)
    return ReviewSection(
        captioned_clips=captioned_clips,
        unreviewed=max(0, captioned_clips - len(reviewed) - len(checked)),
        reviewed=len(reviewed),
        checked=len(checked),
        checks=len(checks),
        caption_agreement=round(sum(1 for row in checks if row.caption_agrees) / len(checks), 4) if checks else None,
        items_compared=compared,
        item_agreement=round(sum(row.items_agreed or 0 for row in checks) / compared, 4) if compared else None,
    )


def build_report(
    engine: Engine,
    since: datetime | None = None,
    until: datetime | None = None,
    video_ids: Sequence[str] | None = None,
    batch: str | None = None,
) -> YieldReport:
    """The funnel of the videos uploaded in [since, until) (or of the given ids or batch, or of all)."""
    since, until = _as_utc(since), _as_utc(until)
    condition: sa.ColumnElement[bool] = sa.true()
    uploaded = sa.func.coalesce(videos.c.uploaded_at, videos.c.created_at)
    if since is not None:
        condition = sa.and_(condition, uploaded >= since)
    if until is not None:
        condition = sa.and_(condition, uploaded < until)
    if video_ids is not None:
        condition = sa.and_(condition, videos.c.video_id.in_(list(video_ids)))
    if batch is not None:
        members = sa.select(batch_videos.c.video_id).where(batch_videos.c.batch == batch)
        condition = sa.and_(condition, videos.c.video_id.in_(members))
    selected = sa.select(videos.c.video_id).where(condition)
    with engine.connect() as conn:
        video_rows = conn.execute(
            sa.select(videos.c.video_id, videos.c.rejection_stage, videos.c.rejection_reason_code).where(condition)
        ).all()
        clip_rows = conn.execute(
            sa.select(
                clips.c.video_id,
                clips.c.verdict,
                clips.c.stage,
                clips.c.reason_code,
                clips.c.passed_rank,
                clips.c.measured_values,
                clips.c.caption_judge_passed,
                clips.c.qa_item_count,
                clips.c.caption_text.is_not(None).label("captioned"),
            ).where(clips.c.video_id.in_(selected))
        ).all()
        review_rows = conn.execute(
            sa.select(
                reviews.c.clip_id,
                reviews.c.reviewer,
                reviews.c.checked_reviewer,
                reviews.c.caption_agrees,
                reviews.c.items_compared,
                reviews.c.items_agreed,
            ).where(reviews.c.video_id.in_(selected))
        ).all()
        event_rows = conn.execute(
            sa.select(events.c.video_id, events.c.topic, events.c.variant, events.c.recorded_at).where(
                events.c.video_id.in_(selected)
            )
        ).all()

    videos_in = len(video_rows)
    rejections: list[RejectionRow] = []
    video_level = Counter((r.rejection_stage, r.rejection_reason_code or "") for r in video_rows if r.rejection_stage)
    for (stage, code), count in sorted(video_level.items()):
        rejections.append(
            RejectionRow(
                level="video", stage=stage, reason_code=code, videos=count, percent=_percent(count, videos_in), clips=0
            )
        )
    clip_level: dict[tuple[str, str], list[str]] = defaultdict(list)
    pose_rank = stage_rank("pose")
    produced: set[str] = set()
    produced_clips = accepted_clips = passed_clips = qa_items = 0
    accepted_videos: set[str] = set()
    passed_videos: set[str] = set()
    qa_videos: set[str] = set()
    measured: dict[str, list[float]] = {key: [] for key, _, _ in DISTRIBUTIONS}
    thresholds: dict[str, float] = {}
    for row in clip_rows:
        # The furthest stage the clip passed. A rejection is final and topics are not ordered among
        # themselves, so a clip rejected by a later stage before its earlier pass arrived keeps no
        # passed_rank: being rejected at a stage means it passed the one before.
        passed = row.passed_rank
        if row.verdict == "rejected":
            clip_level[(row.stage, row.reason_code or "")].append(row.video_id)
            passed = max(passed, stage_rank(row.stage) - 1)
        if passed >= 0:  # passed the filter: a clip the pipeline produced
            produced.add(row.video_id)
            produced_clips += 1
        if passed >= pose_rank:
            accepted_videos.add(row.video_id)
            accepted_clips += 1
        if row.caption_judge_passed:
            passed_videos.add(row.video_id)
            passed_clips += 1
        if row.qa_item_count:
            qa_videos.add(row.video_id)
            qa_items += row.qa_item_count
        values = row.measured_values or {}
        for key, _, threshold_key in DISTRIBUTIONS:
            if key in values:
                measured[key].append(float(values[key]))
                if threshold_key and threshold_key in values:
                    thresholds.setdefault(key, float(values[threshold_key]))
    for (stage, code), video_list in sorted(clip_level.items()):
        count = len(set(video_list))
        rejections.append(
            RejectionRow(
                level="clip",
                stage=stage,
                reason_code=code,
                videos=count,
                percent=_percent(count, videos_in),
                clips=len(video_list),
            )
        )

    def step(name: str, description: str, count: int, clip_count: int | None) -> FunnelStep:
        return FunnelStep(
            step=name, description=description, videos=count, percent=_percent(count, videos_in), clips=clip_count
        )

    funnel = [
        step("videos_in", "videos uploaded", videos_in, None),
        step("clips_produced", "videos with a clip past the filter stage", len(produced), produced_clips),
        step("pose_accepted", "videos with a clip accepted by the pose stage", len(accepted_videos), accepted_clips),
        step("caption_passed", "videos with a caption the judge passed", len(passed_videos), passed_clips),
        step("qa_items", "videos with QA items (clips: QA items)", len(qa_videos), qa_items),
    ]
    return YieldReport(
        generated_at=datetime.now(UTC),
        since=since,
        until=until,
        video_ids=list(video_ids) if video_ids is not None else None,
        batch=batch,
        videos_in=videos_in,
        yield_percent=_percent(len(passed_videos), videos_in),
        funnel=funnel,
        rejections=rejections,
        distributions=[
            _distribution(key, label, measured[key], thresholds.get(key)) for key, label, _ in DISTRIBUTIONS
        ],
        stage_times=_stage_times(event_rows),
        review=_review_section(sum(1 for row in clip_rows if row.captioned), review_rows),
    )
