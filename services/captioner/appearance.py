"""Garment colours from the person's own pixels inside keypoint-defined body regions, and labels
that tell people apart by them.

The pose-grounded captioner has no appearance model, so clothing is read straight off the pixels
that the pose keypoints say are covered by a garment:

* upper garment: the torso quadrilateral (shoulders and hips) shrunk towards its centre so the
  background beside the body stays out; when the hips are out of view (a half-body shot) a chest
  band below the shoulders instead; plus the shoulder half of each confident upper arm (short
  sleeves still cover that part);
* lower garment: a band along each thigh (hip to knee) as wide as half the hip distance. Its colour
  comes from the upper half of the thighs, which shorts and trousers both cover; the lower half and
  the knee decide the item (skin there means shorts);
* forearms and hands are cut out of both: hands held in front of the body (clasped, clapping,
  signing) would otherwise vote with the colour of skin.

Inside a region only person pixels vote for a colour: a pixel that matches one of the main colours
of a ring around the person's box (the local background) is dropped, since keypoints sit on the
body outline and a polygon of a turned body reaches past it; a skin pixel is counted apart, and
mostly skin where the torso should be is a bare torso, stated as such rather than as a colour. A
sample in which most of the region looks like the background gives no colour evidence at all.

Colours are named in CIELAB (opencv's conversion, D65): pixels are clustered with k-means, each
cluster centre is named from its lightness, chroma and hue angle (LCh) by the sectors in name_lab
(achromatic centres become black / gray / white by lightness), and the name covering most pixels
wins. A shadowed part of a garment keeps its hue, and the names one garment takes in light and in
shade (SHADES: navy and black, gray and white, orange and brown...) add up as one vote; since shade
takes chroma away and never adds it, a coloured shade with a fair part of the pixels is the stated
colour (navy trousers whose folds read black are navy). No lighting normalisation: grey-world and
white-patch were tried on the labelled videos and made more colours wrong than right (a garden's
green turns a gray shirt purple under grey-world; white-patch turns a gray T-shirt white).

A colour is stated only with evidence (ColourThresholds): the region seen in enough samples with
enough person pixels, the winning name covering enough of the pooled pixels and agreeing with
enough samples' own winners. Otherwise the garment is left out of the caption ("unknown"), as it is
for footage without colour (a black-and-white film has no garment colours to state).

Gender and age group are left empty here (they come from the pose stage's face models).
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass

import cv2
import numpy as np

from haic.v1 import events_pb2
from services.core.caption_text import BARE_TORSO, person_noun
from services.core.keypoints import COCO_KEYPOINTS, NUM_KEYPOINTS
from services.core.settings import CaptionerServiceSettings

# Names the captioner may use for a colour; every name color_name returns is in here. Labels a person
# writes map onto it by family (bench/label_matching.py): "light blue" is blue or teal, "khaki" is
# beige, brown or olive, "light" is white, beige or gray.
COLOR_VOCABULARY: tuple[str, ...] = (
    "black",
    "white",
    "gray",
    "red",
    "orange",
    "yellow",
    "olive",
    "green",
    "teal",
    "blue",
    "navy",
    "purple",
    "pink",
    "brown",
    "beige",
)

# Names one garment takes in light and in shade (lighting changes lightness far more than hue): the
# pixels and samples of a shade count as support for the stated name, so a navy garment whose folds
# read black is still stated navy, while gray against blue stays a disagreement.
SHADES: dict[str, frozenset[str]] = {
    "black": frozenset({"gray", "navy"}),
    "gray": frozenset({"black", "white"}),
    "white": frozenset({"gray"}),
    "navy": frozenset({"black", "blue"}),
    "blue": frozenset({"navy"}),
    "red": frozenset({"pink"}),
    "pink": frozenset({"red"}),
    "orange": frozenset({"brown"}),
    "brown": frozenset({"orange"}),
    "yellow": frozenset({"olive"}),
    "olive": frozenset({"yellow"}),
}

ACHROMATIC = frozenset({"black", "gray", "white"})
# Share of an achromatic colour's family (it and its shades) a coloured shade needs to be stated instead.
COLOURED_SHADE_SHARE = 0.35

MIN_KEYPOINT_SCORE = 0.3
# Below this chroma (CIELAB a*b* radius) a colour reads as black, gray or white. It grows with
# lightness (ACHROMATIC_CHROMA_PER_L) between a floor and a cap: dark cloth has noisy, weak chroma
# (a black jacket under fluorescent light: L ~6, chroma ~5) yet navy cloth (L ~10, chroma ~12) is
# coloured; at mid lightness a blue-gray shirt (L ~36, chroma ~11) is gray, a dull teal jacket
# (L ~36, chroma ~14) is teal.
ACHROMATIC_CHROMA_FLOOR = 8.0
ACHROMATIC_CHROMA_CAP = 13.0
ACHROMATIC_CHROMA_PER_L = 0.35
# Neutral surfaces stray from gray mostly along b* (daylight and shade are bluish, lamps yellowish:
# the blackbody locus), so along b* the limit is this much wider: a blue-gray shirt (a* ~1, b* ~-13 at
# L ~38) is gray, a dull teal (a* ~-13, b* ~-6) is not.
ACHROMATIC_B_STRETCH = 1.3
# Knee pixels within this CIELAB distance of one of the garment's clusters (its colour and shades)
# count as the same cloth.
SAME_CLOTH_DELTA_E = 15.0
KMEANS_K = 3
# Pixels clustered per call and per region per sample: enough for a stable vote, cheap on a CPU.
MAX_PIXELS = 4000
MAX_PIXELS_PER_SAMPLE = 1500

# Skin in CIELAB (LCh): hue between red and yellow, moderate chroma, not too dark. Covers light to dark
# skin under daylight and indoor light; saturated orange or pink cloth lies beyond the chroma limit.
SKIN_LIGHTNESS = (25.0, 95.0)
SKIN_CHROMA = (8.0, 45.0)
SKIN_HUE = (15.0, 75.0)

# Local background: a ring around the person's box, RING_MARGIN box sizes wide, clustered into
# RING_K colours; those covering at least RING_MIN_SHARE of the ring are the background, and region
# pixels within BACKGROUND_DELTA_E of one are dropped ...
RING_MARGIN = 0.15
RING_K = 4
RING_MIN_SHARE = 0.15
BACKGROUND_DELTA_E = 8.0
# A sample whose region is at least this share background-like gives no colour evidence.
BACKGROUND_MAX_SHARE = 0.5
# Footage whose frames have almost no coloured pixel (chroma above MONOCHROME_CHROMA) is black and white.
MONOCHROME_CHROMA = 10.0
MONOCHROME_MAX_COLOURED = 0.005

TOP_ITEM = "top"  # shirt, t-shirt or jacket cannot be told apart from colour alone
TROUSERS, SHORTS, BOTTOMS = "trousers", "shorts", "bottoms"
# Lower half of the thighs plus knees: skin share at least SHORTS_SKIN means bare legs (shorts),
# at most TROUSERS_SKIN with the garment colour continuing there means trousers; else "bottoms".
SHORTS_SKIN = 0.5
TROUSERS_SKIN = 0.2
TROUSERS_SAME_CLOTH = 0.4


class AppearanceError(ValueError):
    """Raised for inputs the appearance reader cannot use (wrong pixel or keypoint shapes)."""


@dataclass(frozen=True)
class ColourThresholds:
    """The evidence a garment colour needs before it is stated, read from the captioner's settings
    (HAIC_APPEARANCE_*: ``from_settings``)."""

    min_samples: int  # frames the region shows person pixels in
    min_region_pixels: int  # per frame, to count as seen
    min_share: float  # of the pooled person pixels
    min_agreement: float  # of the frames' own dominant colours
    bare_skin_share: float  # torso skin share, pooled and per frame

    @classmethod
    def from_settings(cls, settings: CaptionerServiceSettings) -> ColourThresholds:
        return cls(
            min_samples=settings.appearance_min_samples,
            min_region_pixels=settings.appearance_min_region_pixels,
            min_share=settings.appearance_min_colour_share,
            min_agreement=settings.appearance_min_agreement,
            bare_skin_share=settings.appearance_bare_skin_share,
        )


@dataclass(frozen=True)
class ColorEvidence:
    """What stands behind one garment's colour: pixel share of the colour, samples seen, agreement."""

    color: str
    share: float  # share of the pooled pixels named `color` or one of its shades
    samples: int  # samples in which the region was visible
    agreement: float  # share of those samples whose own dominant colour is `color` or one of its shades
    pixels: int  # pooled pixels clustered

    def as_dict(self) -> dict[str, float]:
        return {
            "share": self.share,
            "samples": float(self.samples),
            "agreement": self.agreement,
            "pixels": float(self.pixels),
        }

    def supported(self, thresholds: ColourThresholds) -> bool:
        return (
            self.samples >= thresholds.min_samples
            and self.share >= thresholds.min_share
            and self.agreement >= thresholds.min_agreement
        )


# --------------------------------------------------------------------------------------------- colour


def _to_lab(rgb_pixels: np.ndarray) -> np.ndarray:
    """N x 3 uint8 RGB -> N x 3 float32 CIELAB (L in 0..100)."""
    rgb = np.asarray(rgb_pixels)
    if rgb.ndim < 2 or rgb.shape[-1] != 3:
        raise AppearanceError(f"expected RGB pixels with a last axis of 3, got shape {rgb.shape}")
    if rgb.size == 0:
        return np.empty((0, 3), dtype=np.float32)  # cv2.cvtColor rejects empty input
    scaled = rgb.astype(np.float32).reshape(-1, 1, 3) / 255.0
    return cv2.cvtColor(scaled, cv2.COLOR_RGB2LAB).reshape(-1, 3)


def _chroma_hue(lab: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    chroma = np.hypot(lab[:, 1], lab[:, 2])
    hue = np.degrees(np.arctan2(lab[:, 2], lab[:, 1])) % 360
    return chroma, hue


def achromatic_limit(lightness: float) -> float:
    """The chroma under which a colour of this lightness reads as black, gray or white."""
    return min(ACHROMATIC_CHROMA_CAP, max(ACHROMATIC_CHROMA_FLOOR, ACHROMATIC_CHROMA_PER_L * lightness))


def name_lab(lightness: float, a: float, b: float) -> str:
    """The vocabulary name of one CIELAB colour, by sectors of lightness, chroma and hue angle (LCh)."""
    chroma = math.hypot(a, b)
    hue = math.degrees(math.atan2(b, a)) % 360
    # Hue angles of reference colours in CIELAB: hot pink ~0-15, crimson ~27, sRGB red 40, safety
    # orange ~50, orange 73, mustard ~70-80, olive ~85-105, yellow 103, green 136, teal/cyan 196,
    # blue 306, purple 328.
    if 40 <= hue < 115 and 8 <= chroma < 30 and lightness >= 60:
        return "beige"  # pale, weakly saturated yellow-orange: tan, khaki, cream
    limit = achromatic_limit(lightness)
    if math.hypot(a / limit, b / (limit * ACHROMATIC_B_STRETCH)) < 1:
        if lightness < 22:
            return "black"
        return "white" if lightness >= 80 else "gray"
    if hue >= 345 or hue < 25:
        # Magenta-leaning reds are pink unless very dark (burgundy reads as red).
        return "pink" if lightness >= 35 else "red"
    if hue < 41:
        return "pink" if lightness >= 65 else "red"
    if hue < 78:
        # Saturated is orange at any lightness (a mustard hoodie in shade); weak is brown.
        if chroma >= 45:
            return "orange"
        return "pink" if lightness >= 65 and hue < 50 else "brown"
    if hue < 115:
        return "yellow" if lightness >= 60 and chroma >= 30 else "olive"
    if hue < 180:
        return "green"
    if hue < 235:
        return "teal"
    if hue < 315:
        return "navy" if lightness < 22 else "blue"
    return "pink" if lightness >= 65 else "purple"


def _clusters(lab: np.ndarray, k: int = KMEANS_K) -> list[tuple[str, float, np.ndarray]]:
    """k-means clusters of CIELAB pixels as (name of the centre, pixel share, centre)."""
    n = len(lab)
    if n > MAX_PIXELS:
        # Evenly spaced subsample: deterministic and keeps the spatial mix of the region.
        lab = lab[np.linspace(0, n - 1, MAX_PIXELS).astype(np.int64)]
    k = min(k, len(lab))
    if k < 2:
        centre = lab.mean(axis=0)
        return [(name_lab(*map(float, centre)), 1.0, centre)]
    cv2.setRNGSeed(0)  # k-means++ seeding is random; fixed seed keeps captions reproducible
    criteria = (cv2.TERM_CRITERIA_EPS + cv2.TERM_CRITERIA_MAX_ITER, 20, 0.5)
    _, labels, centres = cv2.kmeans(
        np.ascontiguousarray(lab, dtype=np.float32), k, None, criteria, 2, cv2.KMEANS_PP_CENTERS
    )
    counts = np.bincount(labels.ravel(), minlength=k)
    return [
        (name_lab(*map(float, centre)), float(count) / len(lab), centre)
        for centre, count in zip(centres, counts, strict=True)
        if count
    ]


def _name_shares(clusters: list[tuple[str, float, np.ndarray]]) -> defaultdict[str, float]:
    """Share of pixels per colour name (clusters of the same name add up); an absent name has 0."""
    shares: defaultdict[str, float] = defaultdict(float)
    for name, share, _ in clusters:
        shares[name] += share
    return shares


def _top(shares: dict[str, float]) -> tuple[str, float]:
    """The name with the largest share (the first one seen on a tie)."""
    return max(shares.items(), key=lambda item: item[1])


def _dominant(lab: np.ndarray) -> tuple[str, float]:
    return _top(_name_shares(_clusters(lab)))


def color_name(rgb_pixels: np.ndarray) -> tuple[str, float]:
    """The dominant colour name of a set of RGB pixels (any shape ending in 3) and its pixel share."""
    lab = _to_lab(rgb_pixels)
    if len(lab) == 0:
        raise AppearanceError("no pixels to name a colour from")
    name, share = _dominant(lab)
    return name, round(share, 3)


def _skin_mask(lab: np.ndarray) -> np.ndarray:
    chroma, hue = _chroma_hue(lab)
    return (
        (lab[:, 0] >= SKIN_LIGHTNESS[0])
        & (lab[:, 0] <= SKIN_LIGHTNESS[1])
        & (chroma >= SKIN_CHROMA[0])
        & (chroma <= SKIN_CHROMA[1])
        & (hue >= SKIN_HUE[0])
        & (hue <= SKIN_HUE[1])
    )


def skin_share(rgb_pixels: np.ndarray) -> float:
    """Share of pixels whose CIELAB colour lies in the skin range (light to dark skin)."""
    lab = _to_lab(np.asarray(rgb_pixels, dtype=np.uint8).reshape(-1, 3))
    return float(_skin_mask(lab).mean()) if len(lab) else 0.0


def is_monochrome(rgb_frame: np.ndarray) -> bool:
    """True for a frame with (almost) no coloured pixel: black-and-white footage."""
    lab = _to_lab(np.asarray(rgb_frame)[::8, ::8].reshape(-1, 3))
    chroma, _ = _chroma_hue(lab)
    return bool((chroma > MONOCHROME_CHROMA).mean() <= MONOCHROME_MAX_COLOURED)


# -------------------------------------------------------------------------------------------- regions


def _keypoints(sample: events_pb2.PoseSample) -> dict[str, np.ndarray]:
    """Confident keypoints by name (x, y as float)."""
    if len(sample.keypoints) != NUM_KEYPOINTS:
        raise AppearanceError(f"expected {NUM_KEYPOINTS} keypoints, got {len(sample.keypoints)}")
    return {
        name: np.array([kp.x, kp.y], dtype=np.float64)
        for name, kp in zip(COCO_KEYPOINTS, sample.keypoints, strict=True)
        if kp.score >= MIN_KEYPOINT_SCORE
    }


def _segment_polygon(p: np.ndarray, q: np.ndarray, start: float, end: float, width: float) -> np.ndarray:
    """The rectangle of `width` around the part of segment p->q between fractions start and end."""
    direction = q - p
    length = float(np.linalg.norm(direction))
    if length < 1e-6:
        return np.empty((0, 2))
    normal = np.array([-direction[1], direction[0]]) / length * (width / 2)
    a, b = p + direction * start, p + direction * end
    return np.array([a + normal, b + normal, b - normal, a - normal])


def _shrink(polygon: np.ndarray, factor: float) -> np.ndarray:
    centre = polygon.mean(axis=0)
    return centre + (polygon - centre) * factor


def _mask(shape: tuple[int, int], polygons: Sequence[np.ndarray]) -> np.ndarray:
    mask = np.zeros(shape, dtype=np.uint8)
    for polygon in polygons:
        if len(polygon):
            cv2.fillPoly(mask, [np.round(polygon).astype(np.int32)], 1)
    return mask.astype(bool)


def _chest_band(ls: np.ndarray, rs: np.ndarray) -> np.ndarray:
    """The chest below the shoulders when the hips are out of view: 0.15 to 0.9 shoulder widths
    down from the shoulder line, the middle 70% of its width."""
    across = rs - ls
    width = float(np.linalg.norm(across))
    down = np.array([across[1], -across[0]]) / max(width, 1e-6)
    if down[1] < 0:  # image y grows downwards; the chest is below the shoulders
        down = -down
    left, right = ls + 0.15 * across, rs - 0.15 * across
    return np.array(
        [left + 0.15 * width * down, right + 0.15 * width * down, right + 0.9 * width * down, left + 0.9 * width * down]
    )


def body_regions(sample: events_pb2.PoseSample, shape: tuple[int, int]) -> dict[str, np.ndarray]:
    """Boolean masks (frame height x width) of the garment regions the sample's keypoints support.

    Keys: "upper" (torso or chest, and upper arms), "lower" (upper half of the thighs, the garment
    colour), "lower_knee" (lower half of the thighs and the knees, the shorts-or-trousers test). A
    region is absent when its keypoints are not confident. Forearms and hands are left out of all.
    """
    kp = _keypoints(sample)
    regions: dict[str, np.ndarray] = {}
    ls, rs = kp.get("left_shoulder"), kp.get("right_shoulder")
    lh, rh = kp.get("left_hip"), kp.get("right_hip")
    if ls is not None and rs is not None:
        shoulder_width = float(np.linalg.norm(ls - rs))
        if lh is not None and rh is not None:
            # Keypoints sit at the joints on the body outline: shrink to stay off the background.
            polygons = [_shrink(np.array([ls, rs, rh, lh]), 0.8)]
        elif shoulder_width >= 4:
            polygons = [_chest_band(ls, rs)]
        else:
            polygons = []
        if polygons:
            arm_width = 0.2 * shoulder_width
            for side in ("left", "right"):
                shoulder, elbow = kp.get(f"{side}_shoulder"), kp.get(f"{side}_elbow")
                if shoulder is not None and elbow is not None:
                    # Shoulder half only: a short sleeve ends about there.
                    polygons.append(_segment_polygon(shoulder, elbow, 0.15, 0.5, arm_width))
            regions["upper"] = _mask(shape, polygons)
    if lh is not None and rh is not None:
        thigh_width = 0.5 * float(np.linalg.norm(lh - rh))
        upper, lower = [], []
        for side, hip in (("left", lh), ("right", rh)):
            knee = kp.get(f"{side}_knee")
            if knee is None:
                continue
            upper.append(_segment_polygon(hip, knee, 0.1, 0.5, thigh_width))
            lower.append(_segment_polygon(hip, knee, 0.6, 1.1, thigh_width))
        if upper and thigh_width >= 2:
            regions["lower"] = _mask(shape, upper)
            regions["lower_knee"] = _mask(shape, lower)
    hands = _hands(kp, shape)
    if hands is not None:
        regions = {key: mask & ~hands for key, mask in regions.items()}
    return regions


def _hands(kp: dict[str, np.ndarray], shape: tuple[int, int]) -> np.ndarray | None:
    """Forearms (elbow to wrist, extended past the wrist for the hand) as a mask, or None."""
    reference = [kp.get("left_shoulder"), kp.get("right_shoulder")]
    if any(p is None for p in reference):
        return None
    width = 0.3 * float(np.linalg.norm(reference[0] - reference[1]))  # type: ignore[operator]
    polygons = []
    for side in ("left", "right"):
        elbow, wrist = kp.get(f"{side}_elbow"), kp.get(f"{side}_wrist")
        if elbow is not None and wrist is not None:
            polygons.append(_segment_polygon(elbow, wrist, 0.0, 1.45, width))
    return _mask(shape, polygons) if polygons and width >= 1 else None


# ----------------------------------------------------------------------------------------- appearance


def _sample_evenly(pixels: np.ndarray, limit: int) -> np.ndarray:
    if len(pixels) <= limit:
        return pixels
    return pixels[np.linspace(0, len(pixels) - 1, limit).astype(np.int64)]


def _background_colours(lab_frame_pixels: np.ndarray) -> np.ndarray:
    """Centres (CIELAB) of the main colours of the ring around a person's box."""
    if len(lab_frame_pixels) < RING_K * 10:
        return np.empty((0, 3), dtype=np.float32)
    return np.array(
        [centre for _, share, centre in _clusters(lab_frame_pixels, RING_K) if share >= RING_MIN_SHARE],
        dtype=np.float32,
    ).reshape(-1, 3)


def _ring(frame: np.ndarray, box: events_pb2.Box) -> np.ndarray:
    """RGB pixels of the band around the box (RING_MARGIN of its size wide), inside the frame."""
    height, width = frame.shape[:2]
    margin_x, margin_y = RING_MARGIN * (box.x2 - box.x1), RING_MARGIN * (box.y2 - box.y1)
    outer = (
        int(max(0, box.x1 - margin_x)),
        int(max(0, box.y1 - margin_y)),
        int(min(width, box.x2 + margin_x)),
        int(min(height, box.y2 + margin_y)),
    )
    mask = np.zeros((height, width), dtype=bool)
    mask[outer[1] : outer[3], outer[0] : outer[2]] = True
    mask[int(max(0, box.y1)) : int(min(height, box.y2)), int(max(0, box.x1)) : int(min(width, box.x2))] = False
    return frame[mask]


@dataclass
class _RegionPixels:
    """One region's pixels over the samples: person (non-skin, non-background) pixels per sample."""

    garment: list[np.ndarray]  # CIELAB, per sample where the region showed enough person pixels
    skin: list[float]  # skin share per sample where the region was in view
    background: list[float]  # background share per sample where the region was in view


def _gather(
    samples: Sequence[tuple[np.ndarray, events_pb2.PoseSample]], thresholds: ColourThresholds
) -> dict[str, _RegionPixels]:
    gathered = {key: _RegionPixels([], [], []) for key in ("upper", "lower", "lower_knee")}
    for frame, sample in samples:
        if frame.ndim != 3 or frame.shape[2] != 3:
            raise AppearanceError(f"expected an H x W x 3 RGB frame, got shape {frame.shape}")
        regions = body_regions(sample, frame.shape[:2])
        if not regions:
            continue
        background = _background_colours(_to_lab(_sample_evenly(_ring(frame, sample.box), MAX_PIXELS)))
        for key, mask in regions.items():
            lab = _to_lab(_sample_evenly(frame[mask], MAX_PIXELS_PER_SAMPLE))
            if len(lab) < thresholds.min_region_pixels:
                continue
            skin = _skin_mask(lab)
            if len(background):
                distance = np.linalg.norm(lab[:, None, :] - background[None, :, :], axis=2).min(axis=1)
                like_background = distance < BACKGROUND_DELTA_E
            else:
                like_background = np.zeros(len(lab), dtype=bool)
            region = gathered[key]
            region.skin.append(float(skin.mean()))
            region.background.append(float(like_background.mean()))
            if like_background.mean() >= BACKGROUND_MAX_SHARE:
                # The garment cannot be told from its surroundings here (a navy sweater against a navy
                # wall, a backlit body against the sky): this sample gives no colour evidence.
                continue
            person = lab[~skin & ~like_background]
            if len(person) >= thresholds.min_region_pixels:
                region.garment.append(person)
    return gathered


def _pooled_color(per_sample: list[np.ndarray]) -> tuple[ColorEvidence, np.ndarray]:
    """The dominant colour of the pooled pixels, its evidence, and the centres (CIELAB) of its clusters.

    The share and the agreement count the colour's shades (SHADES) with it.
    """
    pooled = np.concatenate(per_sample)
    clusters = _clusters(pooled)
    shares = _name_shares(clusters)
    color = _top(shares)[0]
    family = SHADES.get(color, frozenset()) | {color}
    if color in ACHROMATIC:
        # Shade takes chroma away and never adds it: a coloured shade with a fair part of the pixels
        # is the garment's colour (navy trousers whose folds read black).
        family_share = sum(shares[name] for name in family)
        coloured = [name for name in family - ACHROMATIC if shares[name] >= COLOURED_SHADE_SHARE * family_share]
        if coloured:
            color = max(coloured, key=lambda name: shares[name])
            family = SHADES.get(color, frozenset()) | {color}
    share = sum(shares[name] for name in family)
    centres = np.array([centre for name, _, centre in clusters if name in family], dtype=np.float32)
    agreement = sum(_dominant(p)[0] in family for p in per_sample) / len(per_sample)
    evidence = ColorEvidence(color, round(share, 3), len(per_sample), round(agreement, 3), len(pooled))
    return evidence, centres


def _bare(region: _RegionPixels, thresholds: ColourThresholds) -> bool:
    """Mostly skin where the garment should be, in enough samples."""
    if len(region.skin) < thresholds.min_samples:
        return False
    bare_samples = sum(share >= thresholds.bare_skin_share for share in region.skin)
    return float(np.mean(region.skin)) >= thresholds.bare_skin_share and bare_samples / len(region.skin) >= (
        thresholds.min_agreement
    )


def describe_appearance_with_evidence(
    samples: Sequence[tuple[np.ndarray, events_pb2.PoseSample]],
    thresholds: ColourThresholds,
) -> tuple[events_pb2.SubjectAttributes, dict[str, dict[str, float]]]:
    """Garments of one person pooled over several (RGB frame, pose sample) pairs, with evidence.

    Each frame is the RGB frame at sample.t_s in the keypoints' pixel coordinates. Evidence is keyed
    "upper" / "lower": colour share, samples seen, per-sample agreement, pixels, skin and background
    shares, and "stated" (1 when the garment is in the attributes); "lower" also carries
    "knee_skin_share" and "knee_same_cloth_share" behind the shorts / trousers choice. Footage without
    colour gives {"monochrome": {"frames": n}} and no garment.
    """
    attributes = events_pb2.SubjectAttributes()
    if samples and all(is_monochrome(frame) for frame, _ in samples):
        return attributes, {"monochrome": {"frames": float(len(samples))}}
    gathered = _gather(samples, thresholds)
    evidence: dict[str, dict[str, float]] = {}

    upper = gathered["upper"]
    if _bare(upper, thresholds):
        attributes.clothing.add(item=BARE_TORSO)
        evidence["upper"] = {"skin_share": round(float(np.mean(upper.skin)), 3), "stated": 1.0}
    elif upper.garment:
        top, _ = _pooled_color(upper.garment)
        stated = top.supported(thresholds)
        if stated:
            attributes.clothing.add(item=TOP_ITEM, color=top.color)
        evidence["upper"] = {**top.as_dict(), **_shares(upper), "stated": float(stated)}

    lower = gathered["lower"]
    if lower.garment:
        bottom, centres = _pooled_color(lower.garment)
        stated = bottom.supported(thresholds)
        item, knee = _bottom_item(lower, gathered["lower_knee"], centres)
        if stated:
            attributes.clothing.add(item=item, color=bottom.color)
        evidence["lower"] = {**bottom.as_dict(), **_shares(lower), **knee, "stated": float(stated)}
    return attributes, evidence


def _shares(region: _RegionPixels) -> dict[str, float]:
    return {
        "skin_share": round(float(np.mean(region.skin)), 3),
        "background_share": round(float(np.mean(region.background)), 3),
    }


def _bottom_item(lower: _RegionPixels, knee: _RegionPixels, centres: np.ndarray) -> tuple[str, dict[str, float]]:
    """Shorts (bare knees), trousers (the cloth continues over the knees) or bottoms (cannot tell)."""
    if not knee.skin:
        return BOTTOMS, {"knee_skin_share": 0.0, "knee_same_cloth_share": 0.0}
    skin = float(np.mean(knee.skin))
    same = 0.0
    if knee.garment:
        # Distance to the garment's clusters (its colour and shades), not equal names: dark cloth near
        # a name boundary (navy / black) would otherwise look like a different garment at the knee.
        pixels = np.concatenate(knee.garment)
        distance = np.linalg.norm(pixels[:, None, :] - centres[None, :, :], axis=2).min(axis=1)
        # Share of all knee pixels: the skin pixels (left out of the garment pixels) are not the cloth.
        same = float((distance < SAME_CLOTH_DELTA_E).mean()) * (1 - skin)
    values = {"knee_skin_share": round(skin, 3), "knee_same_cloth_share": round(same, 3)}
    if skin >= SHORTS_SKIN and float(np.mean(lower.skin)) < TROUSERS_SKIN:
        return SHORTS, values
    if skin <= TROUSERS_SKIN and same >= TROUSERS_SAME_CLOTH:
        return TROUSERS, values
    return BOTTOMS, values


def describe_appearance(
    samples: Sequence[tuple[np.ndarray, events_pb2.PoseSample]],
    thresholds: ColourThresholds,
) -> events_pb2.SubjectAttributes:
    """describe_appearance_with_evidence without the evidence."""
    return describe_appearance_with_evidence(samples, thresholds)[0]


# --------------------------------------------------------------------------------------------- labels

_NOUNS = {"male": "man", "female": "woman", "man": "man", "woman": "woman", "boy": "boy", "girl": "girl"}
_ORDINALS = ("first", "second", "third", "fourth", "fifth", "sixth", "seventh", "eighth", "ninth", "tenth")


def _ordinal(n: int) -> str:
    return _ORDINALS[n - 1] if 1 <= n <= len(_ORDINALS) else f"{n}th"


def label_for(attributes: events_pb2.SubjectAttributes, index: int) -> str:
    """A label such as "the person in the red top and blue trousers" or "the shirtless man in black shorts".

    `index` (0-based) only names a subject with no attributes at all ("the first person").
    """
    noun = _NOUNS.get(attributes.gender.lower(), "person")
    if attributes.age_group and noun in ("man", "woman", "person"):
        noun = person_noun(attributes.gender.lower(), attributes.age_group)  # "young man", "elderly person"
    bare = any(g.item == BARE_TORSO for g in attributes.clothing)
    if bare:
        noun = f"shirtless {noun}"
    garments = [
        f"{g.color} {g.item}".strip() for g in attributes.clothing if (g.item or g.color) and g.item != BARE_TORSO
    ]
    parts = [f"the {noun}"]
    if garments:
        parts.append("in the " + " and ".join(garments))
    if attributes.accessories:
        parts.append("with " + " and ".join(f"a {a}" for a in attributes.accessories))
    if len(parts) == 1 and noun == "person":
        return f"the {_ordinal(index + 1)} person"
    return " ".join(parts)


def _position(rank: int, count: int) -> str:
    if rank == 0:
        return "on the left"
    if rank == count - 1:
        return "on the right"
    if count == 3:
        return "in the middle"
    return f"{_ordinal(rank + 1)} from the left"


def distinct_labels(attributes_list: Sequence[events_pb2.SubjectAttributes], centres_x: Sequence[float]) -> list[str]:
    """One label per subject, no two alike: equal labels get the subject's place, left to right.

    Position is the last resort: attributes (gender, garments, accessories) are already in the label,
    so subjects that still collide look alike to this reader. centres_x is each subject's mean box
    centre in pixels.
    """
    if len(attributes_list) != len(centres_x):
        raise AppearanceError(f"{len(attributes_list)} subjects but {len(centres_x)} centres")
    labels = [label_for(a, i) for i, a in enumerate(attributes_list)]
    groups: dict[str, list[int]] = {}
    for i, label in enumerate(labels):
        groups.setdefault(label, []).append(i)
    result = list(labels)
    for label, members in groups.items():
        if len(members) < 2:
            continue
        ordered = sorted(members, key=lambda i: (centres_x[i], i))
        for rank, i in enumerate(ordered):
            result[i] = f"{label} {_position(rank, len(ordered))}"
    return result
