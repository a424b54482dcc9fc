"""Gender and age group of tracked people, from their faces (HAIC's "a middle-aged man ...").

For each person track:
1. samples where the face is turned to the camera: nose and both eyes confident in the pose keypoints;
   the most confident ones, spread over the track;
2. the head region around those keypoints (a square whose side follows the eye, ear and shoulder
   spacing) goes to ``face_detector`` (BlazeFace), which must confirm a face there, over the nose;
3. a face narrower than ``face_min_size_px`` is too small to judge; the others are cropped (a square
   around the detector's box) for ``face_attributes`` (HSE faceres: gender and age distribution);
4. the track's faces are pooled: mean probability of "male", mean age distribution. Gender is stated
   when the pooled probability is ``face_gender_margin`` past ``face_male_boundary`` (the model's
   authors call a face male from 0.6: the model leans male) with at least ``face_min_faces`` faces;
   the age group when its pooled probability reaches ``face_age_min_confidence``.
Anything else is left empty (said nowhere), never guessed.

``estimate_attributes`` is the pure function the pose stage and the quality benchmark call.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from services.core.keypoints import keypoint_array
from services.pose import geometry
from services.pose.contract import (
    AGE,
    AGE_BINS,
    BOXES,
    COCO_KEYPOINTS,
    FACE_ATTRIBUTES,
    FACE_DETECTOR,
    GENDER,
    SCORES,
    InferenceBackend,
)

if TYPE_CHECKING:
    from services.core.settings import PoseServiceSettings

_KP = {name: i for i, name in enumerate(COCO_KEYPOINTS)}
NOSE, LEFT_EYE, RIGHT_EYE = _KP["nose"], _KP["left_eye"], _KP["right_eye"]
LEFT_EAR, RIGHT_EAR = _KP["left_ear"], _KP["right_ear"]
LEFT_SHOULDER, RIGHT_SHOULDER = _KP["left_shoulder"], _KP["right_shoulder"]

# Head region: a face is about 2.2 eye spacings wide, one ear-to-ear spacing, 0.38 shoulder widths;
# the detector sees a square of 2.5 face widths, so the face fills about 40% of its input.
FACE_PER_EYE_SPACING = 2.2
FACE_PER_SHOULDER_WIDTH = 0.38
HEAD_REGION_PER_FACE = 2.5
# The attribute model's authors add a margin to their detector's (MTCNN) box; BlazeFace's box is tighter
# (brows to chin), and 1.6 times it is the crop that separated the labelled men and women best.
FACE_CROP_PER_BOX = 1.6

# Age groups a person would say, by the age in years where each starts.
AGE_GROUPS: tuple[tuple[str, int], ...] = (
    ("child", 0),
    ("teenager", 13),
    ("young adult", 20),
    ("middle-aged", 40),
    ("elderly", 65),
)
MALE, FEMALE = "male", "female"


class FaceModelOutputError(RuntimeError):
    """A face model's outputs do not have the contract's names or shapes."""


@dataclass(frozen=True)
class FaceObservation:
    """One face of one track: where, how large, and what the attribute model said."""

    t_s: float
    box: np.ndarray  # [4] x1, y1, x2, y2 in frame pixels
    detector_score: float
    male_probability: float
    age_distribution: np.ndarray  # [AGE_BINS]


@dataclass(frozen=True)
class PersonAttributes:
    """A track's pooled attributes. Empty gender / age_group: not stated (see ``reason``)."""

    gender: str = ""
    gender_confidence: float = 0.0  # pooled probability of the stated gender (or of the likelier one)
    age_group: str = ""
    age_group_confidence: float = 0.0
    age_years: float = 0.0  # expected age of the pooled distribution; 0 without faces
    faces_seen: int = 0
    samples_tried: int = 0  # samples whose face was turned to the camera
    reason: str = ""  # why something is not stated: no_frontal_face, not_confirmed, face_too_small, unsure


@dataclass(frozen=True)
class FaceSettings:
    """The face reading's tunables, read from the pose settings (HAIC_FACE_*, HAIC_TRITON_MAX_BATCH_SIZE)."""

    samples_per_track: int
    min_keypoint_score: float
    min_detector_score: float
    min_size_px: float
    min_faces: int
    male_boundary: float
    gender_margin: float
    age_min_confidence: float
    max_batch_size: int

    @classmethod
    def from_settings(cls, settings: PoseServiceSettings) -> FaceSettings:
        return cls(
            samples_per_track=settings.face_samples_per_track,
            min_keypoint_score=settings.face_min_keypoint_score,
            min_detector_score=settings.face_min_detector_score,
            min_size_px=settings.face_min_size_px,
            min_faces=settings.face_min_faces,
            male_boundary=settings.face_male_boundary,
            gender_margin=settings.face_gender_margin,
            age_min_confidence=settings.face_age_min_confidence,
            max_batch_size=settings.triton_max_batch_size,
        )


@dataclass(frozen=True)
class _Candidate:
    track: int
    t_s: float
    keypoints: np.ndarray  # [17, 3] in frame pixels
    centre: np.ndarray  # [2] head centre, frame pixels
    side: float  # head region side, frame pixels


def head_region(keypoints: np.ndarray, min_score: float) -> tuple[np.ndarray, float] | None:
    """(centre, side) of the square head region in the keypoints' pixels, or None when the face is not
    turned to the camera (nose or an eye below min_score)."""
    score = keypoints[:, 2]
    if min(score[NOSE], score[LEFT_EYE], score[RIGHT_EYE]) < min_score:
        return None
    xy = keypoints[:, :2]
    head = [i for i in (NOSE, LEFT_EYE, RIGHT_EYE, LEFT_EAR, RIGHT_EAR) if score[i] >= min_score]
    centre = xy[head].mean(axis=0)
    face = FACE_PER_EYE_SPACING * float(np.linalg.norm(xy[LEFT_EYE] - xy[RIGHT_EYE]))
    if score[LEFT_EAR] >= min_score and score[RIGHT_EAR] >= min_score:
        face = max(face, float(np.linalg.norm(xy[LEFT_EAR] - xy[RIGHT_EAR])))
    if score[LEFT_SHOULDER] >= min_score and score[RIGHT_SHOULDER] >= min_score:
        face = max(face, FACE_PER_SHOULDER_WIDTH * float(np.linalg.norm(xy[LEFT_SHOULDER] - xy[RIGHT_SHOULDER])))
    if face <= 0:
        return None
    return centre, face * HEAD_REGION_PER_FACE


def age_group_probabilities(distribution: np.ndarray) -> dict[str, float]:
    """Pooled age distribution (bin i = i + 1 years) -> probability of each age group."""
    years = np.arange(1, len(distribution) + 1)
    starts = [start for _, start in AGE_GROUPS] + [10**6]
    return {
        name: float(distribution[(years >= starts[i]) & (years < starts[i + 1])].sum())
        for i, (name, _) in enumerate(AGE_GROUPS)
    }


def pool(faces: Sequence[FaceObservation], samples_tried: int, settings: FaceSettings) -> PersonAttributes:
    """One track's faces -> its attributes; empty where the faces do not clearly support one."""
    if not faces:
        return PersonAttributes(samples_tried=samples_tried, reason="no_frontal_face" if not samples_tried else "")
    male = float(np.mean([f.male_probability for f in faces]))
    likelier, confidence = (MALE, male) if male >= settings.male_boundary else (FEMALE, 1.0 - male)
    distribution = np.mean([f.age_distribution for f in faces], axis=0)
    groups = age_group_probabilities(distribution)
    group = max(groups, key=lambda g: groups[g])
    enough = len(faces) >= settings.min_faces
    gender_ok = enough and abs(male - settings.male_boundary) >= settings.gender_margin
    age_ok = enough and groups[group] >= settings.age_min_confidence
    reason = "" if gender_ok and age_ok else ("too_few_faces" if not enough else "unsure")
    return PersonAttributes(
        gender=likelier if gender_ok else "",
        gender_confidence=round(confidence, 4),
        age_group=group if age_ok else "",
        age_group_confidence=round(groups[group], 4),
        age_years=round(float(np.dot(distribution, np.arange(1, len(distribution) + 1))), 1),
        faces_seen=len(faces),
        samples_tried=samples_tried,
        reason=reason,
    )


class FaceAttributeEstimator:
    """Runs the two face models on an InferenceBackend (Triton or onnxruntime) for person tracks."""

    def __init__(self, backend: InferenceBackend, settings: FaceSettings) -> None:
        self.backend = backend
        self.settings = settings

    def _infer(self, model: str, images: np.ndarray, expected: dict[str, int]) -> dict[str, np.ndarray]:
        """Batches of at most max_batch_size; checks each expected output's rank and batch."""
        parts: dict[str, list[np.ndarray]] = {name: [] for name in expected}
        step = max(1, self.settings.max_batch_size)
        for start in range(0, len(images), step):
            chunk = images[start : start + step]
            outputs = self.backend.infer(model, chunk)
            for name, rank in expected.items():
                value = outputs.get(name)
                if value is None or value.ndim != rank or value.shape[0] != len(chunk):
                    shape = None if value is None else value.shape
                    raise FaceModelOutputError(f"{model}: output {name!r} is {shape}, expected rank {rank}")
                parts[name].append(np.asarray(value, dtype=np.float32))
        return {name: np.concatenate(values) for name, values in parts.items()}

    def _candidates(
        self, frames: Mapping[float, np.ndarray], tracks: Iterable[Any], source_size: tuple[int, int] | None
    ) -> tuple[list[_Candidate], dict[int, int]]:
        s = self.settings
        chosen: list[_Candidate] = []
        tried: dict[int, int] = {}
        for track in tracks:
            frontal: list[tuple[float, _Candidate]] = []
            for sample in track.samples:
                frame = frames.get(sample.t_s)
                if frame is None:
                    continue
                points = keypoint_array(sample)
                if source_size is not None:
                    points = points.copy()
                    points[:, 0] *= frame.shape[1] / source_size[0]
                    points[:, 1] *= frame.shape[0] / source_size[1]
                region = head_region(points, s.min_keypoint_score)
                if region is None:
                    continue
                confidence = float(points[[NOSE, LEFT_EYE, RIGHT_EYE], 2].mean())
                frontal.append((confidence, _Candidate(track.track_id, sample.t_s, points, region[0], region[1])))
            tried[track.track_id] = len(frontal)
            if len(frontal) > s.samples_per_track:
                # the most confident face of each of samples_per_track slices of the track, in time order
                slices = np.array_split(np.arange(len(frontal)), s.samples_per_track)
                frontal = [max((frontal[i] for i in part), key=lambda c: c[0]) for part in slices]
            chosen += [c for _, c in frontal]
        return chosen, tried

    def faces(
        self,
        frames: Mapping[float, np.ndarray],
        tracks: Iterable[Any],
        source_size: tuple[int, int] | None = None,
    ) -> tuple[dict[int, list[FaceObservation]], dict[int, int], dict[int, str]]:
        """Per track: its confirmed faces, the samples tried, and the reason when none counted."""
        tracks = list(tracks)
        candidates, tried = self._candidates(frames, tracks, source_size)
        found: dict[int, list[FaceObservation]] = {t.track_id: [] for t in tracks}
        why: dict[int, str] = {}
        if not candidates:
            return found, tried, why
        size, _ = self.backend.input_size(FACE_DETECTOR)
        matrices = [geometry.warp_matrix(c.centre, np.array([c.side, c.side]), size, size) for c in candidates]
        heads = np.stack(
            [geometry.crop(frames[c.t_s], m, size, size) for c, m in zip(candidates, matrices, strict=True)]
        )
        detected = self._infer(FACE_DETECTOR, heads, {BOXES: 3, SCORES: 2})
        confirmed: list[tuple[_Candidate, np.ndarray, float]] = []
        for c, matrix, boxes, scores in zip(candidates, matrices, detected[BOXES], detected[SCORES], strict=True):
            nose = geometry.apply_affine(c.keypoints[NOSE, :2], matrix) / size  # fractions of the region
            inside = (
                (scores >= self.settings.min_detector_score)
                & (boxes[:, 0] <= nose[0])
                & (nose[0] <= boxes[:, 2])
                & (boxes[:, 1] <= nose[1])
                & (nose[1] <= boxes[:, 3])
            )
            if not inside.any():
                why.setdefault(c.track, "not_confirmed")
                continue
            best = int(np.flatnonzero(inside)[np.argmax(scores[inside])])
            corners = geometry.apply_affine(boxes[best].reshape(2, 2) * size, geometry.invert_affine(matrix))
            box = corners.reshape(4)
            if box[2] - box[0] < self.settings.min_size_px:
                why[c.track] = "face_too_small"
                continue
            confirmed.append((c, box, float(scores[best])))
        if not confirmed:
            return found, tried, why
        face_size, _ = self.backend.input_size(FACE_ATTRIBUTES)
        crops = []
        for c, box, _ in confirmed:
            centre = (box[:2] + box[2:]) / 2
            side = float(max(box[2] - box[0], box[3] - box[1])) * FACE_CROP_PER_BOX
            matrix = geometry.warp_matrix(centre, np.array([side, side]), face_size, face_size)
            crops.append(geometry.crop(frames[c.t_s], matrix, face_size, face_size))
        attributes = self._infer(FACE_ATTRIBUTES, np.stack(crops), {GENDER: 2, AGE: 2})
        if attributes[AGE].shape[1] != AGE_BINS:
            raise FaceModelOutputError(f"{FACE_ATTRIBUTES}: age has {attributes[AGE].shape[1]} bins, not {AGE_BINS}")
        for (c, box, score), male, age in zip(confirmed, attributes[GENDER][:, 0], attributes[AGE], strict=True):
            found[c.track].append(FaceObservation(c.t_s, box.astype(np.float32), score, float(male), age))
        return found, tried, why

    def attributes(
        self,
        frames: Mapping[float, np.ndarray],
        tracks: Iterable[Any],
        source_size: tuple[int, int] | None = None,
    ) -> dict[int, PersonAttributes]:
        """Attributes per track id. `frames` maps a sample time to its RGB frame; samples at other
        times are skipped. Keypoints are in frame pixels, or in source_size (width, height) pixels."""
        found, tried, why = self.faces(frames, tracks, source_size)
        result = {}
        for track_id, faces in found.items():
            pooled = pool(faces, tried.get(track_id, 0), self.settings)
            if not faces and tried.get(track_id):
                pooled = PersonAttributes(samples_tried=tried[track_id], reason=why.get(track_id, "not_confirmed"))
            result[track_id] = pooled
        return result


def estimate_attributes(
    backend: InferenceBackend,
    frames: Mapping[float, np.ndarray],
    tracks: Iterable[Any],
    settings: PoseServiceSettings | FaceSettings,
    source_size: tuple[int, int] | None = None,
) -> dict[int, PersonAttributes]:
    """Gender and age group per track id, from the tracks' faces in `frames` (time -> RGB uint8).

    `tracks`: tracking Tracks or PersonTrack protos (anything with track_id and samples carrying t_s
    and [17, 3] keypoints). `source_size` (width, height): the keypoints' pixel space when the frames
    were decoded smaller; None when keypoints are in frame pixels.
    """
    face_settings = settings if isinstance(settings, FaceSettings) else FaceSettings.from_settings(settings)
    return FaceAttributeEstimator(backend, face_settings).attributes(frames, tracks, source_size)
