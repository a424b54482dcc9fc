"""The gateway's FastAPI app: uploads, catalog queries, progress streams, health and metrics.

`create_app(settings)` builds the app; its lifespan starts the GatewayRuntime (catalog, store,
producer, catalog consumer thread, gRPC server) and stops it on shutdown.
"""

from __future__ import annotations

import json
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Annotated

from fastapi import APIRouter, Depends, FastAPI, Header, Query, Request, Response
from fastapi.responses import JSONResponse
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from sqlalchemy.exc import SQLAlchemyError
from sse_starlette import EventSourceResponse, ServerSentEvent
from starlette.concurrency import run_in_threadpool

from services.core.settings import Settings
from services.gateway import progress
from services.gateway.auth import ApiKeys, require_api_key
from services.gateway.errors import GatewayConfigError, GatewayError, NotFoundError, NotReadyError
from services.gateway.metrics import RequestMetricsMiddleware
from services.gateway.runtime import GatewayRuntime
from services.gateway.schemas import (
    ClipDetail,
    ErrorBody,
    UploadAccepted,
    VideoDetail,
    VideoPage,
    VideoSummary,
)
from services.gateway.status import UnknownStageError, VideoStatus, final_stage_rank
from services.gateway.upload import UPLOAD_OPENAPI

log = logging.getLogger(__name__)

MAX_PAGE_SIZE = 100

_errors = {status: {"model": ErrorBody} for status in (401, 404)}


def get_runtime(request: Request) -> GatewayRuntime:
    runtime: GatewayRuntime | None = getattr(request.app.state, "runtime", None)
    if runtime is None:
        raise NotReadyError("starting", "the gateway is starting or stopping")
    return runtime


Runtime = Annotated[GatewayRuntime, Depends(get_runtime)]

health = APIRouter(tags=["health"])
v1 = APIRouter(prefix="/v1", tags=["videos"], dependencies=[Depends(require_api_key)], responses=_errors)


@health.get("/healthz")
async def healthz() -> dict[str, str]:
    """The process is alive."""
    return {"status": "ok"}


@health.get("/readyz", responses={503: {"model": ErrorBody}})
async def readyz(runtime: Runtime) -> dict[str, bool]:
    """The catalog database answers and the catalog consumer holds its partitions."""
    assert runtime.catalog is not None and runtime.consumer is not None
    reasons = []
    try:
        await run_in_threadpool(runtime.catalog.ping)
    except SQLAlchemyError as exc:
        reasons.append(f"catalog database unreachable: {exc}")
    if not runtime.consumer.assigned:
        reasons.append("the catalog consumer has not been assigned its partitions yet")
    if reasons:
        raise NotReadyError("not_ready", "; ".join(reasons))
    return {"ready": True}


@health.get("/metrics", include_in_schema=False)
async def prometheus_metrics() -> Response:
    return Response(generate_latest(), media_type=CONTENT_TYPE_LATEST)


@v1.post(
    "/videos",
    status_code=202,
    openapi_extra=UPLOAD_OPENAPI,
    responses={
        200: {"model": UploadAccepted, "description": "Identical content was uploaded before; nothing re-emitted"},
        **{status: {"model": ErrorBody} for status in (400, 413, 415, 422, 503)},
    },
)
async def upload_video(request: Request, response: Response, runtime: Runtime) -> UploadAccepted:
    """Upload a video (multipart field `file`, optional `description` and `source_url`).

    The body is streamed, hashed and probed; the video is stored, catalogued and announced on
    haic.videos.v1. 202 with the status URL for a new video; 200 with `duplicate: true` for content
    uploaded before.
    """
    assert runtime.uploader is not None
    status_code, accepted = await runtime.uploader.handle(request)
    response.status_code = status_code
    response.headers["Location"] = accepted.status_url
    return accepted


@v1.get("/videos")
async def list_videos(
    runtime: Runtime,
    status: VideoStatus | None = None,
    limit: Annotated[int, Query(ge=1, description=f"Page size, capped at {MAX_PAGE_SIZE}")] = 20,
    offset: Annotated[int, Query(ge=0)] = 0,
) -> VideoPage:
    """Videos, newest first, optionally with one status."""
    assert runtime.catalog is not None
    limit = min(limit, MAX_PAGE_SIZE)
    rows, total = await run_in_threadpool(
        runtime.catalog.list_videos, status.value if status is not None else None, limit, offset
    )
    return VideoPage(items=[VideoSummary.from_row(row) for row in rows], total=total, limit=limit, offset=offset)


@v1.get("/videos/{video_id}")
async def get_video(video_id: str, runtime: Runtime) -> VideoDetail:
    """The video's status, probed info, clips with their verdicts, and dead letters."""
    assert runtime.catalog is not None
    view = await run_in_threadpool(runtime.catalog.find_video, video_id)
    if view is None:
        raise NotFoundError("video_not_found", f"video {video_id} is not in the catalog", video_id=video_id)
    return VideoDetail.from_view(view)


@v1.get("/videos/{video_id}/events", response_class=EventSourceResponse)
async def watch_video(
    video_id: str,
    runtime: Runtime,
    last_event_id: Annotated[str | None, Header(alias="Last-Event-ID")] = None,
    after: Annotated[int, Query(ge=0, description="Resume after this sequence (Last-Event-ID wins)")] = 0,
) -> EventSourceResponse:
    """Server-sent events: the video's event log, then new events, then `event: settled`.

    Each event is `event: <topic>`, `id: <sequence>`, data `{sequence, topic, status, recorded_at,
    event}` with the protobuf message as JSON. Reconnecting with Last-Event-ID resumes after it.
    """
    catalog = runtime.catalog
    assert catalog is not None
    if await run_in_threadpool(catalog.video_state, video_id) is None:
        raise NotFoundError("video_not_found", f"video {video_id} is not in the catalog", video_id=video_id)
    if last_event_id is not None and last_event_id.strip().isdigit():
        after = int(last_event_id.strip())

    async def stream() -> AsyncIterator[ServerSentEvent]:
        last = after
        async for record in progress.follow_events_async(catalog, video_id, after):
            last = record.sequence
            yield ServerSentEvent(data=json.dumps(progress.event_json(record)), event=record.topic, id=str(last))
        state = await run_in_threadpool(catalog.video_state, video_id)
        if state is not None:
            settled = {"video_id": video_id, "status": state.status.value, "sequence": last}
            yield ServerSentEvent(data=json.dumps(settled), event="settled")

    return EventSourceResponse(stream())


@v1.get("/clips/{clip_id}", tags=["clips"])
async def get_clip(clip_id: str, runtime: Runtime) -> ClipDetail:
    """One clip with its video id, verdict and what later stages recorded."""
    assert runtime.catalog is not None
    row = await run_in_threadpool(runtime.catalog.find_clip, clip_id)
    if row is None:
        raise NotFoundError("clip_not_found", f"clip {clip_id} is not in the catalog")
    return ClipDetail.from_row(row)


async def _render_gateway_error(_request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, GatewayError)
    return JSONResponse(exc.body(), status_code=exc.status_code, headers=exc.headers)


def create_app(settings: Settings) -> FastAPI:
    """The gateway app; raises GatewayConfigError for a configuration it cannot run with."""
    api_keys = ApiKeys(settings.api_keys)
    try:
        final_stage_rank(settings.catalog_final_stage)
    except UnknownStageError as exc:
        raise GatewayConfigError(f"HAIC_CATALOG_FINAL_STAGE: {exc}") from exc

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        app.state.runtime = await run_in_threadpool(GatewayRuntime.start, settings)
        try:
            yield
        finally:
            runtime, app.state.runtime = app.state.runtime, None
            await run_in_threadpool(runtime.stop)

    app = FastAPI(
        title="HAIC gateway",
        version="1.0.0",
        description="Upload videos to the HAIC pipeline and follow their clips through it.",
        lifespan=lifespan,
    )
    app.state.settings = settings
    app.state.api_keys = api_keys
    app.state.runtime = None
    app.add_middleware(RequestMetricsMiddleware)
    app.add_exception_handler(GatewayError, _render_gateway_error)
    app.include_router(health)
    app.include_router(v1)
    return app
