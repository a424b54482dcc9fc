"""`python -m services.pose`: the pose Kafka worker (haic.clips.candidate.v1) and its gRPC PoseService."""

from __future__ import annotations

from haic.v1 import pose_pb2_grpc
from services.core import topics
from services.core.grpc_server import ServiceRegistration
from services.core.service import run_service
from services.core.settings import Settings
from services.core.storage import open_storage
from services.pose.estimator import PoseEstimator
from services.pose.service import SERVICE, ClipAnalyzer, PoseServicer, make_handler
from services.pose.triton_client import TritonInference


def main() -> None:
    settings = Settings()
    backend = TritonInference(
        settings.triton_url,
        timeout_s=settings.triton_timeout_s,
        retries=settings.triton_retries,
        max_batch_size=settings.triton_max_batch_size,
    )
    analyzer = ClipAnalyzer(settings, open_storage(settings), PoseEstimator.from_settings(backend, settings))
    run_service(
        SERVICE,
        settings,
        [topics.CLIPS_CANDIDATE],
        make_handler(analyzer),
        [
            ServiceRegistration(
                pose_pb2_grpc.add_PoseServiceServicer_to_server, PoseServicer(analyzer), "haic.v1.PoseService"
            )
        ],
        output_topics=[topics.CLIPS_ACCEPTED, topics.CLIPS_REJECTED],
    )


if __name__ == "__main__":
    main()
