"""The pose tests. SETTINGS: the pose stage's settings as it reads them; a test that builds a PoseEstimator
itself gives every value (`pose_estimator`), the detector's word alone as its rules where it asks for them."""

from __future__ import annotations

from services.core.settings import PoseServiceSettings, load
from services.pose.contract import InferenceBackend
from services.pose.estimator import PersonEvidence, PoseEstimator

SETTINGS = load(PoseServiceSettings)


def detector_only(min_score: float) -> PersonEvidence:
    """Every box the detector scores at min_score counts, nothing else does: no body check (so no box is
    judged by its evidence), no part rule, no multipose, no neighbours, no growth to keypoints."""
    return PersonEvidence(
        min_score=min_score,
        min_score_with_body=None,
        min_evidence=SETTINGS.min_person_evidence,
        max_containment=1.0,
        multipose_min_score=0.0,
        track_iou=0.0,
        extent_keypoint_score=None,
    )


def pose_estimator(
    backend: InferenceBackend,
    evidence: PersonEvidence,
    *,
    pose_crop_padding: float = SETTINGS.pose_crop_padding,
    max_batch_size: int = SETTINGS.triton_max_batch_size,
    nms_iou: float = SETTINGS.person_nms_iou,
) -> PoseEstimator:
    """A PoseEstimator with these rules, the settings' crop padding, batch size and NMS IoU unless the test
    gives its own."""
    return PoseEstimator(
        backend, evidence=evidence, pose_crop_padding=pose_crop_padding, max_batch_size=max_batch_size, nms_iou=nms_iou
    )
