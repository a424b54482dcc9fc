"""People and their keypoints in video frames, through the two contract models.

The only module of the pose service that knows the image geometry: frames are letterboxed for
``person_detector``, each person is cropped around its box for ``pose_estimator``, and both models'
normalised outputs are mapped back to frame pixels. Which network family sits behind the models
(CenterNet + MoveNet, RTMDet + RTMPose) does not matter here; see ``contract``.

Who counts as a person (``PersonEvidence``, calibrated on the labelled videos: README, "Pose stage"):
a box the detector scores at ``min_score`` or more counts on its word; a box between
``min_score_with_body`` and ``min_score`` counts only when the pose model finds a body in it (its
score plus its body score, the mean confidence of its ``BODY_KEYPOINTS`` most confident keypoints,
reaches ``min_evidence``); a box lying mostly inside a better person's box is a part of that person
(a torso, a hat held in the hand) and is dropped. Optionally MoveNet multipose adds people the
detector missed, with the same body evidence from its own keypoints.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from services.core.settings import PoseModelFamily, PoseServiceSettings
from services.pose import geometry
from services.pose.contract import (
    BOXES,
    KEYPOINTS,
    MULTIPERSON_POSE,
    NUM_KEYPOINTS,
    PERSON_DETECTOR,
    POSE_ESTIMATOR,
    SCORES,
    InferenceBackend,
)
from services.pose.tracking import box_containment, box_iou

# Keypoints whose mean confidence is a box's body score: six, so that a head-and-shoulders close-up
# (five face points, two shoulders) has a body, and a post or a poster with a few chance keypoints has not.
BODY_KEYPOINTS = 6
# Multipose's box and the detector's box of one person overlap at least this much (their extents differ).
SAME_PERSON_IOU = 0.3
# A model's scores move by about 1e-7 with the batch the frame rides in (onnxruntime's kernels differ with
# the batch size, Triton batches requests dynamically): a frame's bound on its people counts the outputs
# this close under a threshold too, so no such wobble can make a frame look emptier than it is.
BOUND_MARGIN = 1e-3


class PoseModelOutputError(RuntimeError):
    """A model's outputs do not have the contract's names or shapes."""


@dataclass(frozen=True)
class Detection:
    box: np.ndarray  # float32 [4] x1, y1, x2, y2 in frame pixels
    score: float
    # float32 [17, 3] in frame pixels when the body check already estimated them (same crop as estimate's)
    keypoints: np.ndarray | None = None
    # [K, 2] frame pixels of this person's body that another model (multipose) saw: the box grows to them
    body_points: np.ndarray | None = None


@dataclass(frozen=True)
class PersonEvidence:
    """When a detected box counts as a person (see the module docstring), from the pose settings
    (``from_settings``). The off values below leave a rule out: with all of them, every box at
    ``min_score`` counts on the detector's word and nothing else does."""

    min_score: float
    min_score_with_body: float | None  # None: no box below min_score counts
    min_evidence: float  # detector score + body score
    max_containment: float  # 1.0: no box is dropped as a part of another
    multipose_min_score: float  # 0: MoveNet multipose is not asked
    # a box in doubt without a body still counts where a person of the previous or next frame overlaps it
    # this much (ByteTrack's second association, on the sampled frames); 0: never
    track_iou: float
    # a person's box grows to the multipose keypoints of that person from this confidence; None: never
    extent_keypoint_score: float | None

    @classmethod
    def from_settings(cls, settings: PoseServiceSettings) -> PersonEvidence:
        """HAIC_MIN_PERSON_SCORE, _SCORE_WITH_BODY, _EVIDENCE, HAIC_MAX_PERSON_CONTAINMENT, HAIC_MULTIPOSE_MIN_SCORE,
        HAIC_MIN_PERSON_TRACK_IOU and HAIC_MIN_KEYPOINT_SCORE (a body's extent)."""
        return cls(
            min_score=settings.min_person_score,
            min_score_with_body=settings.min_person_score_with_body,
            min_evidence=settings.min_person_evidence,
            max_containment=settings.max_person_containment,
            # only the embedded default's repository holds multipose
            multipose_min_score=settings.multipose_min_score
            if settings.pose_model_family == PoseModelFamily.movenet
            else 0.0,
            track_iou=settings.min_person_track_iou,
            extent_keypoint_score=settings.min_keypoint_score,
        )

    @property
    def floor(self) -> float:
        """The lowest detector score that can count."""
        if self.min_score_with_body is None:
            return self.min_score
        return min(self.min_score, self.min_score_with_body)


def body_score(keypoints: np.ndarray) -> float:
    """Mean confidence of the BODY_KEYPOINTS most confident keypoints [17, 3]: how much of a body the
    pose model sees in a crop."""
    confidence = np.sort(np.asarray(keypoints, dtype=np.float64)[:, 2])[::-1]
    return float(confidence[:BODY_KEYPOINTS].mean()) if len(confidence) else 0.0


@dataclass(frozen=True)
class Person:
    box: np.ndarray  # float32 [4] x1, y1, x2, y2 in frame pixels (the detector's box)
    score: float  # detector confidence
    keypoints: np.ndarray  # float32 [17, 3] x, y in frame pixels, confidence; COCO order


def nms(boxes: np.ndarray, scores: np.ndarray, iou: float) -> list[int]:
    """Greedy non-maximum suppression: indices kept, best score first; a box overlapping a kept one by more
    than ``iou`` is dropped."""
    order = list(np.argsort(-np.asarray(scores), kind="stable"))
    if not order:
        return []
    overlaps = box_iou(boxes, boxes)
    keep: list[int] = []
    for i in order:
        if all(overlaps[i, k] <= iou for k in keep):
            keep.append(int(i))
    return keep


@dataclass(frozen=True)
class FrameCandidates:
    """One frame's model outputs before the rules that look across boxes and frames: the detector's boxes
    from the evidence floor up (NMS applied) and the people multipose offers, with their keypoints.

    Every person `detect` can count in the frame is one of these, whatever the frame's neighbours: the
    body check, the part rule and the growth only keep, drop or merge them, and the neighbour rule only
    brings back the frame's own boxes in doubt. So ``most_people`` bounds the frame's count from above,
    and a frame where it is under the existence rule's minimum fails that rule for certain.
    """

    boxes: list[Detection]
    multipose: list[tuple[Detection, np.ndarray]]
    # outputs within BOUND_MARGIN under the detector's floor or multipose's thresholds
    near_misses: int = 0

    @property
    def most_people(self) -> int:
        return len(self.boxes) + len(self.multipose) + self.near_misses


class PoseEstimator:
    """Detects people and estimates their poses on an InferenceBackend (Triton or onnxruntime).

    Every backend call carries at most ``max_batch_size`` images (Triton's max_batch_size for the models).
    Its tunables come from the pose settings (``from_settings``); a caller that builds one itself gives them all.
    """

    def __init__(
        self,
        backend: InferenceBackend,
        *,
        evidence: PersonEvidence,
        pose_crop_padding: float,
        max_batch_size: int,
        nms_iou: float,
    ) -> None:
        if max_batch_size < 1:
            raise ValueError(f"max_batch_size must be >= 1, got {max_batch_size}")
        if pose_crop_padding <= 0:
            raise ValueError(f"pose_crop_padding must be > 0, got {pose_crop_padding}")
        self.backend = backend
        self.evidence = evidence
        self.min_person_score = evidence.min_score
        self.pose_crop_padding = pose_crop_padding
        self.max_batch_size = max_batch_size
        self.nms_iou = nms_iou

    @classmethod
    def from_settings(cls, backend: InferenceBackend, settings: PoseServiceSettings) -> PoseEstimator:
        """The person evidence (PersonEvidence.from_settings), HAIC_POSE_CROP_PADDING, HAIC_TRITON_MAX_BATCH_SIZE
        and HAIC_PERSON_NMS_IOU."""
        return cls(
            backend,
            evidence=PersonEvidence.from_settings(settings),
            pose_crop_padding=settings.pose_crop_padding,
            max_batch_size=settings.triton_max_batch_size,
            nms_iou=settings.person_nms_iou,
        )

    def _input_size(self, model: str) -> tuple[int, int]:
        # the backends cache it (on Triton it is one metadata round trip per model)
        height, width = self.backend.input_size(model)
        return int(height), int(width)

    def _infer(self, model: str, images: np.ndarray, expected: dict[str, tuple[int, ...]]) -> dict[str, np.ndarray]:
        outputs = self.backend.infer(model, images)
        for name, dims in expected.items():
            value = outputs.get(name)
            if value is None:
                raise PoseModelOutputError(f"{model}: output {name!r} missing; got {sorted(outputs)}")
            shape = tuple(value.shape)
            if (
                len(shape) != len(dims) + 1
                or shape[0] != len(images)
                or any(d != -1 and s != d for s, d in zip(shape[1:], dims, strict=True))
            ):
                want = ", ".join("K" if d == -1 else str(d) for d in dims)
                raise PoseModelOutputError(f"{model}: {name} has shape {shape}, expected [{len(images)}, {want}]")
        return outputs

    def candidates(self, frames: Sequence[np.ndarray]) -> list[FrameCandidates]:
        """The per-frame model outputs `detect` starts from (detector, and multipose when it is asked).

        A frame's candidates do not depend on the other frames of the call: the models see one image per
        batch row, so a caller may compute them frame by frame and hand them to `detect` later.
        """
        for frame in frames:
            geometry.check_frame(frame)
        height, width = self._input_size(PERSON_DETECTOR)
        if height != width:
            raise PoseModelOutputError(f"{PERSON_DETECTOR}: input must be square (S x S), got {height} x {width}")
        boxes: list[list[Detection]] = []
        near: list[int] = []
        floor = self.evidence.floor
        for start in range(0, len(frames), self.max_batch_size):
            chunk = frames[start : start + self.max_batch_size]
            placed = [geometry.letterbox(frame, height) for frame in chunk]
            outputs = self._infer(
                PERSON_DETECTOR, np.stack([image for image, _ in placed]), {BOXES: (-1, 4), SCORES: (-1,)}
            )
            for (_, letterbox), found, scores in zip(placed, outputs[BOXES], outputs[SCORES], strict=True):
                boxes.append(self._frame_detections(letterbox, found, scores))
                scores = np.asarray(scores, dtype=np.float32)
                near.append(int(np.sum((scores >= floor - BOUND_MARGIN) & (scores < floor))))
        if self.evidence.multipose_min_score > 0:
            multipose, multipose_near = zip(*self._multipose_people(frames), strict=True) if frames else ((), ())
        else:
            multipose, multipose_near = tuple([] for _ in frames), tuple(0 for _ in frames)
        return [
            FrameCandidates(b, list(m), n + mn)
            for b, m, n, mn in zip(boxes, multipose, near, multipose_near, strict=True)
        ]

    def detect(
        self, frames: Sequence[np.ndarray], found: Sequence[FrameCandidates | None] | None = None
    ) -> list[list[Detection]]:
        """The people in each RGB uint8 frame [H, W, 3] by the PersonEvidence rules: boxes in frame
        pixels, best first. ``found``: the frames' `candidates` where already computed (None where not).

        A greedy IoU-NMS at 0.5 runs after the model's own: the contract does not promise the model
        suppresses duplicates (CenterNet's peak picking can leave neighbours), and it is cheap.
        """
        for frame in frames:
            geometry.check_frame(frame)
        known: list[FrameCandidates | None] = list(found) if found is not None else [None] * len(frames)
        if len(known) != len(frames):
            raise ValueError(f"{len(frames)} frames but candidates for {len(known)}")
        todo = [i for i, c in enumerate(known) if c is None]
        for i, computed in zip(todo, self.candidates([frames[i] for i in todo]), strict=True):
            known[i] = computed
        frame_candidates = [c for c in known if c is not None]
        candidates, doubted = self._with_body_evidence(frames, [c.boxes for c in frame_candidates])
        if self.evidence.multipose_min_score > 0:
            candidates = [
                self._with_multipose(people, c.multipose)
                for people, c in zip(candidates, frame_candidates, strict=True)
            ]
        if self.evidence.track_iou > 0:
            candidates = self._with_neighbours(candidates, doubted)
        people = [self._without_parts(people) for people in candidates]
        return people if self.evidence.extent_keypoint_score is None else self._grown(frames, people)

    def _with_multipose(self, found: list[Detection], extra: list[tuple[Detection, np.ndarray]]) -> list[Detection]:
        """The detector's people, each with the confident keypoints multipose gives that person (their box
        grows to them in the end), then multipose's people that are none of the detector's. One person:
        boxes overlapping at SAME_PERSON_IOU, or one mostly inside the other (the two models box one
        person differently)."""
        people = list(found)
        new = []
        for person, keypoints in extra:
            if people:
                boxes = np.stack([d.box for d in people])
                box = person.box[None]
                overlap = box_iou(box, boxes)[0]
                same = (
                    (overlap >= SAME_PERSON_IOU)
                    | (box_containment(box, boxes)[0] >= self.evidence.max_containment)
                    | (box_containment(boxes, box)[:, 0] >= self.evidence.max_containment)
                )
                if same.any():
                    match = int(np.argmax(np.where(same, overlap, -1.0)))
                    d = people[match]
                    if self.evidence.extent_keypoint_score is not None:
                        seen = keypoints[keypoints[:, 2] >= self.evidence.extent_keypoint_score, :2]
                        points = seen if d.body_points is None else np.concatenate([d.body_points, seen])
                        people[match] = Detection(d.box, d.score, d.keypoints, points)
                    continue
            new.append(person)
        return people + new

    def _grown(self, frames: Sequence[np.ndarray], people: list[list[Detection]]) -> list[list[Detection]]:
        """Each box grown to the person's confident keypoints (its own, estimated here when the body check
        did not, and multipose's): a kicking leg or a raised arm the detector's box cut off is the
        person's. After the part rule, so that a limb reaching over a neighbour cannot swallow them."""
        missing = [(i, d) for i, found in enumerate(people) for d in found if d.keypoints is None]
        estimated = dict(
            zip(
                [id(d) for _, d in missing],
                self._keypoints(frames, [(i, d.box) for i, d in missing]),
                strict=True,
            )
        )
        grown = []
        for found in people:
            row = []
            for d in found:
                keypoints = d.keypoints if d.keypoints is not None else estimated[id(d)]
                seen = [keypoints[keypoints[:, 2] >= self.evidence.extent_keypoint_score, :2]]
                if d.body_points is not None:
                    seen.append(d.body_points)
                points = np.concatenate([d.box.reshape(2, 2), *seen])
                box = np.concatenate([points.min(axis=0), points.max(axis=0)]).astype(np.float32)
                row.append(Detection(box, d.score, keypoints))
            # two boxes that grew into one body (a person and a loose box around their kicking leg): one person
            boxes = np.stack([d.box for d in row]) if row else np.zeros((0, 4))
            grown.append([row[i] for i in sorted(nms(boxes, np.array([d.score for d in row]), self.nms_iou))])
        return grown

    def _with_neighbours(
        self, candidates: list[list[Detection]], doubted: list[list[Detection]]
    ) -> list[list[Detection]]:
        """Boxes in doubt that a person the detector is sure of (min_score) in the previous or next frame
        overlaps at track_iou also count: a person turned away or blurred for a moment is where they were
        a sample ago. As in ByteTrack, only confident detections start a track; doubtful ones extend it."""
        out = []
        for i, found in enumerate(candidates):
            neighbours = [
                d.box
                for j in (i - 1, i + 1)
                if 0 <= j < len(candidates)
                for d in candidates[j]
                if d.score >= self.evidence.min_score
            ]
            if not neighbours or not doubted[i]:
                out.append(found)
                continue
            overlap = box_iou(np.stack([d.box for d in doubted[i]]), np.stack(neighbours))
            out.append(
                found + [d for d, row in zip(doubted[i], overlap, strict=True) if row.max() >= self.evidence.track_iou]
            )
        return out

    def _frame_detections(
        self, letterbox: geometry.Letterbox, boxes: np.ndarray, scores: np.ndarray
    ) -> list[Detection]:
        scores = np.asarray(scores, dtype=np.float32)
        candidates = np.flatnonzero(scores >= self.evidence.floor)
        if len(candidates) == 0:
            return []
        frame_boxes = letterbox.boxes_to_frame(np.asarray(boxes)[candidates])
        # a box that lies in the zero padding clips to nothing: no one to crop
        has_area = (frame_boxes[:, 2] > frame_boxes[:, 0]) & (frame_boxes[:, 3] > frame_boxes[:, 1])
        frame_boxes, kept_scores = frame_boxes[has_area], scores[candidates][has_area]
        return [Detection(frame_boxes[i], float(kept_scores[i])) for i in nms(frame_boxes, kept_scores, self.nms_iou)]

    def _with_body_evidence(
        self, frames: Sequence[np.ndarray], candidates: list[list[Detection]]
    ) -> tuple[list[list[Detection]], list[list[Detection]]]:
        """Boxes under min_score keep their place only with a body (one pose batch for all of them); the
        others come back apart, per frame, with the keypoints the check found."""
        doubtful = [(i, d) for i, found in enumerate(candidates) for d in found if d.score < self.evidence.min_score]
        kept = [[d for d in found if d.score >= self.evidence.min_score] for found in candidates]
        doubted: list[list[Detection]] = [[] for _ in candidates]
        for (i, d), points in zip(doubtful, self._keypoints(frames, [(i, d.box) for i, d in doubtful]), strict=True):
            checked = Detection(d.box, d.score, points)
            (kept if d.score + body_score(points) >= self.evidence.min_evidence else doubted)[i].append(checked)
        return kept, doubted

    def _multipose_people(self, frames: Sequence[np.ndarray]) -> list[tuple[list[tuple[Detection, np.ndarray]], int]]:
        """People MoveNet multipose finds from multipose_min_score up whose own keypoints show a body, with
        those keypoints [17, 3] in frame pixels; and per frame the people missing that by under BOUND_MARGIN."""
        size, _ = self._input_size(MULTIPERSON_POSE)
        found: list[tuple[list[tuple[Detection, np.ndarray]], int]] = []
        min_score, min_evidence = self.evidence.multipose_min_score, self.evidence.min_evidence
        for start in range(0, len(frames), self.max_batch_size):
            placed = [geometry.letterbox(frame, size) for frame in frames[start : start + self.max_batch_size]]
            outputs = self._infer(
                MULTIPERSON_POSE,
                np.stack([image for image, _ in placed]),
                {BOXES: (-1, 4), SCORES: (-1,), KEYPOINTS: (-1, NUM_KEYPOINTS, 3)},
            )
            for (_, letterbox), boxes, scores, keypoints in zip(
                placed, outputs[BOXES], outputs[SCORES], outputs[KEYPOINTS], strict=True
            ):
                people, near = [], 0
                frame_boxes = letterbox.boxes_to_frame(boxes)
                for box, score, points in zip(
                    frame_boxes, np.asarray(scores, dtype=np.float64), keypoints, strict=True
                ):
                    has_area = box[2] > box[0] and box[3] > box[1]
                    evidence = score + body_score(points)
                    if has_area and score >= min_score and evidence >= min_evidence:
                        people.append((Detection(box, float(score)), letterbox.points_to_frame(points)))
                    elif has_area and score >= min_score - BOUND_MARGIN and evidence >= min_evidence - BOUND_MARGIN:
                        near += 1
                found.append((people, near))
        return found

    def _without_parts(self, found: list[Detection]) -> list[Detection]:
        """Best first; a box lying mostly inside a better one (max_containment) is a part of that person."""
        kept: list[Detection] = []
        for detection in sorted(found, key=lambda d: -d.score):
            inside = box_containment(detection.box[None], np.stack([k.box for k in kept]))[0] if kept else []
            if not any(fraction >= self.evidence.max_containment for fraction in inside):
                kept.append(detection)
        return kept

    def _keypoints(self, frames: Sequence[np.ndarray], boxes: Sequence[tuple[int, np.ndarray]]) -> list[np.ndarray]:
        """Keypoints [17, 3] in frame pixels for (frame index, box) pairs, in max_batch_size pose batches."""
        height, width = self._input_size(POSE_ESTIMATOR)
        aspect = width / height
        jobs = []
        for index, box in boxes:
            center, scale = geometry.box_to_center_scale(box, self.pose_crop_padding, aspect)
            matrix = geometry.warp_matrix(center[0], scale[0], width, height)
            jobs.append((index, matrix, geometry.invert_affine(matrix)))
        results: list[np.ndarray] = []
        for start in range(0, len(jobs), self.max_batch_size):
            chunk = jobs[start : start + self.max_batch_size]
            crops = np.stack([geometry.crop(frames[index], matrix, width, height) for index, matrix, _ in chunk])
            keypoints = self._infer(POSE_ESTIMATOR, crops, {KEYPOINTS: (NUM_KEYPOINTS, 3)})[KEYPOINTS]
            results += [
                geometry.keypoints_to_frame(points, inverse, width, height)
                for (_, _, inverse), points in zip(chunk, keypoints, strict=True)
            ]
        return results

    def estimate(self, frames: Sequence[np.ndarray], detections: Sequence[Sequence[Detection]]) -> list[list[Person]]:
        """Keypoints for every detection of every frame; persons of all frames share pose batches. A
        detection whose keypoints the body check already estimated (same crop) keeps them."""
        if len(frames) != len(detections):
            raise ValueError(f"{len(frames)} frames but detections for {len(detections)}")
        for frame in frames:
            geometry.check_frame(frame)
        missing = [(i, d) for i, found in enumerate(detections) for d in found if d.keypoints is None]
        estimated = iter(self._keypoints(frames, [(i, d.box) for i, d in missing]))
        return [
            [
                Person(
                    box=d.box,
                    score=d.score,
                    keypoints=d.keypoints if d.keypoints is not None else next(estimated),
                )
                for d in found
            ]
            for found in detections
        ]

    def analyze(self, frames: Sequence[np.ndarray]) -> list[list[Person]]:
        """detect, then estimate."""
        return self.estimate(frames, self.detect(frames))
