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


def keypoint_array(sample: Any) -> np.ndarray:
    """[17, 3] x, y, confidence of one pose sample: a PoseSample proto (Keypoint messages) or anything
    whose ``keypoints`` is already an array (the pose stage's Observation)."""
    points = sample.keypoints
    if isinstance(points, np.ndarray):
        return np.asarray(points, dtype=np.float64).reshape(-1, 3)
    return np.array([[k.x, k.y, k.score] for k in points], dtype=np.float64).reshape(-1, 3)
