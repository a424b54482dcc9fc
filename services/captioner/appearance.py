"""Garment colours from keypoint-defined body regions, and labels that tell people apart by them.

The pose-grounded captioner has no appearance model, so clothing is read straight off the pixels
that the pose keypoints say are covered by a garment:

* upper garment: the torso quadrilateral (shoulders and hips) shrunk towards its centre so the
  background beside the body stays out, plus the shoulder half of each confident upper arm (short
  sleeves still cover that part);
* lower garment: a band along each thigh (hip to knee) as wide as half the hip distance. Its colour
  comes from the upper half of the thighs, which shorts and trousers both cover; the lower half and
  the knee decide the item (skin there means shorts).

Colours are named in CIELAB: pixels are clustered with k-means, each cluster centre is named by
rules on lightness, chroma and hue angle (achromatic centres become black / gray / white by
lightness), and the name covering most pixels wins. A shadowed part of a garment keeps its hue and
chroma direction, so it lands in the same name and adds to the same vote instead of splitting it.

Gender and age group are left empty: no model here supports them.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass

import cv2
import numpy as np

from haic.v1 import events_pb2
from services.pose.contract import COCO_KEYPOINTS, NUM_KEYPOINTS

# Names the captioner may use for a colour; every name color_name returns is in here.
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

MIN_KEYPOINT_SCORE = 0.3
# Below this chroma (CIELAB a*b* radius) a colour reads as black, gray or white: slate gray is ~11,
# the juggler's blue-gray shirt ~13. Dark colours have little chroma even when clearly coloured
# (navy cloth: L ~10, chroma ~12), so under L = 30 the limit falls with lightness (see name_lab).
ACHROMATIC_CHROMA = 15.0
# Knee pixels within this CIELAB distance of the garment's main cluster count as the same cloth.
SAME_CLOTH_DELTA_E = 15.0
KMEANS_K = 3
# Pixels clustered per call and per region per sample: enough for a stable vote, cheap on a CPU.
MAX_PIXELS = 4000
MAX_PIXELS_PER_SAMPLE = 1500
# Least pixels a region needs in one sample to count as seen in that sample.
MIN_REGION_PIXELS = 30

TOP_ITEM = "top"  # shirt, t-shirt or jacket cannot be told apart from colour alone
TROUSERS, SHORTS, BOTTOMS = "trousers", "shorts", "bottoms"
# Lower half of the thighs plus knees: skin share at least SHORTS_SKIN means bare legs (shorts),
# at most TROUSERS_SKIN with the garment colour continuing there means trousers; else "bottoms".
SHORTS_SKIN = 0.5
TROUSERS_SKIN = 0.2
TROUSERS_SAME_CLOTH = 0.4

_KP = {name: i for i, name in enumerate(COCO_KEYPOINTS)}


class AppearanceError(ValueError):
    """Raised for inputs the appearance reader cannot use (wrong pixel or keypoint shapes)."""


@dataclass(frozen=True)
class ColorEvidence:
    """What stands behind one garment's colour: pixel share of the colour, samples seen, agreement."""

    color: str
    share: float  # share of the pooled pixels named `color`
    samples: int  # samples in which the region was visible
    agreement: float  # share of those samples whose own dominant colour is `color`
    pixels: int  # pooled pixels clustered

    def as_dict(self) -> dict[str, float]:
        return {
            "share": self.share,
            "samples": float(self.samples),
            "agreement": self.agreement,
            "pixels": float(self.pixels),
        }


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


def name_lab(lightness: float, a: float, b: float) -> str:
    """The vocabulary name of one CIELAB colour, by rules on lightness, chroma and hue angle."""
    chroma = math.hypot(a, b)
    hue = math.degrees(math.atan2(b, a)) % 360
    # Hue angles of the sRGB primaries in CIELAB: red 40, orange 73, yellow 103, green 136,
    # cyan 196, blue 306, purple 328, pink ~0-10 at high lightness.
    if 40 <= hue < 115 and 8 <= chroma < 30 and lightness >= 60:
        return "beige"  # pale, weakly saturated yellow-orange: tan, khaki, cream
    if chroma < min(ACHROMATIC_CHROMA, max(5.0, 0.5 * lightness)):
        if lightness < 25:
            return "black"
        return "white" if lightness >= 80 else "gray"
    if hue >= 345 or hue < 50:
        # Pink is light red, or a lighter magenta-leaning red (hot pink sits at L ~63, hue ~350).
        return "pink" if lightness >= 65 or (hue >= 345 and lightness >= 55) else "red"
    if hue < 85:
        return "orange" if lightness >= 50 and chroma >= 30 else "brown"
    if hue < 115:
        return "yellow" if lightness >= 60 else "olive"
    if hue < 180:
        return "green"
    if hue < 225:
        return "teal"
    if hue < 315:
        return "navy" if lightness < 20 else "blue"
    return "pink" if lightness >= 65 else "purple"


def _clusters(lab: np.ndarray) -> list[tuple[str, float, np.ndarray]]:
    """k-means clusters of CIELAB pixels as (name of the centre, pixel share, centre)."""
    n = len(lab)
    if n > MAX_PIXELS:
        # Evenly spaced subsample: deterministic and keeps the spatial mix of the region.
        lab = lab[np.linspace(0, n - 1, MAX_PIXELS).astype(np.int64)]
    k = min(KMEANS_K, len(lab))
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


def _color_shares(lab: np.ndarray) -> Counter[str]:
    """Share of pixels per colour name (clusters of the same name add up)."""
    shares: Counter[str] = Counter()
    for name, share, _ in _clusters(lab):
        shares[name] += share
    return shares


def color_name(rgb_pixels: np.ndarray) -> tuple[str, float]:
    """The dominant colour name of a set of RGB pixels (any shape ending in 3) and its pixel share."""
    lab = _to_lab(rgb_pixels)
    if len(lab) == 0:
        raise AppearanceError("no pixels to name a colour from")
    name, share = _color_shares(lab).most_common(1)[0]
    return name, round(share, 3)


def skin_share(rgb_pixels: np.ndarray) -> float:
    """Share of pixels in the classic YCrCb skin range (covers light to dark skin)."""
    rgb = np.asarray(rgb_pixels, dtype=np.uint8).reshape(-1, 1, 3)
    if len(rgb) == 0:
        return 0.0
    ycrcb = cv2.cvtColor(rgb, cv2.COLOR_RGB2YCrCb).reshape(-1, 3).astype(np.int16)
    y, cr, cb = ycrcb[:, 0], ycrcb[:, 1], ycrcb[:, 2]
    skin = (y > 40) & (cr >= 135) & (cr <= 180) & (cb >= 85) & (cb <= 135)
    return float(skin.mean())


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


def body_regions(sample: events_pb2.PoseSample, shape: tuple[int, int]) -> dict[str, np.ndarray]:
    """Boolean masks (frame height x width) of the garment regions the sample's keypoints support.

    Keys: "upper" (torso and upper arms), "lower" (upper half of the thighs, the garment colour),
    "lower_knee" (lower half of the thighs and the knees, the shorts-or-trousers test). A region is
    absent when its keypoints are not confident.
    """
    kp = _keypoints(sample)
    regions: dict[str, np.ndarray] = {}
    shoulders = [kp.get("left_shoulder"), kp.get("right_shoulder")]
    hips = [kp.get("left_hip"), kp.get("right_hip")]
    if all(p is not None for p in (*shoulders, *hips)):
        ls, rs = shoulders  # type: ignore[misc]
        lh, rh = hips  # type: ignore[misc]
        # Keypoints sit at the joints on the body outline: shrink to stay off the background.
        polygons = [_shrink(np.array([ls, rs, rh, lh]), 0.8)]
        arm_width = 0.2 * float(np.linalg.norm(ls - rs))
        for side in ("left", "right"):
            shoulder, elbow = kp.get(f"{side}_shoulder"), kp.get(f"{side}_elbow")
            if shoulder is not None and elbow is not None:
                # Shoulder half only: a short sleeve ends about there.
                polygons.append(_segment_polygon(shoulder, elbow, 0.15, 0.5, arm_width))
        regions["upper"] = _mask(shape, polygons)
    if all(p is not None for p in hips):
        lh, rh = hips  # type: ignore[misc]
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
    return regions


# ----------------------------------------------------------------------------------------- appearance


def _region_pixels(frame: np.ndarray, mask: np.ndarray) -> np.ndarray:
    pixels = frame[mask]
    if len(pixels) > MAX_PIXELS_PER_SAMPLE:
        # Same cap per sample so a close-up frame does not outvote the others.
        pixels = pixels[np.linspace(0, len(pixels) - 1, MAX_PIXELS_PER_SAMPLE).astype(np.int64)]
    return pixels


def _pooled_color(per_sample: list[np.ndarray]) -> ColorEvidence:
    pooled = np.concatenate(per_sample)
    color, share = color_name(pooled)
    agreement = sum(color_name(p)[0] == color for p in per_sample) / len(per_sample)
    return ColorEvidence(color, share, len(per_sample), round(agreement, 3), len(pooled))


def describe_appearance_with_evidence(
    samples: Sequence[tuple[np.ndarray, events_pb2.PoseSample]],
) -> tuple[events_pb2.SubjectAttributes, dict[str, dict[str, float]]]:
    """Garments of one person pooled over several (RGB frame, pose sample) pairs, with evidence.

    Each frame is the RGB frame at sample.t_s in the keypoints' pixel coordinates. Evidence is keyed
    "upper" / "lower": colour share, samples seen, per-sample agreement, pixels; "lower" also carries
    "knee_skin_share" and "knee_same_cloth_share" behind the shorts / trousers choice.
    """
    gathered: dict[str, list[np.ndarray]] = {"upper": [], "lower": [], "lower_knee": []}
    for frame, sample in samples:
        if frame.ndim != 3 or frame.shape[2] != 3:
            raise AppearanceError(f"expected an H x W x 3 RGB frame, got shape {frame.shape}")
        for key, mask in body_regions(sample, frame.shape[:2]).items():
            if mask.sum() >= MIN_REGION_PIXELS:
                gathered[key].append(_region_pixels(frame, mask))

    attributes = events_pb2.SubjectAttributes()
    evidence: dict[str, dict[str, float]] = {}
    if gathered["upper"]:
        top = _pooled_color(gathered["upper"])
        attributes.clothing.add(item=TOP_ITEM, color=top.color)
        evidence["upper"] = top.as_dict()
    if gathered["lower"]:
        bottom = _pooled_color(gathered["lower"])
        item, knee = BOTTOMS, {"knee_skin_share": 0.0, "knee_same_cloth_share": 0.0}
        if gathered["lower_knee"]:
            knee_pixels = np.concatenate(gathered["lower_knee"])
            skin = skin_share(knee_pixels)
            # Distance to the garment's main cluster, not equal names: dark cloth near a name
            # boundary (navy / black) would otherwise look like a different garment at the knee.
            centre = max(
                (c for c in _clusters(_to_lab(np.concatenate(gathered["lower"]))) if c[0] == bottom.color),
                key=lambda c: c[1],
            )[2]
            distance = np.linalg.norm(_to_lab(knee_pixels) - centre, axis=1)
            same = float((distance < SAME_CLOTH_DELTA_E).mean())
            knee = {"knee_skin_share": round(skin, 3), "knee_same_cloth_share": round(same, 3)}
            if skin >= SHORTS_SKIN and skin_share(np.concatenate(gathered["lower"])) < TROUSERS_SKIN:
                item = SHORTS
            elif skin <= TROUSERS_SKIN and same >= TROUSERS_SAME_CLOTH:
                item = TROUSERS
        attributes.clothing.add(item=item, color=bottom.color)
        evidence["lower"] = {**bottom.as_dict(), **knee}
    return attributes, evidence


def describe_appearance(
    samples: Sequence[tuple[np.ndarray, events_pb2.PoseSample]],
) -> events_pb2.SubjectAttributes:
    """describe_appearance_with_evidence without the evidence."""
    return describe_appearance_with_evidence(samples)[0]


# --------------------------------------------------------------------------------------------- labels

_NOUNS = {"male": "man", "female": "woman", "man": "man", "woman": "woman", "boy": "boy", "girl": "girl"}
_ORDINALS = ("first", "second", "third", "fourth", "fifth", "sixth", "seventh", "eighth", "ninth", "tenth")


def _ordinal(n: int) -> str:
    return _ORDINALS[n - 1] if 1 <= n <= len(_ORDINALS) else f"{n}th"


def label_for(attributes: events_pb2.SubjectAttributes, index: int) -> str:
    """A label such as "the person in the red top and blue trousers".

    `index` (0-based) only names a subject with no attributes at all ("the first person").
    """
    noun = _NOUNS.get(attributes.gender.lower(), "person")
    if attributes.age_group and noun == "person":
        noun = f"{attributes.age_group} person"
    garments = [f"{g.color} {g.item}".strip() for g in attributes.clothing if g.item or g.color]
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
