"""Garment colours from keypoint regions: colour naming, body regions, person pixels, confidence, labels,
the juggling sample, and people of the shared labelled videos against their labelled top colours."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import cv2
import numpy as np
import pytest

from haic.v1 import events_pb2
from services.captioner.appearance import (
    ACHROMATIC_CHROMA_CAP,
    ACHROMATIC_CHROMA_FLOOR,
    BARE_TORSO,
    COLOR_VOCABULARY,
    TOP_ITEM,
    AppearanceError,
    ColourThresholds,
    achromatic_limit,
    body_regions,
    color_name,
    describe_appearance,
    describe_appearance_with_evidence,
    distinct_labels,
    is_monochrome,
    label_for,
    name_lab,
    skin_share,
)
from services.core.caption_text import describe_person
from services.core.settings import CaptionerServiceSettings, load
from services.core.video import VideoInfo, VideoReader
from services.pose.contract import COCO_KEYPOINTS

# The colour evidence as the captioner reads it from its settings.
COLOURS = ColourThresholds.from_settings(load(CaptionerServiceSettings))
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


# Cluster centres (CIELAB) measured on garments of the labelled videos, with the labelled colour.
MEASURED: list[tuple[str, tuple[float, float, float], str]] = [
    ("juggler's blue-gray shirt", (38, 1, -13), "gray"),
    ("dull teal jacket (store aisle GIF)", (36, -13, -6), "teal"),
    ("dark olive jacket (store aisle GIF)", (21, 2, 23), "olive"),
    ("brown suede jacket (store aisle GIF)", (20, 14, 16), "brown"),
    ("mustard-orange hoodie in shade", (45, 17, 50), "orange"),
    ("safety-orange vest", (45, 50, 45), "orange"),
    ("hot pink T-shirt", (48, 70, 14), "pink"),
    ("black jacket under fluorescent light", (6, -3, 4), "black"),
    ("gray T-shirt on a white-walled lab", (69, 1, -3), "gray"),
    ("navy trousers", (13, 4, -15), "navy"),
]


@pytest.mark.parametrize(("garment", "lab", "name"), MEASURED, ids=[m[0] for m in MEASURED])
def test_name_lab_of_garments_measured_on_real_footage(
    garment: str, lab: tuple[float, float, float], name: str
) -> None:
    assert name_lab(*lab) == name, garment


def test_neutral_casts_along_b_stay_gray_longer_than_along_a() -> None:
    # Daylight and lamps push neutrals along b* (blue-yellow); the same chroma along a* is a colour.
    assert name_lab(40, 0, -15) == "gray"
    assert name_lab(40, 0, 15) == "gray"
    assert name_lab(40, -15, 0) != "gray"
    assert name_lab(40, 15, 0) != "gray"


def test_achromatic_limit_grows_with_lightness_between_floor_and_cap() -> None:
    assert achromatic_limit(5) == ACHROMATIC_CHROMA_FLOOR
    assert achromatic_limit(90) == ACHROMATIC_CHROMA_CAP
    assert achromatic_limit(20) < achromatic_limit(30) < achromatic_limit(35)


def test_skin_and_monochrome_tests() -> None:
    assert skin_share(_patch(SKIN)) >= 0.95
    assert skin_share(_patch((95, 60, 45))) >= 0.9  # dark skin
    for cloth in (RED, BLUE, GRASS, (255, 140, 0), (240, 110, 170), (128, 128, 128)):
        assert skin_share(_patch(cloth)) <= 0.05, cloth
    gray = cv2.cvtColor(cv2.cvtColor(_stick_person(), cv2.COLOR_RGB2GRAY), cv2.COLOR_GRAY2RGB)
    assert is_monochrome(gray) and not is_monochrome(_stick_person())


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
GRASS, RED, BLUE, SKIN, NAVY = (40, 140, 40), (200, 25, 30), (30, 60, 190), (190, 140, 110), (25, 32, 75)


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


def _stick_person(
    shorts: bool = False,
    seed: int = 0,
    top: tuple[int, int, int] = RED,
    hands_on_chest: bool = False,
    monochrome: bool = False,
) -> np.ndarray:
    """A person drawn wider than the keypoints (as a body is): red torso and sleeves, blue legs."""
    image = np.zeros((480, 640, 3), dtype=np.uint8)
    image[:] = GRASS
    image = np.clip(image + np.random.default_rng(seed).normal(0, 5, image.shape), 0, 255).astype(np.uint8)
    p = {k: tuple(int(v) for v in xy) for k, xy in _points(hands_on_chest).items()}
    torso = np.array([(372, 115), (268, 115), (278, 268), (362, 268)], dtype=np.int32)
    cv2.fillPoly(image, [torso], top)
    for side in ("left", "right"):
        cv2.line(image, p[f"{side}_shoulder"], p[f"{side}_elbow"], top, 22)
        cv2.line(image, p[f"{side}_knee"], p[f"{side}_ankle"], SKIN if shorts else BLUE, 24)
        if shorts:
            mid = tuple((a + b) // 2 for a, b in zip(p[f"{side}_hip"], p[f"{side}_knee"], strict=True))
            cv2.line(image, p[f"{side}_hip"], mid, BLUE, 36)
            cv2.line(image, mid, p[f"{side}_knee"], SKIN, 24)
        else:
            cv2.line(image, p[f"{side}_hip"], p[f"{side}_knee"], BLUE, 36)
    for side in ("left", "right"):  # forearms and hands last: in front of the body
        cv2.line(image, p[f"{side}_elbow"], p[f"{side}_wrist"], SKIN, 16)
        cv2.circle(image, p[f"{side}_wrist"], 12, SKIN, -1)
    cv2.circle(image, p["nose"], 28, SKIN, -1)
    if monochrome:
        image = cv2.cvtColor(cv2.cvtColor(image, cv2.COLOR_RGB2GRAY), cv2.COLOR_GRAY2RGB)
    return image


def _points(hands_on_chest: bool = False) -> dict[str, tuple[float, float]]:
    if not hands_on_chest:
        return STICK
    # Hands clasped in front of the chest (signing, clapping): wrists meet on the torso.
    return {**STICK, "left_wrist": (330, 175), "right_wrist": (310, 175)}


def _people(count: int = 3, **drawing: object) -> list[tuple[np.ndarray, events_pb2.PoseSample]]:
    """`count` samples of the stick person, a quarter second apart (with fresh sensor noise)."""
    hands = bool(drawing.get("hands_on_chest", False))
    return [(_stick_person(seed=s, **drawing), _pose(_points(hands), t_s=s * 0.25)) for s in range(count)]  # type: ignore[arg-type]


def test_regions_pick_red_top_and_blue_trousers_on_grass() -> None:
    attributes, evidence = describe_appearance_with_evidence(_people(3), COLOURS)
    assert [(g.item, g.color) for g in attributes.clothing] == [("top", "red"), ("trousers", "blue")]
    assert attributes.gender == "" and attributes.age_group == ""
    assert evidence["upper"]["samples"] == 3 and evidence["upper"]["share"] >= 0.9
    assert evidence["upper"]["stated"] == 1.0 and evidence["upper"]["background_share"] < 0.05
    assert evidence["lower"]["share"] >= 0.9 and evidence["lower"]["agreement"] == 1.0
    assert evidence["lower"]["knee_skin_share"] < 0.2


def test_bare_knees_make_shorts() -> None:
    attributes, evidence = describe_appearance_with_evidence(_people(2, shorts=True), COLOURS)
    assert [(g.item, g.color) for g in attributes.clothing] == [("top", "red"), ("shorts", "blue")]
    assert evidence["lower"]["knee_skin_share"] >= 0.5


def test_one_frame_is_not_enough_evidence() -> None:
    # The default asks for two frames: one frame's colour may be a passing shadow or a reflection.
    attributes, evidence = describe_appearance_with_evidence(_people(1), COLOURS)
    assert list(attributes.clothing) == []
    assert evidence["upper"]["stated"] == 0.0 and evidence["upper"]["samples"] == 1
    assert describe_appearance(_people(1), replace(COLOURS, min_samples=1)).clothing[0].color == "red"


def test_a_skin_torso_is_a_bare_torso_not_a_colour() -> None:
    attributes, evidence = describe_appearance_with_evidence(_people(3, top=SKIN), COLOURS)
    assert [(g.item, g.color) for g in attributes.clothing] == [(BARE_TORSO, ""), ("trousers", "blue")]
    assert evidence["upper"]["skin_share"] >= 0.9
    assert label_for(attributes, 0) == "the shirtless person in the blue trousers"


def test_hands_held_in_front_of_the_chest_do_not_vote() -> None:
    samples = _people(3, hands_on_chest=True)
    regions = body_regions(samples[0][1], samples[0][0].shape[:2])
    hands = np.all(samples[0][0] == SKIN, axis=2)
    assert hands.sum() > 1000 and not (regions["upper"] & hands).any()
    attributes, evidence = describe_appearance_with_evidence(samples, COLOURS)
    assert attributes.clothing[0].color == "red" and evidence["upper"]["skin_share"] < 0.02


def test_a_top_the_colour_of_the_background_gives_no_evidence() -> None:
    # A green top on grass: the region cannot be told from the surroundings, so no colour is stated
    # for it (rather than naming what is left: seams, shadows, the background itself).
    attributes, evidence = describe_appearance_with_evidence(_people(3, top=GRASS), COLOURS)
    assert [(g.item, g.color) for g in attributes.clothing] == [("trousers", "blue")]
    assert evidence["lower"]["background_share"] < 0.05
    assert "upper" not in evidence


def test_black_and_white_footage_states_no_colour() -> None:
    attributes, evidence = describe_appearance_with_evidence(_people(3, monochrome=True), COLOURS)
    assert list(attributes.clothing) == []
    assert evidence == {"monochrome": {"frames": 3.0}}


def test_half_body_shot_reads_the_chest() -> None:
    # Hips out of view (a close shot): the chest band below the shoulders stands in for the torso.
    samples = [(image, _pose(STICK, t_s=sample.t_s, missing=("left_hip", "right_hip"))) for image, sample in _people(2)]
    regions = body_regions(samples[0][1], samples[0][0].shape[:2])
    assert set(regions) == {"upper"}
    assert (np.abs(samples[0][0][regions["upper"]].astype(int) - RED).sum(axis=1) < 40).mean() >= 0.95
    assert [(g.item, g.color) for g in describe_appearance(samples, COLOURS).clothing] == [("top", "red")]


def test_regions_stay_inside_the_drawn_body() -> None:
    image = _stick_person()
    regions = body_regions(_pose(STICK), image.shape[:2])
    assert set(regions) == {"upper", "lower", "lower_knee"}
    for key, mask in regions.items():
        grass = (np.abs(image[mask].astype(int) - GRASS).sum(axis=1) < 40).mean()
        # The knee band runs a little past the knee, where a shin is narrower than a thigh.
        assert grass <= (0.1 if key == "lower_knee" else 0.0), key


def test_missing_keypoints_skip_their_region() -> None:
    samples = _people(2)
    no_knees = describe_appearance(
        [(image, _pose(STICK, missing=("left_knee", "right_knee"))) for image, _ in samples], COLOURS
    )
    assert [g.item for g in no_knees.clothing] == ["top"]
    no_shoulder = describe_appearance(
        [(image, _pose(STICK, missing=("left_shoulder",))) for image, _ in samples], COLOURS
    )
    assert [g.item for g in no_shoulder.clothing] == ["trousers"]


def test_navy_trousers_whose_folds_read_black_stay_navy() -> None:
    # Shade takes chroma away: the darker folds of navy cloth fall under the achromatic limit.
    samples = []
    for image, sample in _people(3):
        legs = np.all(image == BLUE, axis=2)
        folds = legs & (np.arange(image.shape[1])[None, :] % 12 < 7)  # more than half in shade
        image[legs] = NAVY
        image[folds] = (12, 14, 26)
        samples.append((image, sample))
    attributes, evidence = describe_appearance_with_evidence(samples, COLOURS)
    assert [(g.item, g.color) for g in attributes.clothing] == [("top", "red"), ("trousers", "navy")]
    assert evidence["lower"]["share"] >= 0.9


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
    attributes, evidence = describe_appearance_with_evidence(samples, COLOURS)
    assert [(g.item, g.color) for g in attributes.clothing] == [("top", "gray"), ("trousers", "navy")]
    assert evidence["upper"]["samples"] == 3 and evidence["lower"]["samples"] == 3
    assert evidence["upper"]["agreement"] >= 2 / 3 and evidence["lower"]["agreement"] >= 2 / 3
    assert evidence["lower"]["knee_skin_share"] < 0.05
    assert label_for(attributes, 0) == "the person in the gray top and navy trousers"


# ------------------------------------------------------------------------------- labelled real footage

# Recorded from the shared labelled videos: the pose stage's dense tracks (4 fps over the whole shot,
# the built models on onnxruntime), each labelled subject's longest track matched to it by position,
# then the samples pose_grounded.appearance_samples picks (5 per track). One ClipVerdict per video;
# a track's id is the subject's index in that video's labels.json entry.
LABELLED_SAMPLES = Path(__file__).parent / "data" / "appearance"
LABELLED_VIDEOS = sorted(p.name.removesuffix(".binpb") for p in LABELLED_SAMPLES.glob("*.binpb"))


def _label_entry(shared_videos: Path, video: str) -> tuple[Path, dict]:
    for directory in (shared_videos, shared_videos / "corpus"):
        labels = json.loads((directory / "labels.json").read_text())
        if video in labels:
            return directory / video, labels[video]
    raise AssertionError(f"{video} is in no labels.json under {shared_videos}")


def _expected_top(label: str) -> tuple[str, str] | None:
    """The garment the reader should state for a labelled top colour; None for 'unknown'."""
    if label == "unknown":
        return None
    if label.startswith("none"):
        return (BARE_TORSO, "")
    assert label in COLOR_VOCABULARY, label
    return (TOP_ITEM, label)


@pytest.mark.parametrize("video", LABELLED_VIDEOS)
def test_top_colours_of_labelled_people(video: str, shared_videos: Path) -> None:
    path, label = _label_entry(shared_videos, video)
    clip = events_pb2.ClipVerdict.FromString((LABELLED_SAMPLES / f"{video}.binpb").read_bytes())
    times = sorted({s.t_s for t in clip.dense_tracks for s in t.samples})
    with VideoReader(path, VideoInfo.from_proto(clip.info)) as reader:
        frames = dict(reader.frames_at(times))
    for track in clip.dense_tracks:
        subject = label["subjects"][track.track_id]
        attributes, evidence = describe_appearance_with_evidence([(frames[s.t_s], s) for s in track.samples], COLOURS)
        tops = [(g.item, g.color) for g in attributes.clothing if g.item in (TOP_ITEM, BARE_TORSO)]
        expected = _expected_top(subject["top"])
        assert tops == ([expected] if expected else []), (track.track_id, subject, evidence)
        if "black-and-white" in label["content"].lower():
            assert list(attributes.clothing) == [] and "monochrome" in evidence


def test_a_shirtless_person_is_described_without_a_garment() -> None:
    attributes = _attributes((BARE_TORSO, ""), ("shorts", "black"))
    attributes.gender = "male"
    assert describe_person(attributes) == "a shirtless man wearing black shorts"
    assert label_for(attributes, 0) == "the shirtless man in the black shorts"
