"""gRPC haic.v1.PipelineService: WatchVideo streams a video's event log as VideoProgress until it settles."""

from __future__ import annotations

from collections.abc import Iterator

import grpc

from haic.v1 import pipeline_pb2, pipeline_pb2_grpc
from services.core.grpc_server import InvalidRequestError, RequestedNotFoundError, ServiceRegistration, abort
from services.gateway.catalog import Catalog
from services.gateway.progress import POLL_INTERVAL_S, follow_events, video_progress

SERVICE_NAME = pipeline_pb2.DESCRIPTOR.services_by_name["PipelineService"].full_name


class PipelineServicer(pipeline_pb2_grpc.PipelineServiceServicer):
    def __init__(self, catalog: Catalog, poll_interval_s: float = POLL_INTERVAL_S) -> None:
        self.catalog = catalog
        self.poll_interval_s = poll_interval_s

    def WatchVideo(
        self, request: pipeline_pb2.WatchVideoRequest, context: grpc.ServicerContext
    ) -> Iterator[pipeline_pb2.VideoProgress]:
        # Checked before the first event: a streaming method is not wrapped by maps_errors.
        if not request.video_id:
            abort(context, InvalidRequestError("video_id is required"))
        if self.catalog.video_state(request.video_id) is None:
            abort(context, RequestedNotFoundError(f"video {request.video_id} is not in the catalog"))
        # is_active turns false when the client cancels, the deadline passes or the server stops.
        for record in follow_events(
            self.catalog, request.video_id, request.after_sequence, context.is_active, self.poll_interval_s
        ):
            yield video_progress(record)


def pipeline_registration(catalog: Catalog) -> ServiceRegistration:
    return ServiceRegistration(
        pipeline_pb2_grpc.add_PipelineServiceServicer_to_server, PipelineServicer(catalog), SERVICE_NAME
    )
