"""`python -m services.filter`: the filter's Kafka worker (haic.videos.v1) and its gRPC FilterService."""

from __future__ import annotations

from haic.v1 import filter_pb2_grpc
from services.core import topics
from services.core.grpc_server import ServiceRegistration
from services.core.service import run_service
from services.core.settings import Settings
from services.core.storage import open_storage
from services.filter.service import SERVICE, FilterServicer, make_handler


def main() -> None:
    settings = Settings()
    storage = open_storage(settings)
    servicer = FilterServicer(settings, storage)
    run_service(
        SERVICE,
        settings,
        [topics.VIDEOS],
        make_handler(settings, storage),
        [ServiceRegistration(filter_pb2_grpc.add_FilterServiceServicer_to_server, servicer, "haic.v1.FilterService")],
        output_topics=[topics.CLIPS_CANDIDATE, topics.CLIPS_REJECTED],
    )


if __name__ == "__main__":
    main()
