"""`python -m services.filter`: the filter stage (topology: haic.videos.v1 -> candidate and rejected clips)."""

from __future__ import annotations

from haic.v1 import filter_pb2_grpc
from services.core import topology
from services.core.service import run_stage
from services.core.settings import FilterServiceSettings, load
from services.core.storage import open_storage
from services.filter.service import FilterServicer, make_handler


def main() -> None:
    settings = load(FilterServiceSettings)
    storage = open_storage(settings)
    run_stage(
        topology.stage("filter"),
        settings,
        make_handler(settings, storage),
        filter_pb2_grpc.add_FilterServiceServicer_to_server,
        FilterServicer(settings, storage),
    )


if __name__ == "__main__":
    main()
