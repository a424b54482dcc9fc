"""The COCO-17 keypoint order: the pose models' output (services.pose.contract) and the dense tracks the
captioner reads, defined once in core so that neither service imports the other."""

from __future__ import annotations

from typing import Any

import numpy as np

COCO_KEYPOINTS: tuple[str, ...] = (
    "nose",
    "left_eye",
    "right_eye",
    "left_ear",
    "right_ear",
    "left_shoulder",
    "right_shoulder",
    "left_elbow",
    "right_elbow",
    "left_wrist",
    "right_wrist",
    "left_hip",
    "right_hip",
    "left_knee",
    "right_knee",
    "left_ankle",
    "right_ankle",
)
NUM_KEYPOINTS = len(COCO_KEYPOINTS)

# The limbs drawn between COCO-17 keypoints (indices into COCO_KEYPOINTS), as COCO's person skeleton draws them.
COCO_SKELETON: tuple[tuple[int, int], ...] = (
    (15, 13), (13, 11), (16, 14), (14, 12), (11, 12),  # legs and hips
    (5, 11), (6, 12), (5, 6),  # torso
    (5, 7), (6, 8), (7, 9), (8, 10),  # arms
    (1, 2), (0, 1), (0, 2), (1, 3), (2, 4), (3, 5), (4, 6),  # face to shoulders
)  # fmt: skip


def keypoint_array(sample: Any) -> np.ndarray:
    """[17, 3] x, y, confidence of one pose sample: a PoseSample proto (Keypoint messages) or anything
    whose ``keypoints`` is already an array (the pose stage's Observation)."""
    points = sample.keypoints
    if isinstance(points, np.ndarray):
        return np.asarray(points, dtype=np.float64).reshape(-1, 3)
    return np.array([[k.x, k.y, k.score] for k in points], dtype=np.float64).reshape(-1, 3)
