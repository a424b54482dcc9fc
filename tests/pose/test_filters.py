"""The human-existence and human-action rules on synthetic boxes and keypoint sequences."""

from __future__ import annotations

import numpy as np
import pytest

from services.core.settings import Settings
from services.pose.filters import ACTION_STAGE, EXISTENCE_STAGE, human_action, human_existence, union_area
from services.pose.tracking import Observation, build_tracks

W, H = 1280, 720
SETTINGS = Settings()

# A standing person, COCO order, in pixels of a 1280x720 frame.
STANDING = np.array(
    [
        [640, 200], [650, 190], [630, 190], [660, 195], [620, 195],  # nose, eyes, ears
        [680, 260], [600, 260], [700, 330], [580, 330], [705, 400], [575, 400],  # shoulders, elbows, wrists
        [665, 420], [615, 420], [670, 520], [610, 520], [672, 620], [608, 620],  # hips, knees, ankles
    ],
    dtype=np.float64,
)  # fmt: skip


def shift(points: np.ndarray, dx: float, dy: float) -> np.ndarray:
    return points + np.array([dx, dy])


def person(t: float, points: np.ndarray, score: float = 0.9) -> Observation:
    keypoints = np.hstack([points, np.full((17, 1), score)]).astype(np.float32)
    box = np.array([points[:, 0].min() - 20, points[:, 1].min() - 30, points[:, 0].max() + 20, points[:, 1].max() + 10])
    return Observation(t, box.astype(np.float32), 0.9, keypoints)


def affine(points: np.ndarray, matrix: np.ndarray) -> np.ndarray:
    return np.hstack([points, np.ones((len(points), 1))]) @ matrix.T


def sequence(transform_at: callable, seconds: int = 10) -> list[list[Observation]]:
    return [[person(float(t), transform_at(t))] for t in range(seconds)]


def action(frames: list[list[Observation]], settings: Settings = SETTINGS):
    return human_action(
        build_tracks(frames, settings.track_min_iou),
        W,
        H,
        min_keypoint_l1=settings.min_keypoint_l1,
        min_affine_residual=settings.min_affine_residual,
        min_keypoint_score=settings.min_keypoint_score,
    )


def centred(matrix: np.ndarray) -> np.ndarray:
    """The 2x3 map applied about the person's centre, so the person stays in view."""
    c = STANDING.mean(axis=0)
    return np.hstack([matrix, (c - matrix @ c)[:, None]])


CAMERA_MOTIONS = {
    "translation": lambda t: STANDING + np.array([25.0 * t, 8.0 * t]),
    "scaling": lambda t: affine(STANDING, centred(np.eye(2) * (1 + 0.06 * t))),
    "rotation": lambda t: affine(
        STANDING, centred(np.array([[np.cos(0.05 * t), -np.sin(0.05 * t)], [np.sin(0.05 * t), np.cos(0.05 * t)]]))
    ),
    "shear": lambda t: affine(STANDING, centred(np.array([[1, 0.06 * t], [0, 1]]))),
    "pan_and_zoom": lambda t: affine(STANDING, centred(np.eye(2) * (1 + 0.04 * t))) + np.array([20.0 * t, 0.0]),
}


@pytest.mark.parametrize("motion", sorted(CAMERA_MOTIONS))
def test_a_static_pose_moved_by_the_camera_is_rejected_as_camera_motion(motion: str) -> None:
    result = action(sequence(CAMERA_MOTIONS[motion]))
    assert not result.passed
    assert result.stage == ACTION_STAGE
    assert result.reason_code == "camera_motion", result.reason
    assert result.values["keypoint_l1_max"] > SETTINGS.min_keypoint_l1  # it does move on screen


def waving(t: int) -> np.ndarray:
    """The right arm swings up and down: elbow and wrist move, the body does not."""
    points = STANDING.copy()
    up = t % 2 == 1
    if up:
        points[8] = [560, 240]  # right elbow out and up
        points[10] = [540, 160]  # right wrist above the head
    return points


def test_articulated_motion_is_accepted() -> None:
    result = action(sequence(waving))
    assert result.passed, result.reason
    assert result.values["tracks_acting"] == 1


def test_articulated_motion_under_camera_motion_is_accepted() -> None:
    pan = CAMERA_MOTIONS["pan_and_zoom"]
    result = action(sequence(lambda t: shift(affine(waving(t), centred(np.eye(2) * (1 + 0.04 * t))), 20.0 * t, 0)))
    assert result.passed, result.reason
    assert pan(0).shape == (17, 2)


def test_a_frozen_pose_is_rejected_as_static() -> None:
    rng = np.random.default_rng(0)
    # detector jitter of about a pixel does not make a person move
    result = action(sequence(lambda t: STANDING + rng.normal(0, 1.0, STANDING.shape)))
    assert not result.passed
    assert result.reason_code == "static_people"


def test_low_confidence_keypoints_are_left_out() -> None:
    frames = []
    for t in range(6):
        obs = person(float(t), waving(t))
        obs.keypoints[:, 2] = 0.05  # nothing is seen confidently
        frames.append([obs])
    result = action(frames)
    assert not result.passed and result.reason_code == "no_track"


def test_one_acting_person_among_static_ones_passes() -> None:
    frames = [[person(float(t), waving(t)), person(float(t), shift(STANDING, 400, 0))] for t in range(6)]
    result = action(frames)
    assert result.passed
    assert result.values["tracks"] == 2 and result.values["tracks_acting"] == 1


def test_tracks_follow_people_by_iou_and_split_when_they_jump() -> None:
    a = [person(float(t), shift(STANDING, 10 * t, 0)) for t in range(3)]
    b = [person(float(t), shift(STANDING, -400 + 5 * t, 0)) for t in range(3)]
    tracks = build_tracks([[a[0], b[0]], [b[1], a[1]], [a[2], b[2]]], 0.1)
    assert [[s.t_s for s in tr.samples] for tr in tracks] == [[0, 1, 2], [0, 1, 2]]
    assert tracks[0].samples[1] is a[1]
    far = person(3.0, shift(STANDING, 500, 0))  # no overlap with anybody: a new person
    assert len(build_tracks([[a[0]], [far]], 0.1)) == 2


def test_tracks_bridge_a_missed_frame_only_when_allowed() -> None:
    walker = [person(float(t), shift(STANDING, 10 * t, 0)) for t in range(4)]
    false_box = Observation(2.0, np.array([900, 100, 950, 150], dtype=np.float32), 0.5, walker[0].keypoints)
    frames = [[walker[0]], [walker[1]], [false_box], [walker[3]]]  # the walker is missed at t=2
    strict = build_tracks(frames, 0.1)
    assert [[s.t_s for s in t.samples] for t in strict] == [[0, 1], [2], [3]]
    bridged = build_tracks(frames, 0.1, max_gap=1)
    assert [[s.t_s for s in t.samples] for t in bridged] == [[0, 1, 3], [2]]


def test_union_area_counts_overlaps_once() -> None:
    boxes = np.array([[0, 0, 10, 10], [5, 5, 15, 15], [100, 100, 110, 110]], dtype=float)
    assert union_area(boxes, 200, 200) == pytest.approx(100 + 100 - 25 + 100)
    assert union_area(np.array([[-10, -10, 10, 10]], dtype=float), 200, 200) == pytest.approx(100)
    assert union_area(np.zeros((0, 4)), 200, 200) == 0


def existence(frames: list[list[Observation]]):
    return human_existence(
        [np.array([p.box for p in people]).reshape(-1, 4) for people in frames],
        W,
        H,
        min_people=SETTINGS.min_people,
        max_people=SETTINGS.max_people,
        min_area_ratio=SETTINGS.min_person_area_ratio,
    )


def test_existence_passes_a_person_in_every_frame() -> None:
    near = affine(STANDING, centred(np.eye(2) * 1.2))  # box about 12% of the frame
    result = existence([[person(float(t), near)] for t in range(16)])
    assert result.passed and result.stage == EXISTENCE_STAGE
    assert result.values["coverage_min"] > SETTINGS.min_person_area_ratio


def test_existence_rejects_a_frame_without_people() -> None:
    frames = [[person(float(t), STANDING)] for t in range(16)]
    frames[7] = []
    result = existence(frames)
    assert not result.passed and result.reason_code == "no_person"


def test_existence_rejects_crowds() -> None:
    crowd = [person(0.0, STANDING * 0.5 + [100 * i, 0]) for i in range(6)]
    result = existence([crowd] * 16)
    assert not result.passed and result.reason_code == "too_many_people"


def test_existence_rejects_small_people() -> None:
    small = [person(0.0, STANDING * 0.2 + [200 * i, 0]) for i in range(3)]
    result = existence([small] * 16)
    assert not result.passed and result.reason_code == "people_too_small"
    assert result.values["coverage_min"] < SETTINGS.min_person_area_ratio
