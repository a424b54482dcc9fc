"""Prometheus metrics of the gateway, served on its own /metrics with the shared bus metrics."""

from __future__ import annotations

import time

from prometheus_client import Counter, Histogram
from starlette.types import ASGIApp, Message, Receive, Scope, Send

UPLOADS = Counter(
    "haic_gateway_uploads_total",
    "Uploads by outcome: accepted, duplicate, or the rejection code (too_large, not_a_video, truncated, ...)",
    ["outcome"],
)
UPLOAD_BYTES = Counter("haic_gateway_upload_bytes_total", "Request body bytes received by the upload endpoint")
UPLOAD_STAGE_SECONDS = Histogram(
    "haic_gateway_upload_stage_seconds",
    "Time of each upload step: receive (stream, hash, spool), probe, store, announce",
    ["stage"],
    buckets=(0.005, 0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300),
)
REANNOUNCED = Counter(
    "haic_gateway_videos_reannounced_total",
    "Videos announced again: the broker the catalog followed was replaced, or an unsettled, silent video was "
    "uploaded again",
)
REQUEST_SECONDS = Histogram(
    "haic_gateway_request_seconds",
    "HTTP request latency until the response starts (the route template, not the raw path)",
    ["method", "route", "status"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120),
)


class RequestMetricsMiddleware:
    """Pure ASGI middleware: it times until the response starts, so long streams (SSE) are not held."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        observed = False

        def observe(status: int) -> None:
            nonlocal observed
            if observed:
                return
            observed = True
            route = scope.get("route")
            template = getattr(route, "path", None) or "unmatched"
            REQUEST_SECONDS.labels(scope["method"], template, str(status)).observe(time.perf_counter() - started)

        async def send_timed(message: Message) -> None:
            if message["type"] == "http.response.start":
                observe(message["status"])
            await send(message)

        try:
            await self.app(scope, receive, send_timed)
        except Exception:
            observe(500)
            raise
