"""`python -m services.qagen`: the QA generator's Kafka worker (haic.captions.v1) and its gRPC QAGenerator."""

from __future__ import annotations

from haic.v1 import qagen_pb2_grpc
from services.core import topics
from services.core.grpc_server import ServiceRegistration
from services.core.service import run_service
from services.core.settings import Settings
from services.qagen.service import SERVICE, ClipQAGenerator, QAGeneratorServicer, make_handler


def main() -> None:
    settings = Settings()
    generator = ClipQAGenerator(settings)
    try:
        run_service(
            SERVICE,
            settings,
            [topics.CAPTIONS],
            make_handler(generator),
            [
                ServiceRegistration(
                    qagen_pb2_grpc.add_QAGeneratorServicer_to_server,
                    QAGeneratorServicer(generator),
                    "haic.v1.QAGenerator",
                )
            ],
            output_topics=[topics.QA],
        )
    finally:
        generator.close()


if __name__ == "__main__":
    main()
