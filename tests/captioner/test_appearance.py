"""Garment colours from keypoint regions: colour naming, body regions, labels, and the juggling sample."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest

from haic.v1 import events_pb2
from services.captioner.appearance import (
    COLOR_VOCABULARY,
    AppearanceError,
    body_regions,
    color_name,
    describe_appearance,
    describe_appearance_with_evidence,
    distinct_labels,
    label_for,
)
from services.core.video import VideoReader
from services.pose.contract import COCO_KEYPOINTS

SAMPLE = Path(__file__).resolve().parents[2] / "samples" / "juggle_one_person.mp4"

# Each vocabulary colour with a typical, a dark and a bright or washed-out variant (RGB).
VARIANTS: dict[str, list[tuple[int, int, int]]] = {
    "black": [(20, 20, 20), (45, 45, 45)],
    "white": [(250, 250, 250), (225, 225, 230)],
    "gray": [(128, 128, 128), (90, 90, 95), (170, 170, 170), (112, 128, 144)],
    "red": [(200, 20, 30), (140, 10, 15), (90, 5, 10), (255, 60, 60)],
    "orange": [(255, 140, 0), (230, 120, 40)],
    "yellow": [(250, 220, 30), (240, 240, 90)],
    "olive": [(110, 110, 30), (128, 128, 0)],
    "green": [(30, 140, 50), (20, 80, 30), (120, 220, 120), (0, 255, 0)],
    "teal": [(0, 128, 128), (40, 170, 170)],
    "blue": [(30, 80, 200), (0, 0, 255), (90, 150, 230), (70, 130, 180)],
    "navy": [(20, 25, 70), (0, 0, 100), (25, 30, 50)],
    "purple": [(110, 40, 150), (80, 20, 100), (128, 0, 128)],
    "pink": [(255, 170, 190), (240, 110, 170), (255, 192, 203)],
    "brown": [(110, 60, 30), (150, 90, 50), (70, 40, 20)],
    "beige": [(215, 195, 160), (240, 230, 200), (210, 180, 140)],
}
CASES = [(name, rgb) for name, variants in VARIANTS.items() for rgb in variants]


def _patch(rgb: tuple[int, int, int], seed: int = 0) -> np.ndarray:
    """A 40 x 40 patch of one colour with sensor-like noise."""
    noise = np.random.default_rng(seed).normal(0, 4, (40, 40, 3))
    return np.clip(np.array(rgb, dtype=np.float64) + noise, 0, 255).astype(np.uint8)


def test_vocabulary_covers_every_case() -> None:
    assert set(VARIANTS) == set(COLOR_VOCABULARY)


@pytest.mark.parametrize(("name", "rgb"), CASES)
def test_color_name_of_plain_patches(name: str, rgb: tuple[int, int, int]) -> None:
    color, share = color_name(_patch(rgb))
    assert color == name
    assert share >= 0.7


@pytest.mark.parametrize(("name", "rgb"), CASES)
def test_color_name_with_a_shadow_over_a_third_of_the_patch(name: str, rgb: tuple[int, int, int]) -> None:
    patch = _patch(rgb, seed=1)
    patch[:, :14] = (patch[:, :14] * 0.45).astype(np.uint8)  # a hard shadow on the left 35%
    color, share = color_name(patch)
    assert color == name
    assert share >= 0.6


@pytest.mark.parametrize("rgb", [(200, 20, 30), (30, 140, 50), (30, 80, 200), (110, 40, 150), (128, 128, 128)])
def test_color_name_across_a_shading_gradient(rgb: tuple[int, int, int]) -> None:
    # Light falling off across the garment, from full to 60% brightness.
    patch = (_patch(rgb) * np.linspace(0.6, 1.0, 40)[None, :, None]).astype(np.uint8)
    assert color_name(patch)[0] == color_name(_patch(rgb))[0]


def test_color_name_rejects_bad_input() -> None:
    with pytest.raises(AppearanceError):
        color_name(np.zeros((0, 3), dtype=np.uint8))
    with pytest.raises(AppearanceError):
        color_name(np.zeros((4, 4), dtype=np.uint8))


# ------------------------------------------------------------------------------------ synthetic person

STICK: dict[str, tuple[float, float]] = {
    "nose": (320, 70),
    "left_shoulder": (360, 120),
    "right_shoulder": (280, 120),
    "left_elbow": (385, 190),
    "right_elbow": (255, 190),
    "left_wrist": (395, 255),
    "right_wrist": (245, 255),
    "left_hip": (350, 260),
    "right_hip": (290, 260),
    "left_knee": (352, 360),
    "right_knee": (288, 360),
    "left_ankle": (354, 450),
    "right_ankle": (286, 450),
}
GRASS, RED, BLUE, SKIN = (40, 140, 40), (200, 25, 30), (30, 60, 190), (190, 140, 110)


def _pose(
    points: dict[str, tuple[float, float]], t_s: float = 0.0, missing: tuple[str, ...] = ()
) -> events_pb2.PoseSample:
    sample = events_pb2.PoseSample(t_s=t_s)
    xs, ys = zip(*points.values(), strict=True)
    sample.box.CopyFrom(events_pb2.Box(x1=min(xs), y1=min(ys), x2=max(xs), y2=max(ys), score=0.9))
    for name in COCO_KEYPOINTS:
        x, y = points.get(name, (0.0, 0.0))
        confident = name in points and name not in missing
        sample.keypoints.add(x=x, y=y, score=0.9 if confident else 0.1)
    return sample


def _stick_person(shorts: bool = False, seed: int = 0) -> np.ndarray:
    """A person drawn wider than the keypoints (as a body is): red torso and sleeves, blue legs."""
    image = np.zeros((480, 640, 3), dtype=np.uint8)
    image[:] = GRASS
    image = np.clip(image + np.random.default_rng(seed).normal(0, 5, image.shape), 0, 255).astype(np.uint8)
    p = {k: tuple(int(v) for v in xy) for k, xy in STICK.items()}
    for side in ("left", "right"):
        cv2.line(image, p[f"{side}_elbow"], p[f"{side}_wrist"], SKIN, 16)
        cv2.line(image, p[f"{side}_shoulder"], p[f"{side}_elbow"], RED, 22)
        cv2.line(image, p[f"{side}_knee"], p[f"{side}_ankle"], SKIN if shorts else BLUE, 24)
        if shorts:
            mid = tuple((a + b) // 2 for a, b in zip(p[f"{side}_hip"], p[f"{side}_knee"], strict=True))
            cv2.line(image, p[f"{side}_hip"], mid, BLUE, 36)
            cv2.line(image, mid, p[f"{side}_knee"], SKIN, 24)
        else:
            cv2.line(image, p[f"{side}_hip"], p[f"{side}_knee"], BLUE, 36)
    torso = np.array([(372, 115), (268, 115), (278, 268), (362, 268)], dtype=np.int32)
    cv2.fillPoly(image, [torso], RED)
    cv2.circle(image, p["nose"], 28, SKIN, -1)
    return image


def test_regions_pick_red_top_and_blue_trousers_on_grass() -> None:
    samples = [(_stick_person(seed=s), _pose(STICK, t_s=s * 0.25)) for s in range(3)]
    attributes, evidence = describe_appearance_with_evidence(samples)
    assert [(g.item, g.color) for g in attributes.clothing] == [("top", "red"), ("trousers", "blue")]
    assert attributes.gender == "" and attributes.age_group == ""
    assert evidence["upper"]["samples"] == 3 and evidence["upper"]["share"] >= 0.9
    assert evidence["lower"]["share"] >= 0.9 and evidence["lower"]["agreement"] == 1.0
    assert evidence["lower"]["knee_skin_share"] < 0.2


def test_bare_knees_make_shorts() -> None:
    attributes, evidence = describe_appearance_with_evidence([(_stick_person(shorts=True), _pose(STICK))])
    assert [(g.item, g.color) for g in attributes.clothing] == [("top", "red"), ("shorts", "blue")]
    assert evidence["lower"]["knee_skin_share"] >= 0.5


def test_regions_stay_inside_the_drawn_body() -> None:
    image = _stick_person()
    regions = body_regions(_pose(STICK), image.shape[:2])
    assert set(regions) == {"upper", "lower", "lower_knee"}
    for key, mask in regions.items():
        grass = (np.abs(image[mask].astype(int) - GRASS).sum(axis=1) < 40).mean()
        # The knee band runs a little past the knee, where a shin is narrower than a thigh.
        assert grass <= (0.1 if key == "lower_knee" else 0.0), key


def test_missing_keypoints_skip_their_region() -> None:
    image = _stick_person()
    no_knees = describe_appearance([(image, _pose(STICK, missing=("left_knee", "right_knee")))])
    assert [g.item for g in no_knees.clothing] == ["top"]
    no_hips = describe_appearance([(image, _pose(STICK, missing=("left_hip",)))])
    assert [g.item for g in no_hips.clothing] == []


# ---------------------------------------------------------------------------------------------- labels


def _attributes(*garments: tuple[str, str]) -> events_pb2.SubjectAttributes:
    attributes = events_pb2.SubjectAttributes()
    for item, color in garments:
        attributes.clothing.add(item=item, color=color)
    return attributes


def test_label_names_the_outfit() -> None:
    assert label_for(_attributes(("top", "red"), ("trousers", "blue")), 0) == (
        "the person in the red top and blue trousers"
    )
    man = _attributes(("top", "gray"))
    man.gender = "male"
    assert label_for(man, 1) == "the man in the gray top"
    assert label_for(events_pb2.SubjectAttributes(), 1) == "the second person"


def test_distinct_labels_tell_identical_outfits_apart_by_position() -> None:
    same = _attributes(("top", "white"), ("shorts", "black"))
    other = _attributes(("top", "red"), ("trousers", "blue"))
    labels = distinct_labels([same, other, same], [900.0, 500.0, 120.0])
    assert labels == [
        "the person in the white top and black shorts on the right",
        "the person in the red top and blue trousers",
        "the person in the white top and black shorts on the left",
    ]
    assert len(set(labels)) == 3
    three = distinct_labels([same, same, same], [300.0, 100.0, 200.0])
    assert three[0].endswith("on the right") and three[1].endswith("on the left")
    assert three[2].endswith("in the middle")
    with pytest.raises(AppearanceError):
        distinct_labels([same], [])


# ------------------------------------------------------------------------------------- juggling sample

# Keypoints of the juggler (source pixels, 1280 x 720): t = 1.0 s measured by the pose models; 3.0 s
# and 5.0 s read off the frames by eye (he moves right and the ball covers his chest at 5.0 s).
JUGGLER: dict[float, dict[str, tuple[float, float]]] = {
    1.0: {
        "nose": (740, 139),
        "left_shoulder": (791, 168),
        "right_shoulder": (675, 167),
        "left_elbow": (820, 245),
        "right_elbow": (643, 244),
        "left_wrist": (837, 309),
        "right_wrist": (632, 321),
        "left_hip": (756, 358),
        "right_hip": (684, 353),
        "left_knee": (756, 491),
        "right_knee": (680, 485),
        "left_ankle": (746, 620),
        "right_ankle": (685, 619),
    },
    3.0: {
        "nose": (775, 150),
        "left_shoulder": (835, 182),
        "right_shoulder": (692, 185),
        "left_elbow": (858, 268),
        "right_elbow": (665, 268),
        "left_wrist": (862, 368),
        "right_wrist": (655, 352),
        "left_hip": (790, 378),
        "right_hip": (712, 376),
        "left_knee": (792, 535),
        "right_knee": (718, 535),
        "left_ankle": (782, 655),
        "right_ankle": (725, 655),
    },
    5.0: {
        "nose": (760, 125),
        "left_shoulder": (818, 172),
        "right_shoulder": (672, 175),
        "left_elbow": (840, 255),
        "right_elbow": (640, 240),
        "left_wrist": (848, 315),
        "right_wrist": (612, 285),
        "left_hip": (770, 362),
        "right_hip": (690, 360),
        "left_knee": (768, 510),
        "right_knee": (680, 505),
        "left_ankle": (755, 620),
        "right_ankle": (665, 620),
    },
}


def test_juggler_wears_a_gray_top_and_navy_trousers() -> None:
    # The footage: a short-sleeved blue-gray shirt and dark navy trousers, white ball and shoes.
    with VideoReader(SAMPLE) as reader:
        frames = dict(reader.frames_at(sorted(JUGGLER)))
    samples = [(frames[t], _pose(points, t_s=t)) for t, points in JUGGLER.items()]
    attributes, evidence = describe_appearance_with_evidence(samples)
    assert [(g.item, g.color) for g in attributes.clothing] == [("top", "gray"), ("trousers", "navy")]
    assert evidence["upper"]["samples"] == 3 and evidence["lower"]["samples"] == 3
    assert evidence["upper"]["agreement"] >= 2 / 3 and evidence["lower"]["agreement"] >= 2 / 3
    assert evidence["lower"]["knee_skin_share"] < 0.05
    assert label_for(attributes, 0) == "the person in the gray top and navy trousers"
