"""The caption judge (HAIC section 3.2's judgement, as rules): format compliance and consistency with
the pose evidence. A failed caption keeps its reasons; it is kept for inspection and left out of
training exports.

Rules, each a reason code in Judgement.reasons when broken:
- format: ``no_subjects``, ``empty_label``, ``duplicate_labels`` (subjects must be told apart by
  attributes), ``actions_out_of_order``, ``action_outside_clip``, ``empty_action``, ``text_missing_subject``
  (every subject introduced as "The first subject ..."), ``text_missing_time_markers`` (a subject with
  several actions is told "Initially ..., then ..., finally ...");
- ``malformed_output``: the backend's answer never parsed (MLLM); the caption holds the raw answer;
- consistency: ``subject_count_mismatch`` (subjects = tracked people), ``unknown_track``,
  ``action_for_still_person`` (no action for a person whose keypoints never move),
  ``count_mismatch`` (a repetition count differs from the pose-grounded count of the same action by
  more than the tolerance).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np

from haic.v1 import events_pb2
from services.captioner.render import ordinal
from services.pose.filters import track_motion
from services.pose.tracking import Observation, Track

JUDGE = "rules"
MALFORMED_OUTPUT = "malformed_output"
_EPS_S = 0.05  # time tolerance for actions at the clip's edges (frame snapping)


def track_from_proto(track: events_pb2.PersonTrack) -> Track:
    return Track(
        track.track_id,
        [
            Observation(
                s.t_s,
                np.array([s.box.x1, s.box.y1, s.box.x2, s.box.y2]),
                s.box.score,
                np.array([[k.x, k.y, k.score] for k in s.keypoints], dtype=np.float64).reshape(-1, 3),
            )
            for s in track.samples
        ],
    )


def motion_of(track: events_pb2.PersonTrack, width: int, height: int, min_keypoint_score: float) -> float:
    """The largest keypoint L1 between adjacent samples of a track (the pose stage's measure)."""
    pairs = track_motion(track_from_proto(track), width, height, min_keypoint_score)
    return max((p.keypoint_l1 for p in pairs), default=0.0)


def judge_caption(
    caption: events_pb2.Caption,
    tracks: Sequence[events_pb2.PersonTrack],
    width: int,
    height: int,
    *,
    still_l1: float,
    min_keypoint_score: float,
    count_tolerance: int = 1,
    reference_actions: Mapping[int, Sequence[events_pb2.Action]] | None = None,
) -> events_pb2.Judgement:
    """Checks a caption against its clip's tracks. still_l1: a track whose largest adjacent-sample keypoint
    L1 (the pose stage's measure, on the tracks given) stays at or below it never moves."""
    reasons: list[str] = []
    subjects = list(caption.subjects)
    span = caption.span
    if not subjects:
        reasons.append("no_subjects")
    labels = [s.label.strip() for s in subjects]
    if any(not label for label in labels):
        reasons.append("empty_label")
    if len(set(labels)) != len(labels):
        reasons.append("duplicate_labels")
    for index, subject in enumerate(subjects):
        starts = [a.start_s for a in subject.actions]
        if starts != sorted(starts):
            reasons.append("actions_out_of_order")
        for action in subject.actions:
            if not action.verb_phrase.strip():
                reasons.append("empty_action")
            if action.start_s > action.end_s or (
                span.end_s > span.start_s
                and (action.start_s < span.start_s - _EPS_S or action.end_s > span.end_s + _EPS_S)
            ):
                reasons.append("action_outside_clip")
        if f"The {ordinal(index)} subject" not in caption.text:
            reasons.append("text_missing_subject")
        if len(subject.actions) > 1 and not ("Initially" in caption.text and "finally" in caption.text):
            reasons.append("text_missing_time_markers")

    by_id = {t.track_id: t for t in tracks}
    if len(subjects) != len(tracks):
        reasons.append("subject_count_mismatch")
    motion: dict[int, float] = {}
    for subject in subjects:
        track = by_id.get(subject.track_id)
        if track is None:
            reasons.append("unknown_track")
            continue
        motion[subject.track_id] = motion_of(track, width, height, min_keypoint_score)
        if subject.actions and motion[subject.track_id] <= still_l1:
            reasons.append("action_for_still_person")
        for action in subject.actions:
            if action.repetitions and reference_actions is not None:
                reference = _matching(action, reference_actions.get(subject.track_id, ()))
                if reference is not None and abs(reference.repetitions - action.repetitions) > count_tolerance:
                    reasons.append("count_mismatch")
    unique = list(dict.fromkeys(reasons))
    scores = {f"motion_l1_track_{k}": v for k, v in motion.items()}
    scores["subjects"] = float(len(subjects))
    scores["tracks"] = float(len(tracks))
    return events_pb2.Judgement(passed=not unique, reasons=unique, scores=scores, judge=JUDGE)


def _matching(action: events_pb2.Action, candidates: Sequence[events_pb2.Action]) -> events_pb2.Action | None:
    """The counted reference action on the same body part that overlaps this one most in time."""
    best, best_overlap = None, 0.0
    for candidate in candidates:
        if not candidate.repetitions or candidate.body_part != action.body_part:
            continue
        overlap = min(candidate.end_s, action.end_s) - max(candidate.start_s, action.start_s)
        if overlap > best_overlap:
            best, best_overlap = candidate, overlap
    return best
