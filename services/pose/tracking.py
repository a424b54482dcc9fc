"""Tracklets: people linked across sampled frames by maximal box IoU (HAIC section 3.1).

Between each pair of consecutive sampled frames, the pairs with the highest IoU are matched first
(greedy, which equals the optimal assignment for the few well-separated people a curated clip
holds); a person matched to nobody starts a new track. With ``max_gap`` 0 (the action filter) a
track that misses a frame ends, so the motion rules compare only adjacent samples; the captioner's
dense tracks bridge short misses (a blurred frame, a false detection) with ``max_gap`` > 0.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np


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


def box_iou(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Pairwise IoU of boxes a [N, 4] and b [M, 4] -> [N, M]."""
    a = np.asarray(a, dtype=np.float64).reshape(-1, 4)
    b = np.asarray(b, dtype=np.float64).reshape(-1, 4)
    x1 = np.maximum(a[:, None, 0], b[None, :, 0])
    y1 = np.maximum(a[:, None, 1], b[None, :, 1])
    x2 = np.minimum(a[:, None, 2], b[None, :, 2])
    y2 = np.minimum(a[:, None, 3], b[None, :, 3])
    inter = np.clip(x2 - x1, 0, None) * np.clip(y2 - y1, 0, None)
    area_a = (a[:, 2] - a[:, 0]) * (a[:, 3] - a[:, 1])
    area_b = (b[:, 2] - b[:, 0]) * (b[:, 3] - b[:, 1])
    union = area_a[:, None] + area_b[None, :] - inter
    return np.where(union > 0, inter / np.where(union > 0, union, 1), 0.0)


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
