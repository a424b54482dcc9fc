"""Status rules of videos and clips, as pure functions over what the catalog has recorded.

Stages run in the order of STAGE_ORDER. A verdict's stage is "<stage>.<step>" ("filter.scene",
"pose.human_action"); only the part before the dot counts for ordering. HAIC_CATALOG_FINAL_STAGE
names the last stage deployed today: a clip is settled once it is rejected or has passed that stage.

Video status:
- failed: a dead letter exists for the video (a stage gave up on one of its messages; terminal);
- rejected: a video-level rejection (a verdict without a span), or every clip settled and none passed;
- completed: every clip settled (clip_count of them) and at least one passed the final stage;
- processing: some clip outcome is known, not all settled;
- uploaded: announced, no clip outcome yet.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from enum import StrEnum

from services.core.topology import STAGE_ORDER

NOT_PASSED = -1  # passed_rank of a clip that has passed no stage


class VideoStatus(StrEnum):
    uploaded = "uploaded"
    processing = "processing"
    rejected = "rejected"
    completed = "completed"
    failed = "failed"


class ClipStatus(StrEnum):
    """The `verdict` of a clip in the API."""

    candidate = "candidate"  # passed the filter, no later verdict yet
    accepted = "accepted"  # passed the pose stage (or a later one)
    rejected = "rejected"


class UnknownStageError(ValueError):
    """A stage name outside STAGE_ORDER where one of them is required."""


def stage_family(stage: str) -> str:
    """ "pose.human_action" -> "pose"."""
    return stage.split(".", 1)[0]


def stage_rank(stage: str) -> int:
    """Position of the stage's family in STAGE_ORDER; NOT_PASSED for a stage outside the pipeline."""
    family = stage_family(stage)
    return STAGE_ORDER.index(family) if family in STAGE_ORDER else NOT_PASSED


def final_stage_rank(final_stage: str) -> int:
    if final_stage not in STAGE_ORDER:
        raise UnknownStageError(f"final stage {final_stage!r} is not one of {', '.join(STAGE_ORDER)}")
    return STAGE_ORDER.index(final_stage)


@dataclass(frozen=True)
class StageOutcome:
    """One stage's decision about one clip."""

    stage: str
    rejected: bool
    reason_code: str = ""
    reason: str = ""
    values: Mapping[str, float] = field(default_factory=dict)


@dataclass(frozen=True)
class ClipState:
    """What the catalog keeps about a clip's progress."""

    verdict: ClipStatus
    stage: str
    reason_code: str
    reason: str
    values: dict[str, float]
    passed_rank: int


def merge_clip_outcome(current: ClipState | None, outcome: StageOutcome) -> ClipState:
    """The clip's state after `outcome`, whatever order the topics delivered the outcomes in.

    A rejection is final. A pass raises passed_rank; the row shows the furthest stage passed, so a
    late filter pass arriving after a pose acceptance changes nothing but the values it adds. Measured
    values accumulate over the stages (the furthest stage's value wins a shared name), so an accepted
    clip keeps the pose stage's measurements after the captioner, QA and scoring outcomes.
    """
    values = {k: float(v) for k, v in outcome.values.items()}
    if current is not None and current.verdict == ClipStatus.rejected:
        return current
    earlier = current.values if current is not None else {}
    current_rank = current.passed_rank if current is not None else NOT_PASSED
    if outcome.rejected:
        merged = {**earlier, **values}
        return ClipState(ClipStatus.rejected, outcome.stage, outcome.reason_code, outcome.reason, merged, current_rank)
    rank = stage_rank(outcome.stage)
    if current is not None and rank < current_rank:
        return replace(current, values={**values, **earlier})
    verdict = ClipStatus.accepted if rank >= STAGE_ORDER.index("pose") else ClipStatus.candidate
    return ClipState(verdict, outcome.stage, outcome.reason_code, outcome.reason, {**earlier, **values}, rank)


def clip_settled(verdict: str, passed_rank: int, final_rank: int) -> bool:
    return verdict == ClipStatus.rejected or passed_rank >= final_rank


@dataclass(frozen=True)
class VideoState:
    status: VideoStatus
    settled: bool


def video_state(
    *,
    failed: bool,
    video_rejected: bool,
    clip_count: int | None,
    clips: Iterable[tuple[str, int]],
    final_rank: int,
) -> VideoState:
    """The video's status from its dead letters, video-level rejection and (verdict, passed_rank) per clip."""
    if failed:
        return VideoState(VideoStatus.failed, True)
    if video_rejected:
        return VideoState(VideoStatus.rejected, True)
    clips = list(clips)
    if not clips:
        return VideoState(VideoStatus.uploaded, False)
    settled = [(verdict, rank) for verdict, rank in clips if clip_settled(verdict, rank, final_rank)]
    if clip_count and len(settled) >= clip_count:
        passed = any(verdict != ClipStatus.rejected for verdict, _ in settled)
        return VideoState(VideoStatus.completed if passed else VideoStatus.rejected, True)
    return VideoState(VideoStatus.processing, False)
