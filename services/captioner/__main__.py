"""`python -m services.captioner`: the captioner's Kafka worker (haic.clips.accepted.v1) and its gRPC Captioner."""

from __future__ import annotations

from haic.v1 import captioner_pb2_grpc
from services.captioner.service import SERVICE, CaptionerServicer, ClipCaptioner, make_handler
from services.core import topics
from services.core.grpc_server import ServiceRegistration
from services.core.service import run_service
from services.core.settings import Settings
from services.core.storage import open_storage


def main() -> None:
    settings = Settings()
    captioner = ClipCaptioner(settings, open_storage(settings))
    try:
        run_service(
            SERVICE,
            settings,
            [topics.CLIPS_ACCEPTED],
            make_handler(captioner),
            [
                ServiceRegistration(
                    captioner_pb2_grpc.add_CaptionerServicer_to_server,
                    CaptionerServicer(captioner),
                    "haic.v1.Captioner",
                )
            ],
            output_topics=[topics.CAPTIONS],
        )
    finally:
        captioner.close()


if __name__ == "__main__":
    main()
