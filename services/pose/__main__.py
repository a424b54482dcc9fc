"""`python -m services.pose`: the pose stage (topology: haic.clips.candidate.v1 -> accepted and rejected clips)."""

from __future__ import annotations

from haic.v1 import pose_pb2_grpc
from services.core import topology
from services.core.service import run_stage
from services.core.settings import PoseServiceSettings, load
from services.core.storage import open_storage
from services.pose.estimator import PoseEstimator
from services.pose.service import ClipAnalyzer, PoseServicer, make_handler
from services.pose.triton_client import TritonInference


def main() -> None:
    settings = load(PoseServiceSettings)
    backend = TritonInference(
        settings.triton_url,
        timeout_s=settings.triton_timeout_s,
        retries=settings.triton_retries,
        max_batch_size=settings.triton_max_batch_size,
    )
    analyzer = ClipAnalyzer(settings, open_storage(settings), PoseEstimator.from_settings(backend, settings))
    run_stage(
        topology.stage("pose"),
        settings,
        make_handler(analyzer),
        pose_pb2_grpc.add_PoseServiceServicer_to_server,
        PoseServicer(analyzer),
    )


if __name__ == "__main__":
    main()
