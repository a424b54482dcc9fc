"""Status rules: clip outcomes merged in any order, and the video status derived from them."""

from __future__ import annotations

import pytest

from services.gateway.status import (
    NOT_PASSED,
    ClipStatus,
    StageOutcome,
    UnknownStageError,
    VideoStatus,
    final_stage_rank,
    merge_clip_outcome,
    stage_rank,
    video_state,
)

FILTER = final_stage_rank("filter")
POSE = final_stage_rank("pose")


def test_stage_rank_uses_the_family_before_the_dot() -> None:
    assert stage_rank("filter.scene") == 0
    assert stage_rank("pose.human_action") == 1
    assert stage_rank("scoring") == 4
    assert stage_rank("unknown.step") == NOT_PASSED


def test_unknown_final_stage_is_refused() -> None:
    with pytest.raises(UnknownStageError, match="captions"):
        final_stage_rank("captions")


def test_candidate_then_pose_acceptance() -> None:
    state = merge_clip_outcome(None, StageOutcome("filter", rejected=False, values={"duration_s": 8.0}))
    assert (state.verdict, state.stage, state.passed_rank) == (ClipStatus.candidate, "filter", 0)
    state = merge_clip_outcome(state, StageOutcome("pose.human_action", rejected=False, values={"l1": 0.3}))
    assert (state.verdict, state.stage, state.passed_rank) == (ClipStatus.accepted, "pose.human_action", 1)
    assert state.values == {"duration_s": 8.0, "l1": 0.3}  # the filter's measurement stays
    state = merge_clip_outcome(state, StageOutcome("qagen", rejected=False))
    assert state.values == {"duration_s": 8.0, "l1": 0.3}  # a stage without measurements keeps them


def test_late_filter_pass_does_not_undo_a_pose_acceptance() -> None:
    state = merge_clip_outcome(None, StageOutcome("pose.human_action", rejected=False))
    late = merge_clip_outcome(state, StageOutcome("filter", rejected=False))
    assert late == state
    late = merge_clip_outcome(
        merge_clip_outcome(None, StageOutcome("pose.human_action", rejected=False, values={"l1": 0.3})),
        StageOutcome("filter", rejected=False, values={"duration_s": 8.0, "l1": 9.0}),
    )
    assert (late.stage, late.values) == ("pose.human_action", {"duration_s": 8.0, "l1": 0.3})


def test_rejection_is_final_whatever_arrives_after() -> None:
    rejected = merge_clip_outcome(
        None, StageOutcome("pose.human_existence", True, "no_person", "0 people", {"people": 0.0})
    )
    assert rejected.verdict is ClipStatus.rejected
    after = merge_clip_outcome(rejected, StageOutcome("filter", rejected=False))
    assert after == rejected
    assert (after.stage, after.reason_code, after.values) == ("pose.human_existence", "no_person", {"people": 0.0})


def test_rejection_after_a_pass_keeps_the_rank_passed() -> None:
    state = merge_clip_outcome(None, StageOutcome("filter", rejected=False))
    state = merge_clip_outcome(state, StageOutcome("pose.human_action", True, "static_person"))
    assert (state.verdict, state.stage, state.passed_rank) == (ClipStatus.rejected, "pose.human_action", 0)


@pytest.mark.parametrize(
    ("clips", "clip_count", "final_rank", "expected"),
    [
        ([], None, FILTER, (VideoStatus.uploaded, False)),
        ([("candidate", 0)], 2, FILTER, (VideoStatus.processing, False)),
        ([("candidate", 0), ("rejected", NOT_PASSED)], 2, FILTER, (VideoStatus.completed, True)),
        ([("rejected", NOT_PASSED), ("rejected", 0)], 2, FILTER, (VideoStatus.rejected, True)),
        # with pose deployed, a filter candidate is not settled yet
        ([("candidate", 0), ("rejected", NOT_PASSED)], 2, POSE, (VideoStatus.processing, False)),
        ([("accepted", 1), ("rejected", NOT_PASSED)], 2, POSE, (VideoStatus.completed, True)),
        ([("rejected", 0), ("rejected", NOT_PASSED)], 2, POSE, (VideoStatus.rejected, True)),
        # clip count unknown (no span carried one): never settled by clips
        ([("candidate", 0)], None, FILTER, (VideoStatus.processing, False)),
    ],
)
def test_video_status_from_clips(clips, clip_count, final_rank, expected) -> None:
    state = video_state(failed=False, video_rejected=False, clip_count=clip_count, clips=clips, final_rank=final_rank)
    assert (state.status, state.settled) == expected


def test_video_rejection_and_dead_letter_settle_the_video() -> None:
    rejected = video_state(failed=False, video_rejected=True, clip_count=None, clips=[], final_rank=FILTER)
    assert (rejected.status, rejected.settled) == (VideoStatus.rejected, True)
    failed = video_state(failed=True, video_rejected=False, clip_count=3, clips=[("candidate", 0)], final_rank=FILTER)
    assert (failed.status, failed.settled) == (VideoStatus.failed, True)
