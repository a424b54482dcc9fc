"""Tracks of people across sampled frames.

Two kinds, for two readers:

- ``build_tracks``: the action filter's tracklets by maximal box IoU (HAIC section 3.1). Between each pair
  of consecutive 1 fps samples the pairs with the highest IoU are matched first (greedy, which equals the
  optimal assignment for the few well-separated people a curated clip holds); a person matched to nobody
  starts a new track, and with ``max_gap`` 0 a track that misses a frame ends, so the motion rules
  compare only adjacent samples.
- ``bytetrack_tracklets`` then ``stitch_tracks``: the captioner's 4 fps dense tracks, one per real
  person. ByteTrack (PyPI ``trackers``, Roboflow's maintained home of the ``supervision`` ByteTrack)
  links the samples with a Kalman-predicted box and an optimal IoU assignment and keeps a lost person
  for ``max_lost_s``; stitching then joins tracklets that cannot be two people: they never share a
  frame, the gap is short, the position is reachable in it, and the torso colours match
  (``torso_appearance``, from the frames the stage decoded).
  Ids are renumbered by first appearance, so the same samples always give the same ids.
- ``without_doubtful_tracks``: a dense track is a person only where the evidence is sure of them once, or
  where their keypoints move like a body's: a poster or bottles that passed the body check in a few frames
  are neither.
"""

from __future__ import annotations

import itertools
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import cv2
import numpy as np
import supervision as sv
from trackers import ByteTrackTracker
from trackers.utils.state_representations import XCYCSRStateEstimator

from services.core.motion import keypoint_motion
from services.core.settings import PoseSettings
from services.pose.contract import COCO_KEYPOINTS


@dataclass(frozen=True)
class Observation:
    """One person in one sampled frame, in the video's pixel coordinates."""

    t_s: float
    box: np.ndarray  # [4] x1, y1, x2, y2
    score: float
    keypoints: np.ndarray  # [17, 3] x, y, confidence


@dataclass
class Track:
    track_id: int
    samples: list[Observation] = field(default_factory=list)


def _intersections(a: np.ndarray, b: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Pairwise intersection areas [N, M] of boxes a [N, 4] and b [M, 4], and the areas of a [N] and b [M]."""
    a = np.asarray(a, dtype=np.float64).reshape(-1, 4)
    b = np.asarray(b, dtype=np.float64).reshape(-1, 4)
    x1 = np.maximum(a[:, None, 0], b[None, :, 0])
    y1 = np.maximum(a[:, None, 1], b[None, :, 1])
    x2 = np.minimum(a[:, None, 2], b[None, :, 2])
    y2 = np.minimum(a[:, None, 3], b[None, :, 3])
    inter = np.clip(x2 - x1, 0, None) * np.clip(y2 - y1, 0, None)
    return inter, (a[:, 2] - a[:, 0]) * (a[:, 3] - a[:, 1]), (b[:, 2] - b[:, 0]) * (b[:, 3] - b[:, 1])


def box_iou(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Pairwise IoU of boxes a [N, 4] and b [M, 4] -> [N, M]."""
    inter, area_a, area_b = _intersections(a, b)
    union = area_a[:, None] + area_b[None, :] - inter
    return np.where(union > 0, inter / np.where(union > 0, union, 1), 0.0)


def box_containment(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Pairwise fraction of each box of a [N, 4] lying inside each box of b [M, 4] -> [N, M]."""
    inter, area_a, _ = _intersections(a, b)
    area_a = area_a[:, None]
    return np.where(area_a > 0, inter / np.where(area_a > 0, area_a, 1), 0.0)


def build_tracks(frames: Sequence[Sequence[Observation]], min_iou: float, max_gap: int = 0) -> list[Track]:
    """Links the observations of frames given in time order into tracks; a track may skip up to
    ``max_gap`` frames."""
    tracks: list[Track] = []
    last_seen: dict[int, int] = {}  # track id -> index of the frame of its last observation
    for index, observations in enumerate(frames):
        open_tracks = [t for t in tracks if index - last_seen[t.track_id] - 1 <= max_gap]
        unmatched = list(range(len(observations)))
        if open_tracks and observations:
            iou = box_iou(np.stack([t.samples[-1].box for t in open_tracks]), np.stack([o.box for o in observations]))
            used_tracks: set[int] = set()
            for flat in np.argsort(-iou, axis=None):
                ti, oi = np.unravel_index(flat, iou.shape)
                if iou[ti, oi] < min_iou:
                    break
                if ti in used_tracks or oi not in unmatched:
                    continue
                used_tracks.add(int(ti))
                unmatched.remove(int(oi))
                open_tracks[ti].samples.append(observations[oi])
                last_seen[open_tracks[ti].track_id] = index
        for oi in unmatched:
            track = Track(len(tracks), [observations[oi]])
            tracks.append(track)
            last_seen[track.track_id] = index
    return tracks


# --- dense tracks: ByteTrack, then stitching by position and appearance --------------------------------

_TORSO = tuple(COCO_KEYPOINTS.index(name) for name in ("left_shoulder", "right_shoulder", "left_hip", "right_hip"))
_HSV_BINS = (8, 4, 4)  # hue, saturation, value: coarse enough for a few torso crops to fill it
_HSV_RANGES = (0, 180, 0, 256, 0, 256)
_MIN_TORSO_PX = 6  # a torso crop narrower or lower than this (in decoded pixels) holds no colour evidence
# ByteTrack counts its lost-track buffer in 30 fps frames, whatever the stream's rate
_BYTETRACK_FPS = 30.0


@dataclass(frozen=True)
class StitchRules:
    """When two tracklets are one person; the values come from the settings (HAIC_TRACK_STITCH_*), which hold
    the defaults, through `from_settings`."""

    max_gap_s: float
    max_speed: float  # box-centre displacement over the gap, in person heights per second
    max_appearance: float  # Bhattacharyya distance between torso colour histograms

    @classmethod
    def from_settings(cls, settings: PoseSettings) -> StitchRules:
        return cls(
            settings.track_stitch_max_gap_s, settings.track_stitch_max_speed, settings.track_stitch_max_appearance
        )


def bytetrack_tracklets(
    times: Sequence[float], frames: Sequence[Sequence[Observation]], *, min_iou: float, max_lost_s: float
) -> list[Track]:
    """Tracklets over samples given in time order, by ByteTrack; every observation lands in one tracklet.

    Every observation was already judged a person, so all are ByteTrack's high-confidence detections and
    any of them may start a track; a track lost for up to ``max_lost_s`` is matched again by its
    Kalman-predicted box.
    """
    tracker = ByteTrackTracker(
        lost_track_buffer=round(max_lost_s * _BYTETRACK_FPS),
        frame_rate=_BYTETRACK_FPS,
        track_activation_threshold=0.0,
        minimum_consecutive_frames=1,
        minimum_iou_threshold=min_iou,
        high_conf_det_threshold=0.0,
        # centre, area and aspect: a body that bends or kicks changes its box's shape, not where it is
        state_estimator_class=XCYCSRStateEstimator,
    )
    tracks: list[Track] = []
    by_tracklet: dict[int, tuple[object, Track]] = {}  # id(tracklet) -> (tracklet, its track); keeps it alive
    for t, observations in zip(times, frames, strict=True):
        known = {id(tracklet) for tracklet in tracker.tracks}
        detections = sv.Detections(
            xyxy=np.array([o.box for o in observations], dtype=np.float32).reshape(-1, 4),
            confidence=np.array([o.score for o in observations], dtype=np.float32),
            data={"index": np.arange(len(observations))},
        )
        result = tracker.update(detections, timestamp=float(t))
        indices = [int(i) for i in result.data.get("index", [])]
        # A tracklet gets ByteTrack's id on its second match; until then it is found by identity.
        spawned = iter(tracklet for tracklet in tracker.tracks if id(tracklet) not in known)
        live = {tracklet.tracker_id: tracklet for tracklet in tracker.tracks if tracklet.tracker_id >= 0}
        tracker_ids = result.tracker_id if result.tracker_id is not None else np.empty(0, dtype=int)
        for index, tracker_id in zip(indices, tracker_ids, strict=True):
            tracklet = live.get(int(tracker_id)) if tracker_id >= 0 else next(spawned, None)
            if tracklet is None:  # not kept by the tracker (cannot happen with activation 0): its own track
                tracks.append(Track(len(tracks), [observations[index]]))
                continue
            if id(tracklet) not in by_tracklet:
                by_tracklet[id(tracklet)] = (tracklet, Track(len(tracks)))
                tracks.append(by_tracklet[id(tracklet)][1])
            by_tracklet[id(tracklet)][1].samples.append(observations[index])
    for track in tracks:
        track.samples.sort(key=lambda o: o.t_s)
    return renumber(tracks)


def torso_appearance(
    frames: Mapping[float, np.ndarray],
    tracks: Sequence[Track],
    source_size: tuple[int, int],
    min_keypoint_score: float,
) -> dict[int, np.ndarray]:
    """Each track's appearance: the mean HSV histogram of its torso (shoulders to hips) over its samples.

    The seam for more identity evidence: anything that maps frames and tracks to one comparable vector
    per track (a face embedding) can stand beside this. ``frames`` are the decoded RGB frames by time;
    observations are in source pixels (``source_size`` = width, height). A track with no visible torso
    has no entry.
    """
    descriptors: dict[int, np.ndarray] = {}
    for track in tracks:
        histograms = [
            h
            for o in track.samples
            if (h := _torso_histogram(frames.get(o.t_s), o, source_size, min_keypoint_score)) is not None
        ]
        if histograms:
            descriptors[track.track_id] = np.mean(histograms, axis=0).astype(np.float32)
    return descriptors


def _torso_histogram(
    frame: np.ndarray | None, observation: Observation, source_size: tuple[int, int], min_keypoint_score: float
) -> np.ndarray | None:
    if frame is None:
        return None
    points = np.asarray(observation.keypoints, dtype=np.float64)[list(_TORSO)]
    seen = points[:, 2] >= min_keypoint_score
    if not seen[:2].all() and seen.sum() < 3:  # both shoulders, or a shoulder and both hips
        return None
    scale = np.array([frame.shape[1] / source_size[0], frame.shape[0] / source_size[1]])
    xy = points[seen, :2] * scale
    x1, y1 = xy.min(axis=0)
    x2, y2 = xy.max(axis=0)
    if not seen[2:].any():  # a close-up without hips: the chest, as far down as the shoulders are wide
        y2 = y1 + 0.8 * (x2 - x1)
    # the inner part of the shoulder-hip box: the garment, not the arms or the background beside it
    inset = 0.15 * (x2 - x1)
    x1, x2 = int(max(0, x1 + inset)), int(min(frame.shape[1], x2 - inset))
    y1, y2 = int(max(0, y1)), int(min(frame.shape[0], y2))
    if x2 - x1 < _MIN_TORSO_PX or y2 - y1 < _MIN_TORSO_PX:
        return None
    hsv = cv2.cvtColor(np.ascontiguousarray(frame[y1:y2, x1:x2]), cv2.COLOR_RGB2HSV)
    histogram = cv2.calcHist([hsv], [0, 1, 2], None, list(_HSV_BINS), list(_HSV_RANGES)).ravel()
    return histogram / max(float(histogram.sum()), 1.0)


def appearance_distance(a: np.ndarray, b: np.ndarray) -> float:
    """Bhattacharyya distance of two histograms: 0 the same, 1 nothing in common."""
    return float(cv2.compareHist(np.asarray(a, np.float32), np.asarray(b, np.float32), cv2.HISTCMP_BHATTACHARYYA))


def stitch_tracks(tracks: Sequence[Track], appearance: Mapping[int, np.ndarray], rules: StitchRules) -> list[Track]:
    """Joins tracklets of one person; the closest appearance first, until no pair qualifies.

    A pair qualifies when the two never share a sampled frame (one after the other, or taking turns when
    the tracker lost and found the person again) and at every hand-over from one to the other: the gap is
    at most ``max_gap_s``, the box centre moves at most ``max_speed`` heights per second over it (plus
    half a height for the box's own jitter) and the heights differ by less than a factor of two; and both
    have a torso appearance within ``max_appearance``. Two tracklets seen in one frame are two people.
    """
    merged = [Track(t.track_id, list(t.samples)) for t in sorted(tracks, key=lambda t: t.samples[0].t_s)]
    looks = {t.track_id: appearance[t.track_id] for t in merged if t.track_id in appearance}
    weight = {t.track_id: len(t.samples) for t in merged}
    while True:
        best: tuple[float, Track, Track] | None = None
        for a, b in itertools.combinations(merged, 2):
            if a.track_id not in looks or b.track_id not in looks:
                continue
            distance = appearance_distance(looks[a.track_id], looks[b.track_id])
            if distance <= rules.max_appearance and (best is None or distance < best[0]) and _one_person(a, b, rules):
                best = (distance, a, b)
        if best is None:
            return renumber(merged)
        _, a, b = best
        total = weight[a.track_id] + weight[b.track_id]
        looks[a.track_id] = (looks[a.track_id] * weight[a.track_id] + looks[b.track_id] * weight[b.track_id]) / total
        weight[a.track_id] = total
        a.samples = sorted(a.samples + b.samples, key=lambda o: o.t_s)
        merged.remove(b)


def _one_person(a: Track, b: Track, rules: StitchRules) -> bool:
    """a and b share no frame, and every hand-over between them is reachable by one person."""
    if {o.t_s for o in a.samples} & {o.t_s for o in b.samples}:
        return False
    owner = {id(o): "a" for o in a.samples} | {id(o): "b" for o in b.samples}
    joined = sorted(a.samples + b.samples, key=lambda o: o.t_s)
    return all(
        _reachable(previous, following, rules)
        for previous, following in itertools.pairwise(joined)
        if owner[id(previous)] != owner[id(following)]
    )


def _reachable(last: Observation, first: Observation, rules: StitchRules) -> bool:
    """One person seen at ``last`` can be seen at ``first``: soon enough and near enough."""
    gap = first.t_s - last.t_s
    if gap <= 0 or gap > rules.max_gap_s:
        return False
    heights = np.array([last.box[3] - last.box[1], first.box[3] - first.box[1]], dtype=np.float64)
    if heights.min() <= 0 or heights.max() > 2 * heights.min():
        return False
    centres = [np.array([(o.box[0] + o.box[2]) / 2, (o.box[1] + o.box[3]) / 2]) for o in (last, first)]
    moved = float(np.linalg.norm(centres[1] - centres[0])) / heights.mean()
    return moved <= rules.max_speed * gap + 0.5


@dataclass(frozen=True)
class DoubtRules:
    """When a dense track is no person (settings HAIC_MIN_PERSON_SCORE, HAIC_DOUBTFUL_TRACK_MIN_RESIDUAL,
    HAIC_MIN_KEYPOINT_SCORE)."""

    sure_score: float = 0.4  # a sample scoring this much is a person on the detector's word
    min_residual: float = 0.0016  # an adjacent-sample affine residual above this is a body moving its limbs
    min_keypoint_score: float = 0.2


def is_doubtful(track: Track, rules: DoubtRules, source_size: tuple[int, int]) -> bool:
    """The track is no person: no sample is sure (every one counted only on the body check, a neighbour or
    multipose, all below ``sure_score``) and its keypoints never move like a body's (no adjacent pair of
    samples leaves an affine residual above ``min_residual``: a rigid thing, however it is moved or the
    camera moves over it). A dim real person moves their limbs (the man on a dark stage: up to 0.19)."""
    if any(o.score >= rules.sure_score for o in track.samples):
        return False
    width, height = source_size
    for first, second in itertools.pairwise(sorted(track.samples, key=lambda o: o.t_s)):
        motion = keypoint_motion(
            np.asarray(first.keypoints), np.asarray(second.keypoints), width, height, rules.min_keypoint_score
        )
        if motion is not None and motion.affine_residual > rules.min_residual:
            return False
    return True


def without_doubtful_tracks(tracks: Sequence[Track], rules: DoubtRules, source_size: tuple[int, int]) -> list[Track]:
    """The tracks that are people (``is_doubtful``), renumbered."""
    return renumber([t for t in tracks if not is_doubtful(t, rules, source_size)])


def renumber(tracks: Sequence[Track]) -> list[Track]:
    """Ids 0, 1, ... by first appearance (then by the first box's left edge): deterministic for given samples."""
    ordered = sorted(tracks, key=lambda t: (t.samples[0].t_s, float(t.samples[0].box[0]), float(t.samples[0].box[1])))
    return [Track(i, list(t.samples)) for i, t in enumerate(ordered)]
