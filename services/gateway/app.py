"""The gateway's FastAPI app: uploads, catalog queries, progress streams, health and metrics.

`create_app(settings)` builds the app; its lifespan starts the GatewayRuntime (catalog, store,
producer, catalog consumer thread, gRPC server) and stops it on shutdown.
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Depends, FastAPI, Header, Path, Query, Request, Response
from fastapi.exception_handlers import http_exception_handler
from fastapi.responses import JSONResponse
from kafka.errors import KafkaError
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from pydantic import BeforeValidator, StringConstraints
from sqlalchemy.exc import SQLAlchemyError
from sse_starlette import EventSourceResponse, ServerSentEvent
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.routing import Route

from services.core.settings import GatewayServiceSettings
from services.gateway import progress
from services.gateway.auth import ApiKeys, DeskSessions, require_api_key
from services.gateway.clip_video import router as clip_video_router
from services.gateway.desk import install_desk
from services.gateway.errors import GatewayConfigError, GatewayError, NotFoundError, NotReadyError
from services.gateway.metrics import RequestMetricsMiddleware
from services.gateway.report import YieldReport, build_report
from services.gateway.review_api import router as review_router
from services.gateway.runtime import GatewayRuntime
from services.gateway.schemas import (
    BATCH_PATTERN,
    Backlog,
    ClipDetail,
    ErrorBody,
    MalformedBody,
    ReferenceRegistration,
    UploadAccepted,
    ValidationErrorBody,
    VideoDetail,
    VideoPage,
    VideoSummary,
)
from services.gateway.status import UnknownStageError, VideoStatus, final_stage_rank
from services.gateway.upload import UPLOAD_OPENAPI

log = logging.getLogger(__name__)

MAX_PAGE_SIZE = 100
# Bounds of the integers a client sends, checked before they reach the database: an offset or sequence
# past a 64-bit column answered 500 (SQLite's OverflowError), or broke the event stream mid-response.
MAX_OFFSET = 2**31 - 1  # far beyond any catalog's size; a larger offset is a client bug, answered 422
MAX_SEQUENCE = 2**63 - 1  # the events table's BIGINT sequence
MAX_REPORT_VIDEO_IDS = 100  # a larger batch is a window of upload times (since/until): the URL stays short
# Video and clip ids are `vid_<hex>` / `clip_<hex>`; anything else cannot be in the catalog, and a NUL or
# a megabyte of text must not reach the database (PostgreSQL refuses NUL in text with an error).
ID_PATTERN = r"^[A-Za-z0-9_.:-]{1,128}$"
VIDEO_ID_PATTERN = r"^vid_[0-9a-f]{24}$"  # services.core.ids.video_id_from_sha256

# FastAPI's `responses` argument: extra statuses of an operation, each with its model or content.
Responses = dict[int | str, dict[str, Any]]
_errors: Responses = {401: {"model": ErrorBody, "description": "No API key, or one that is not valid"}}
_not_found: Responses = {404: {"model": ErrorBody, "description": "Not in the catalog"}}
# Before OpenAPI 3.2 (FastAPI writes 3.1) a text/event-stream schema describes one event, not the stream.
_event_stream: Responses = {
    200: {
        "description": "Server-sent events: the video's events (`id` its sequence), then one `event: settled`",
        "content": {
            "text/event-stream": {
                "schema": {
                    "type": "object",
                    "required": ["event", "data"],
                    "properties": {
                        "event": {"type": "string", "description": "The topic, or `settled` for the last event"},
                        "id": {"type": "string", "pattern": "^[0-9]+$", "description": "The event's sequence"},
                        "data": {
                            "type": "string",
                            "contentMediaType": "application/json",
                            "description": "`{sequence, topic, status, recorded_at, event}`; for `settled`, "
                            "`{video_id, status, sequence}`",
                        },
                    },
                }
            }
        },
    }
}

_DATE_TIME = re.compile(r"\d{4}-\d{2}-\d{2}[Tt ]\d{2}:\d{2}")


def _date_time_text(value: object) -> object:
    """Only an RFC 3339 date-time: pydantic also reads `0.5` as seconds since 1970, which the document
    (format date-time) does not allow."""
    if not isinstance(value, str) or not _DATE_TIME.match(value):
        raise ValueError("expected an RFC 3339 date-time, e.g. 2026-12-04T21:00:00Z")
    return value


DateTime = Annotated[datetime, BeforeValidator(_date_time_text)]
VideoId = Annotated[str, Path(pattern=ID_PATTERN, description="`vid_` and 24 hex digits")]
ClipId = Annotated[str, Path(pattern=ID_PATTERN, description="`clip_` and 16 hex digits")]


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


@v1.post(
    "/videos/by-reference",
    status_code=202,
    responses={
        200: {"model": UploadAccepted, "description": "The external id or the content was registered before"},
        400: {"model": MalformedBody, "description": "The body is not JSON"},
        **{status: {"model": ErrorBody} for status in (403, 413, 415, 502, 503)},
        # a body that is not a registration (FastAPI's validation errors), or a reference that is no usable video
        422: {"model": ValidationErrorBody | ErrorBody, "description": "Not a registration, or not a usable video"},
    },
)
async def register_reference(
    registration: ReferenceRegistration, response: Response, runtime: Runtime
) -> UploadAccepted:
    """Register a video by reference: the gateway copies it from an allowed directory, bucket or URL
    (HAIC_REFERENCE_ROOTS) into the store, then probes and announces it exactly like an upload.

    403 for a reference outside the allowed roots or a URL whose host is not public; 422 for one that does
    not exist; 502 when its server could not be read. 202 for a new video, 200 for a known external id or
    content.
    """
    assert runtime.uploader is not None
    status_code, accepted = await runtime.uploader.register_reference(registration)
    response.status_code = status_code
    response.headers["Location"] = accepted.status_url
    return accepted


@v1.get("/videos")
async def list_videos(
    runtime: Runtime,
    status: VideoStatus | None = None,
    limit: Annotated[
        int,
        Query(ge=1, description=f"Page size; the maximum page size is {MAX_PAGE_SIZE}, a larger limit gets that"),
    ] = 20,
    offset: Annotated[int, Query(ge=0, le=MAX_OFFSET, description=f"Videos to skip, at most {MAX_OFFSET}")] = 0,
) -> VideoPage:
    """Videos, newest first, optionally with one status; the page's `limit` says the size served."""
    assert runtime.catalog is not None
    limit = min(limit, MAX_PAGE_SIZE)
    rows, total = await run_in_threadpool(
        runtime.catalog.list_videos, status.value if status is not None else None, limit, offset
    )
    return VideoPage(items=[VideoSummary.from_row(row) for row in rows], total=total, limit=limit, offset=offset)


@v1.get("/videos/{video_id}", responses=_not_found)
async def get_video(video_id: VideoId, runtime: Runtime) -> VideoDetail:
    """The video's status, probed info, clips with their verdicts, and dead letters."""
    assert runtime.catalog is not None
    view = await run_in_threadpool(runtime.catalog.find_video, video_id)
    if view is None:
        raise NotFoundError("video_not_found", f"video {video_id} is not in the catalog", video_id=video_id)
    return VideoDetail.from_view(view)


@v1.get(
    "/videos/{video_id}/events",
    response_class=EventSourceResponse,
    responses={**_event_stream, **_not_found},
)
async def watch_video(
    video_id: VideoId,
    runtime: Runtime,
    last_event_id: Annotated[str | None, Header(alias="Last-Event-ID")] = None,
    after: Annotated[
        int, Query(ge=0, le=MAX_SEQUENCE, description="Resume after this sequence (Last-Event-ID wins)")
    ] = 0,
) -> EventSourceResponse:
    """Server-sent events: the video's event log, then new events, then `event: settled`.

    Each event is `event: <topic>`, `id: <sequence>`, data `{sequence, topic, status, recorded_at,
    event}` with the protobuf message as JSON. Reconnecting with Last-Event-ID resumes after it; a
    Last-Event-ID that is not a sequence this gateway can have sent is ignored.
    """
    catalog = runtime.catalog
    assert catalog is not None
    if await run_in_threadpool(catalog.video_state, video_id) is None:
        raise NotFoundError("video_not_found", f"video {video_id} is not in the catalog", video_id=video_id)
    resume = _sequence(last_event_id)
    if resume is not None:
        after = resume

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


@v1.get("/clips/{clip_id}", tags=["clips"], responses=_not_found)
async def get_clip(clip_id: ClipId, runtime: Runtime) -> ClipDetail:
    """One clip with its video id, verdict and what later stages recorded."""
    assert runtime.catalog is not None
    row = await run_in_threadpool(runtime.catalog.find_clip, clip_id)
    if row is None:
        raise NotFoundError("clip_not_found", f"clip {clip_id} is not in the catalog")
    return ClipDetail.from_row(row)


@v1.get("/backlog", tags=["report"], responses={503: {"model": ErrorBody, "description": "Kafka cannot tell"}})
async def get_backlog(runtime: Runtime) -> Backlog:
    """The pipeline's backlog: messages each stage's consumer group has yet to process, and unsettled videos."""
    assert runtime.lag is not None and runtime.catalog is not None
    try:
        stages = await run_in_threadpool(runtime.lag.lag)
    except KafkaError as exc:
        raise NotReadyError("bus_unavailable", f"Kafka could not tell the consumer lag: {exc}") from exc
    unsettled = await run_in_threadpool(runtime.catalog.unsettled_count)
    return Backlog(stages=stages, total=sum(stages.values()), unsettled_videos=unsettled)


@v1.get("/report", tags=["report"])
async def get_report(
    runtime: Runtime,
    since: Annotated[
        DateTime | None, Query(description="Only videos uploaded at or after this time (UTC if naive)")
    ] = None,
    until: Annotated[DateTime | None, Query(description="Only videos uploaded before this time (UTC if naive)")] = None,
    video_id: Annotated[
        list[Annotated[str, StringConstraints(pattern=VIDEO_ID_PATTERN)]] | None,
        Query(
            max_length=MAX_REPORT_VIDEO_IDS,
            description=f"Only these videos (repeatable, at most {MAX_REPORT_VIDEO_IDS})",
        ),
    ] = None,
    batch: Annotated[
        str | None, Query(pattern=BATCH_PATTERN, description="Only the videos this batch (ingestion run) took")
    ] = None,
) -> YieldReport:
    """The yield report of a batch (an ingestion run, an upload-time window and/or a list of video ids) or of
    every video: the funnel with counts and percentages of videos in, rejections per stage and reason, the
    distributions of the pose stage's measured values, and time per stage."""
    assert runtime.catalog is not None
    return await run_in_threadpool(build_report, runtime.catalog.engine, since, until, video_id, batch)


def _sequence(header: str | None) -> int | None:
    """A Last-Event-ID as an event sequence, or None when it cannot be one.

    Only ASCII digits within the BIGINT range: str.isdigit() also accepts digits like "²" that int()
    refuses, and a larger number would overflow the database's integer.
    """
    value = (header or "").strip()
    if not (value.isascii() and value.isdigit()) or len(value) > len(str(MAX_SEQUENCE)):
        return None
    sequence = int(value)
    return sequence if sequence <= MAX_SEQUENCE else None


async def _render_http_error(request: Request, exc: Exception) -> Response:
    """Starlette's answer, except that a 405's Allow lists every method of the path.

    Starlette names only the methods of the first route whose path matched (OPTIONS /v1/videos said
    `Allow: POST` although GET /v1/videos exists).
    """
    assert isinstance(exc, StarletteHTTPException)
    if exc.status_code != 405:
        return await http_exception_handler(request, exc)
    allowed: set[str] = set()
    for route in request.app.routes:
        if isinstance(route, Route) and route.methods and route.path_regex.match(request.url.path):
            allowed |= route.methods
    headers = {**(exc.headers or {}), "Allow": ", ".join(sorted(allowed))}
    return JSONResponse({"detail": exc.detail}, status_code=405, headers=headers)


async def _render_gateway_error(_request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, GatewayError)
    return JSONResponse(exc.body(), status_code=exc.status_code, headers=exc.headers)


def create_app(settings: GatewayServiceSettings) -> FastAPI:
    """The gateway app; raises GatewayConfigError for a configuration it cannot run with."""
    api_keys = ApiKeys(settings.api_keys, settings.reviewer_keys)
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
    app.state.desk_sessions = DeskSessions(settings.review_session_hours * 3600)
    app.state.runtime = None
    app.add_middleware(RequestMetricsMiddleware)
    app.add_exception_handler(GatewayError, _render_gateway_error)
    app.add_exception_handler(StarletteHTTPException, _render_http_error)
    app.include_router(health)
    app.include_router(v1)
    app.include_router(review_router)
    app.include_router(clip_video_router)
    install_desk(app)
    return app
