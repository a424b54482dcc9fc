"""The action rule's keypoint motion (services/core/motion.py): what moves beyond an affine map."""

from __future__ import annotations

import numpy as np

from services.core.motion import keypoint_motion

W, H = 1000, 500
RNG = np.random.default_rng(0)
POINTS = np.hstack([RNG.uniform(100, 400, size=(17, 2)), np.full((17, 1), 0.9)])


def test_a_shifted_body_moves_but_an_affine_map_explains_it() -> None:
    moved = POINTS.copy()
    moved[:, 0] += 50  # 0.05 of the width for each of 17 keypoints
    motion = keypoint_motion(POINTS, moved, W, H, 0.2)
    assert motion is not None and motion.keypoints_used == 17
    assert motion.keypoint_l1 == np.float64(17 * 0.05)
    assert motion.affine_residual < 1e-12


def test_a_limb_moving_against_the_body_leaves_a_residual() -> None:
    moved = POINTS.copy()
    moved[9, :2] += (80, -60)  # one wrist
    motion = keypoint_motion(POINTS, moved, W, H, 0.2)
    assert motion is not None and motion.affine_residual > 1e-4


def test_fewer_than_three_shared_keypoints_measure_nothing_and_scores_scale_the_l1() -> None:
    unsure = POINTS.copy()
    unsure[2:, 2] = 0.1  # two keypoints left
    assert keypoint_motion(POINTS, unsure, W, H, 0.2) is None
    half = POINTS.copy()
    half[9:, 2] = 0.1  # 9 confident keypoints: their L1 is scaled to all 17
    moved = half.copy()
    moved[:, 0] += 50
    motion = keypoint_motion(half, moved, W, H, 0.2)
    assert motion is not None and motion.keypoints_used == 9
    assert abs(motion.keypoint_l1 - 17 * 0.05) < 1e-9
