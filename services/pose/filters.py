"""HAIC's human-existence and human-action filters (section 3.1), as pure functions of detections.

Readings chosen where the paper is ambiguous (docs: README, "Pose stage"), each fixed so that the
labelled videos in shared/videos come out as labelled:

- Coverage: the union of the people's boxes, overlaps counted once, must cover ``min_person_area_ratio``
  of the frame in every sampled frame (the count rule is per frame too, so the area rule is read the same way).
- Static people: a person's keypoint L1 distance between adjacent 1 fps samples is the sum over the
  keypoints confidently seen in both samples of |dx| + |dy| in coordinates normalised by the video's
  width and height, scaled to 17 keypoints when fewer are seen; the person moves when the mean over
  their adjacent pairs exceeds ``min_keypoint_l1``.
- Camera motion: for each adjacent pair the least-squares affine map P(t+1) = T P(t) over those
  keypoints (homogeneous 3x17) is fitted; the residual is the sum of squared errors of the fit; the
  person really acts when the mean residual over their pairs exceeds ``min_affine_residual``.
- A clip passes when at least one person passes both rules.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from services.core.motion import keypoint_motion
from services.pose.tracking import Observation, Track

EXISTENCE_STAGE = "pose.human_existence"
ACTION_STAGE = "pose.human_action"


@dataclass
class FilterResult:
    passed: bool
    stage: str
    reason_code: str = ""
    reason: str = ""
    values: dict[str, float] = field(default_factory=dict)
    # existence rule: (people, coverage) of each sampled frame, in the order given
    per_frame: list[tuple[int, float]] = field(default_factory=list)


def union_area(boxes: np.ndarray, width: int, height: int) -> float:
    """Area covered by the union of boxes [N, 4], clipped to the frame; overlaps count once."""
    if len(boxes) == 0:
        return 0.0
    b = np.asarray(boxes, dtype=np.float64).copy()
    b[:, [0, 2]] = np.clip(b[:, [0, 2]], 0, width)
    b[:, [1, 3]] = np.clip(b[:, [1, 3]], 0, height)
    xs = np.unique(b[:, [0, 2]])
    area = 0.0
    # Sweep over x: in each vertical strip the covered height is the union of the y intervals.
    for x1, x2 in itertools.pairwise(xs):
        inside = b[(b[:, 0] <= x1) & (b[:, 2] >= x2)]
        if len(inside) == 0:
            continue
        intervals = sorted(zip(inside[:, 1], inside[:, 3], strict=True))
        covered, cur_lo, cur_hi = 0.0, intervals[0][0], intervals[0][1]
        for lo, hi in intervals[1:]:
            if lo > cur_hi:
                covered += cur_hi - cur_lo
                cur_lo, cur_hi = lo, hi
            else:
                cur_hi = max(cur_hi, hi)
        covered += cur_hi - cur_lo
        area += (x2 - x1) * covered
    return area


def existence_reason_code(min_people: int) -> str:
    """The existence rule's reason for a frame with fewer than min_people people."""
    return "no_person" if min_people == 1 else "too_few_people"


def human_existence(
    frames: Sequence[np.ndarray],
    width: int,
    height: int,
    *,
    min_people: int,
    max_people: int,
    min_area_ratio: float,
) -> FilterResult:
    """Every sampled frame holds min_people..max_people people whose boxes cover min_area_ratio of it.

    frames: the person boxes [N, 4] (x1, y1, x2, y2 in pixels) of each sampled frame.
    """
    counts = np.array([len(boxes) for boxes in frames])
    coverage = np.array([union_area(boxes, width, height) for boxes in frames]) / float(width * height)
    values = {
        "existence_frames": float(len(frames)),
        "people_min": float(counts.min()) if len(counts) else 0.0,
        "people_max": float(counts.max()) if len(counts) else 0.0,
        "coverage_min": float(coverage.min()) if len(coverage) else 0.0,
        "coverage_mean": float(coverage.mean()) if len(coverage) else 0.0,
        "min_people": float(min_people),
        "max_people": float(max_people),
        "min_person_area_ratio": min_area_ratio,
    }
    per_frame = [(int(n), float(c)) for n, c in zip(counts, coverage, strict=True)]
    result = FilterResult(True, EXISTENCE_STAGE, values=values, per_frame=per_frame)
    empty = int(np.sum(counts < min_people))
    crowded = int(np.sum(counts > max_people))
    small = int(np.sum((counts >= min_people) & (counts <= max_people) & (coverage < min_area_ratio)))
    if empty:
        result.passed, result.reason_code = False, existence_reason_code(min_people)
        result.reason = f"{empty} of {len(frames)} sampled frames have fewer than {min_people} person(s)"
    elif crowded:
        result.passed, result.reason_code = False, "too_many_people"
        result.reason = f"{crowded} of {len(frames)} sampled frames have more than {max_people} people"
    elif small:
        result.passed, result.reason_code = False, "people_too_small"
        result.reason = (
            f"in {small} of {len(frames)} sampled frames the people's boxes cover less than "
            f"{min_area_ratio:.0%} of the frame (lowest {values['coverage_min']:.1%})"
        )
    return result


@dataclass(frozen=True)
class PairMotion:
    """Motion of one person between two adjacent samples."""

    t0_s: float
    t1_s: float
    keypoint_l1: float
    affine_residual: float
    keypoints_used: int


def pair_motion(
    a: Observation, b: Observation, width: int, height: int, min_keypoint_score: float
) -> PairMotion | None:
    """L1 distance and affine-fit residual between two samples of one person; None with < 3 shared keypoints."""
    motion = keypoint_motion(a.keypoints, b.keypoints, width, height, min_keypoint_score)
    if motion is None:
        return None
    return PairMotion(a.t_s, b.t_s, motion.keypoint_l1, motion.affine_residual, motion.keypoints_used)


def track_motion(track: Track, width: int, height: int, min_keypoint_score: float) -> list[PairMotion]:
    pairs = []
    for a, b in itertools.pairwise(track.samples):
        motion = pair_motion(a, b, width, height, min_keypoint_score)
        if motion is not None:
            pairs.append(motion)
    return pairs


def human_action(
    tracks: Sequence[Track],
    width: int,
    height: int,
    *,
    min_keypoint_l1: float,
    min_affine_residual: float,
    min_keypoint_score: float,
) -> FilterResult:
    """At least one tracked person moves (keypoint L1) in a way no camera motion explains (affine residual)."""
    best_l1, best_residual, moving, acting, measured = 0.0, 0.0, 0, 0, 0
    for track in tracks:
        pairs = track_motion(track, width, height, min_keypoint_score)
        if not pairs:
            continue
        measured += 1
        l1 = float(np.mean([p.keypoint_l1 for p in pairs]))
        residual = float(np.mean([p.affine_residual for p in pairs]))
        best_l1 = max(best_l1, l1)
        if l1 > min_keypoint_l1:
            moving += 1
            best_residual = max(best_residual, residual)
            if residual > min_affine_residual:
                acting += 1
    values = {
        "tracks": float(len(tracks)),
        "tracks_measured": float(measured),
        "tracks_moving": float(moving),
        "tracks_acting": float(acting),
        "keypoint_l1_max": best_l1,
        "affine_residual_max": best_residual,
        "min_keypoint_l1": min_keypoint_l1,
        "min_affine_residual": min_affine_residual,
    }
    result = FilterResult(acting > 0, ACTION_STAGE, values=values)
    if measured == 0:
        result.reason_code = "no_track"
        result.reason = "no person was seen with enough keypoints in two adjacent 1 fps samples"
    elif moving == 0:
        result.reason_code = "static_people"
        result.reason = (
            f"nobody moves: the largest mean keypoint L1 between adjacent samples is {best_l1:.4f}, "
            f"not above {min_keypoint_l1}"
        )
    elif acting == 0:
        result.reason_code = "camera_motion"
        result.reason = (
            f"the moving keypoints follow an affine (camera) motion: the largest mean fit residual is "
            f"{best_residual:.5f}, not above {min_affine_residual}"
        )
    return result
