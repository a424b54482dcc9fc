"""The production Triton model repository: NVIDIA Triton Inference Server, onnxruntime backend, GPU.

Same model names and tensor contract as the embedded server; what differs is the family (RTMDet +
RTMPose, wrapped by `haic models build --family rtmpose`; the face models stay the embedded build's),
the instance groups (GPU) and the batching knobs. The config.pbtxt files live in docker/triton/models/
for the compose file and the Kubernetes overlays; the ONNX files come from a volume or an object store
at deploy time (they are built from OpenMMLab's releases, which cannot be downloaded here).

``python -m haic_tools.models.production [DIR]`` rewrites them; a test fails when they are stale.
"""

from __future__ import annotations

import sys
from pathlib import Path

from haic_tools.models.build import FACE_ATTRIBUTES_SIZE, FACE_DETECTOR_SIZE, MAX_FACES
from services.pose.contract import ModelSpec, detector_spec, face_attributes_spec, face_detector_spec, pose_spec
from services.pose.repository import CONFIG_FILE, Batching, render_config

REPO_ROOT = Path(__file__).resolve().parents[2]
PRODUCTION_REPOSITORY = REPO_ROOT / "docker" / "triton" / "models"

RTMDET_SIZE = 640  # RTMDet-m/l person detectors, as mmdeploy exports them
RTMDET_MAX_DETECTIONS = 100
RTMPOSE_HEIGHT, RTMPOSE_WIDTH = 256, 192  # RTMPose-m/l body7 256x192

# One GPU instance per model: the dynamic batcher fills it; scale with replicas (one GPU each) or
# raise `count` on bigger GPUs. A 1 ms queue delay trades little latency for full batches.
GPU_DETECTOR = Batching(
    max_batch_size=32, preferred_batch_sizes=(8, 16, 32), max_queue_delay_us=1000, instance_kind="KIND_GPU"
)
GPU_POSE = Batching(
    max_batch_size=64, preferred_batch_sizes=(16, 32, 64), max_queue_delay_us=1000, instance_kind="KIND_GPU"
)


# The face models (services/pose/face_attributes.py) are the embedded build's (BlazeFace, HSE faceres):
# no other family has them, so production serves the ONNX files `haic models build` writes. A clip sends
# a few head regions and faces per person, fewer than its pose crops.
GPU_FACE = Batching(
    max_batch_size=32, preferred_batch_sizes=(8, 16, 32), max_queue_delay_us=1000, instance_kind="KIND_GPU"
)


def production_models() -> list[tuple[ModelSpec, Batching]]:
    return [
        (detector_spec(RTMDET_SIZE, RTMDET_MAX_DETECTIONS), GPU_DETECTOR),
        (pose_spec(RTMPOSE_HEIGHT, RTMPOSE_WIDTH), GPU_POSE),
        (face_detector_spec(FACE_DETECTOR_SIZE, MAX_FACES), GPU_FACE),
        (face_attributes_spec(FACE_ATTRIBUTES_SIZE), GPU_FACE),
    ]


def render_production_configs() -> dict[str, str]:
    """Relative path -> config.pbtxt text."""
    return {f"{spec.name}/{CONFIG_FILE}": render_config(spec, batching) for spec, batching in production_models()}


def write_production_configs(repository: Path = PRODUCTION_REPOSITORY) -> list[Path]:
    written = []
    for relative, text in render_production_configs().items():
        path = repository / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
        written.append(path)
    return written


if __name__ == "__main__":
    for written_path in write_production_configs(Path(sys.argv[1]) if len(sys.argv) > 1 else PRODUCTION_REPOSITORY):
        print(written_path)
