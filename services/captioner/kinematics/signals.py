"""One person's dense track as arrays, and the signal tools the action and interaction detectors share.

Keypoints below a confidence threshold become NaN and short gaps are interpolated, so missing samples
neither invent nor break events. A track's scale is its median torso length (mid-shoulder to mid-hip);
its size, for depth, the box height, or the torso where the frame's edge cuts the box. The tunables come
from the captioner's settings as KinematicsRules.
"""

from __future__ import annotations

import itertools
import warnings
from collections.abc import Iterable
from dataclasses import dataclass
from types import TracebackType

import numpy as np

from haic.v1 import events_pb2
from services.core.keypoints import COCO_KEYPOINTS, NUM_KEYPOINTS
from services.core.settings import CaptionerServiceSettings

KP = {name: i for i, name in enumerate(COCO_KEYPOINTS)}

# A box side this close to the frame's edge (share of the frame's height) is cut by it: MoveNet's boxes of
# the corridor walkers of two_people_walk_corridor.gif, legs out of view, end 1 to 9 px short of it.
EDGE_SHARE = 0.035
VELOCITY_WINDOW_S = 1.0  # velocities are measured over this window to average out the gait's sway


@dataclass(frozen=True)
class KinematicsRules:
    """The kinematics' tunables, read from the captioner's settings: keypoints below `min_score` are missing
    (HAIC_MIN_KEYPOINT_SCORE, as in the pose stage's rules), gaps up to `max_gap_s` are interpolated and longer
    ones stay missing, so that no event spans them (HAIC_KINEMATICS_MAX_GAP_S), and contact between two
    people is a wrist within `contact_torso` torso lengths of the other's body held `min_contact_s`
    (HAIC_INTERACTION_CONTACT_TORSO, HAIC_INTERACTION_MIN_CONTACT_S)."""

    min_score: float
    max_gap_s: float
    contact_torso: float
    min_contact_s: float

    @classmethod
    def from_settings(cls, settings: CaptionerServiceSettings) -> KinematicsRules:
        return cls(
            min_score=settings.min_keypoint_score,
            max_gap_s=settings.kinematics_max_gap_s,
            contact_torso=settings.interaction_contact_torso,
            min_contact_s=settings.interaction_min_contact_s,
        )


class KinematicsInputError(ValueError):
    """A track or frame size the kinematics cannot use (wrong keypoint count, non-positive size)."""

    def __init__(self, track_id: int, message: str) -> None:
        super().__init__(f"track {track_id}: {message}")
        self.track_id = track_id


@dataclass(frozen=True)
class Series:
    """One track as arrays; NaN marks a missing value."""

    track_id: int
    t: np.ndarray  # (n,) seconds, increasing
    kp: np.ndarray  # (n, 17, 2) pixels
    box: np.ndarray  # (n, 4) x1, y1, x2, y2 pixels
    scale: float  # median torso length, pixels
    height: float  # median box height, pixels
    size: np.ndarray  # (n,) body size for depth: box height, from the torso where the box is cut
    torso: np.ndarray  # (n,) torso length, pixels (the median where unseen)
    size_from_torso: np.ndarray  # (n,) bool: `size` comes from the torso (the box is cut by the frame)

    def joint(self, name: str) -> np.ndarray:
        return self.kp[:, KP[name]]

    def mid(self, a: str, b: str) -> np.ndarray:
        # The mean of both sides, or whichever side is visible.
        return np.nanmean(np.stack([self.joint(a), self.joint(b)]), axis=0) if len(self.t) else self.joint(a)


class quiet:
    """Silences numpy's 'mean of empty slice' warnings: all-NaN inputs legitimately give NaN."""

    def __enter__(self) -> None:
        self._ctx = warnings.catch_warnings()
        self._ctx.__enter__()
        warnings.simplefilter("ignore", category=RuntimeWarning)

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self._ctx.__exit__(exc_type, exc, tb)


def interp_gaps(t: np.ndarray, x: np.ndarray, max_gap_s: float) -> np.ndarray:
    """Linear interpolation over NaN runs no longer than max_gap_s; leading/trailing NaNs stay."""
    out = x.copy()
    ok = ~np.isnan(x)
    if ok.sum() < 2:
        return out
    idx = np.flatnonzero(ok)
    for a, b in itertools.pairwise(idx):
        if b - a > 1 and t[b] - t[a] <= max_gap_s:
            out[a + 1 : b] = np.interp(t[a + 1 : b], [t[a], t[b]], [x[a], x[b]])
    return out


def smooth(x: np.ndarray, k: int = 3) -> np.ndarray:
    """NaN-aware centred moving average over k samples."""
    if k <= 1 or len(x) == 0:
        return x.copy()
    half = k // 2
    out = np.full_like(x, np.nan)
    for i in range(len(x)):
        w = x[max(0, i - half) : i + half + 1]
        if np.any(~np.isnan(w)):
            out[i] = np.nanmean(w)
    return out


def true_runs(mask: np.ndarray) -> list[tuple[int, int]]:
    """Inclusive (first, last) index ranges of True runs."""
    out: list[tuple[int, int]] = []
    start = -1
    for i, v in enumerate(mask):
        if v and start < 0:
            start = i
        elif not v and start >= 0:
            out.append((start, i - 1))
            start = -1
    if start >= 0:
        out.append((start, len(mask) - 1))
    return out


def long_runs(t: np.ndarray, mask: np.ndarray, min_s: float) -> Iterable[tuple[int, int]]:
    return (r for r in true_runs(mask) if t[r[1]] - t[r[0]] >= min_s)


def hysteresis(x: np.ndarray, on: float, off: float) -> np.ndarray:
    """True from where x rises above `on` until it falls below `off`; NaN ends a run."""
    out = np.zeros(len(x), dtype=bool)
    state = False
    for i, v in enumerate(x):
        if np.isnan(v):
            state = False
        elif state:
            state = v >= off
        else:
            state = v > on
        out[i] = state
    return out


def velocity(t: np.ndarray, x: np.ndarray, window_s: float) -> np.ndarray:
    """Per-sample slope of x over a centred window (least squares), NaN where too few points."""
    out = np.full(len(x), np.nan)
    for i in range(len(x)):
        sel = (np.abs(t - t[i]) <= window_s / 2) & ~np.isnan(x)
        if sel.sum() >= 2 and np.ptp(t[sel]) > 0:
            out[i] = np.polyfit(t[sel], x[sel], 1)[0]
    return out


def evidence(t: np.ndarray, a: int, b: int, **signals: float) -> events_pb2.Evidence:
    return events_pb2.Evidence(
        start_s=float(t[a]), end_s=float(t[b]), signals={k: round(float(v), 4) for k, v in signals.items()}
    )


def track_series(track: events_pb2.PersonTrack, width: int, height: int, rules: KinematicsRules) -> Series:
    if width <= 0 or height <= 0:
        raise KinematicsInputError(track.track_id, f"frame size must be positive, got {width}x{height}")
    samples = sorted(track.samples, key=lambda s: s.t_s)
    n = len(samples)
    t = np.array([s.t_s for s in samples], dtype=float)
    kp = np.full((n, NUM_KEYPOINTS, 2), np.nan)
    box = np.full((n, 4), np.nan)
    for i, s in enumerate(samples):
        if len(s.keypoints) not in (0, NUM_KEYPOINTS):
            raise KinematicsInputError(track.track_id, f"sample at {s.t_s:.2f}s has {len(s.keypoints)} keypoints")
        for j, k in enumerate(s.keypoints):
            # A keypoint placed outside the picture (a crop past the frame's edge) is a guess.
            if k.score >= rules.min_score and 0 <= k.x <= width and 0 <= k.y <= height:
                kp[i, j] = (k.x, k.y)
        if s.HasField("box") and s.box.y2 > s.box.y1:
            box[i] = (s.box.x1, s.box.y1, s.box.x2, s.box.y2)
    for j in range(NUM_KEYPOINTS):
        for c in range(2):
            kp[:, j, c] = interp_gaps(t, kp[:, j, c], rules.max_gap_s)
    for c in range(4):
        box[:, c] = interp_gaps(t, box[:, c], rules.max_gap_s)
    heights = box[:, 3] - box[:, 1]
    med_h = float(np.nanmedian(heights)) if np.any(~np.isnan(heights)) else float(height) / 2
    s0 = Series(track.track_id, t, kp, box, 1.0, med_h, heights, np.ones(n), np.zeros(n, dtype=bool))
    with np.errstate(invalid="ignore"), quiet():
        torso = np.linalg.norm(s0.mid("left_shoulder", "right_shoulder") - s0.mid("left_hip", "right_hip"), axis=1)
    unseen = np.isnan(torso)
    seen = torso[~unseen]
    # A torso is about a third of the standing height; fall back on that when no torso is visible.
    scale = max(float(np.median(seen)) if len(seen) else med_h / 3, 1.0)
    torso = np.where(unseen, scale, smooth(torso, 3))
    # A box cut by the frame's top or bottom edge stops growing as the person comes closer; there the
    # torso length (in box heights) measures the body's size instead, where the torso is seen (else the
    # cut box, whose free edge still moves).
    cut = (box[:, 1] <= EDGE_SHARE * height) | (box[:, 3] >= (1 - EDGE_SHARE) * height)
    whole = ~cut & ~np.isnan(heights) & ~unseen
    ratio = float(np.median(heights[whole] / torso[whole])) if np.any(whole) else 3.0
    from_torso = (cut & ~unseen) | np.isnan(heights)
    size = np.where(from_torso, torso * ratio, heights)
    return Series(track.track_id, t, kp, box, scale, max(med_h, 1.0), size, torso, from_torso)


def body_centre(s: Series) -> np.ndarray:
    """Body centre: the box centre, or the mid-hip when there is no box."""
    c = np.stack([(s.box[:, 0] + s.box[:, 2]) / 2, (s.box[:, 1] + s.box[:, 3]) / 2], axis=1)
    return np.where(np.isnan(c), s.mid("left_hip", "right_hip"), c)


def swing_runs(t: np.ndarray, x: np.ndarray, amp: float, max_half_s: float) -> list[tuple[int, int, int]]:
    """Runs of x swinging from beyond +amp to beyond -amp and back, each swing within max_half_s:
    (first extreme, last extreme, number of swings)."""
    side = np.where(x > amp, 1, np.where(x < -amp, -1, 0))
    out: list[tuple[int, int, int]] = []
    start, last, swings = -1, -1, 0
    for i in np.flatnonzero(side):
        if last >= 0 and t[i] - t[last] > max_half_s:  # too slow: the rhythm broke
            if swings:
                out.append((start, last, swings))
            start, swings = -1, 0
        if last >= 0 and side[i] != side[last] and t[i] - t[last] <= max_half_s:
            if start < 0:
                start = last
            swings += 1
        last = int(i)
    if swings:
        out.append((start, last, swings))
    return out
