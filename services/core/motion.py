"""Keypoint motion of one person between two samples: the measure of HAIC's human-action rule (section
3.1), shared by the pose stage (the rule) and the captioner (its judge), so neither imports the other."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from services.core.keypoints import NUM_KEYPOINTS


@dataclass(frozen=True)
class KeypointMotion:
    keypoint_l1: float  # L1 distance of the keypoints in normalised coordinates, scaled to all 17
    affine_residual: float  # what an affine map of the first sample's points leaves unexplained
    keypoints_used: int  # keypoints confident in both samples


def keypoint_motion(
    first: np.ndarray, second: np.ndarray, width: int, height: int, min_keypoint_score: float
) -> KeypointMotion | None:
    """L1 distance and affine-fit residual between two (17, 3) keypoint arrays (x, y pixels, score) of one
    person; None with fewer than 3 keypoints confident in both."""
    seen = (first[:, 2] >= min_keypoint_score) & (second[:, 2] >= min_keypoint_score)
    n = int(seen.sum())
    if n < 3:  # an affine map has 6 unknowns: fewer than 3 points fit any motion exactly
        return None
    size = np.array([width, height], dtype=np.float64)
    p0 = first[seen, :2].astype(np.float64) / size
    p1 = second[seen, :2].astype(np.float64) / size
    l1 = float(np.abs(p1 - p0).sum()) * NUM_KEYPOINTS / n
    # Least squares for P(t+1) = T P(t) with homogeneous 3 x n points: X T^T = Y, X = [x y 1].
    x = np.hstack([p0, np.ones((n, 1))])
    t_transposed, *_ = np.linalg.lstsq(x, p1, rcond=None)
    residual = float(np.sum((x @ t_transposed - p1) ** 2))
    return KeypointMotion(l1, residual, n)
