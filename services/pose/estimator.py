"""People and their keypoints in video frames, through the two contract models.

The only module of the pose service that knows the image geometry: frames are letterboxed for
``person_detector``, each person is cropped around its box for ``pose_estimator``, and both models'
normalised outputs are mapped back to frame pixels. Which network family sits behind the models
(CenterNet + MoveNet, RTMDet + RTMPose) does not matter here; see ``contract``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from services.pose import geometry
from services.pose.contract import (
    BOXES,
    KEYPOINTS,
    NUM_KEYPOINTS,
    PERSON_DETECTOR,
    POSE_ESTIMATOR,
    SCORES,
    InferenceBackend,
)
from services.pose.tracking import box_iou

if TYPE_CHECKING:
    from services.core.settings import Settings

NMS_IOU = 0.5


class PoseModelOutputError(RuntimeError):
    """A model's outputs do not have the contract's names or shapes."""


@dataclass(frozen=True)
class Detection:
    box: np.ndarray  # float32 [4] x1, y1, x2, y2 in frame pixels
    score: float


@dataclass(frozen=True)
class Person:
    box: np.ndarray  # float32 [4] x1, y1, x2, y2 in frame pixels (the detector's box)
    score: float  # detector confidence
    keypoints: np.ndarray  # float32 [17, 3] x, y in frame pixels, confidence; COCO order


@dataclass(frozen=True)
class _Job:
    frame: int
    detection: Detection
    matrix: np.ndarray  # frame -> crop
    inverse: np.ndarray  # crop -> frame


def nms(boxes: np.ndarray, scores: np.ndarray, iou: float = NMS_IOU) -> list[int]:
    """Greedy non-maximum suppression: indices kept, best score first."""
    order = list(np.argsort(-np.asarray(scores), kind="stable"))
    if not order:
        return []
    overlaps = box_iou(boxes, boxes)
    keep: list[int] = []
    for i in order:
        if all(overlaps[i, k] <= iou for k in keep):
            keep.append(int(i))
    return keep


class PoseEstimator:
    """Detects people and estimates their poses on an InferenceBackend (Triton or onnxruntime).

    Every backend call carries at most ``max_batch_size`` images (Triton's max_batch_size for the models).
    """

    def __init__(
        self,
        backend: InferenceBackend,
        min_person_score: float = 0.3,
        pose_crop_padding: float = 1.25,
        max_batch_size: int = 8,
        nms_iou: float = NMS_IOU,
    ) -> None:
        if max_batch_size < 1:
            raise ValueError(f"max_batch_size must be >= 1, got {max_batch_size}")
        if pose_crop_padding <= 0:
            raise ValueError(f"pose_crop_padding must be > 0, got {pose_crop_padding}")
        self.backend = backend
        self.min_person_score = min_person_score
        self.pose_crop_padding = pose_crop_padding
        self.max_batch_size = max_batch_size
        self.nms_iou = nms_iou

    @classmethod
    def from_settings(cls, backend: InferenceBackend, settings: Settings) -> PoseEstimator:
        """min_person_score, pose_crop_padding and triton_max_batch_size from the service settings."""
        return cls(
            backend,
            min_person_score=settings.min_person_score,
            pose_crop_padding=settings.pose_crop_padding,
            max_batch_size=settings.triton_max_batch_size,
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

    def detect(self, frames: Sequence[np.ndarray]) -> list[list[Detection]]:
        """People in each RGB uint8 frame [H, W, 3]: boxes in frame pixels, score >= min_person_score,
        best first.

        A greedy IoU-NMS at 0.5 runs after the model's own: the contract does not promise the model
        suppresses duplicates (CenterNet's peak picking can leave neighbours), and it is cheap.
        """
        for frame in frames:
            geometry.check_frame(frame)
        height, width = self._input_size(PERSON_DETECTOR)
        if height != width:
            raise PoseModelOutputError(f"{PERSON_DETECTOR}: input must be square (S x S), got {height} x {width}")
        results: list[list[Detection]] = []
        for start in range(0, len(frames), self.max_batch_size):
            chunk = frames[start : start + self.max_batch_size]
            placed = [geometry.letterbox(frame, height) for frame in chunk]
            outputs = self._infer(
                PERSON_DETECTOR, np.stack([image for image, _ in placed]), {BOXES: (-1, 4), SCORES: (-1,)}
            )
            for (_, letterbox), boxes, scores in zip(placed, outputs[BOXES], outputs[SCORES], strict=True):
                results.append(self._frame_detections(letterbox, boxes, scores))
        return results

    def _frame_detections(
        self, letterbox: geometry.Letterbox, boxes: np.ndarray, scores: np.ndarray
    ) -> list[Detection]:
        scores = np.asarray(scores, dtype=np.float32)
        candidates = np.flatnonzero(scores >= self.min_person_score)
        if len(candidates) == 0:
            return []
        frame_boxes = letterbox.boxes_to_frame(np.asarray(boxes)[candidates])
        # a box that lies in the zero padding clips to nothing: no one to crop
        has_area = (frame_boxes[:, 2] > frame_boxes[:, 0]) & (frame_boxes[:, 3] > frame_boxes[:, 1])
        frame_boxes, kept_scores = frame_boxes[has_area], scores[candidates][has_area]
        return [Detection(frame_boxes[i], float(kept_scores[i])) for i in nms(frame_boxes, kept_scores, self.nms_iou)]

    def estimate(self, frames: Sequence[np.ndarray], detections: Sequence[Sequence[Detection]]) -> list[list[Person]]:
        """Keypoints for every detection of every frame; persons of all frames share pose batches."""
        if len(frames) != len(detections):
            raise ValueError(f"{len(frames)} frames but detections for {len(detections)}")
        for frame in frames:
            geometry.check_frame(frame)
        height, width = self._input_size(POSE_ESTIMATOR)
        aspect = width / height
        jobs: list[_Job] = []
        for index, frame_detections in enumerate(detections):
            for detection in frame_detections:
                center, scale = geometry.box_to_center_scale(detection.box, self.pose_crop_padding, aspect)
                matrix = geometry.warp_matrix(center[0], scale[0], width, height)
                jobs.append(_Job(index, detection, matrix, geometry.invert_affine(matrix)))
        results: list[list[Person]] = [[] for _ in frames]
        for start in range(0, len(jobs), self.max_batch_size):
            chunk = jobs[start : start + self.max_batch_size]
            crops = np.stack([geometry.crop(frames[job.frame], job.matrix, width, height) for job in chunk])
            keypoints = self._infer(POSE_ESTIMATOR, crops, {KEYPOINTS: (NUM_KEYPOINTS, 3)})[KEYPOINTS]
            for job, points in zip(chunk, keypoints, strict=True):
                results[job.frame].append(
                    Person(
                        box=job.detection.box,
                        score=job.detection.score,
                        keypoints=geometry.keypoints_to_frame(points, job.inverse, width, height),
                    )
                )
        return results

    def analyze(self, frames: Sequence[np.ndarray]) -> list[list[Person]]:
        """detect, then estimate."""
        return self.estimate(frames, self.detect(frames))
