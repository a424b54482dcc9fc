"""`python -m services.gateway`: the HTTP API on HAIC_HTTP_HOST:HAIC_HTTP_PORT and gRPC on HAIC_GRPC_PORT.

uvicorn owns SIGTERM/SIGINT: it stops accepting, drains requests (SSE streams end), then the app's
lifespan shutdown stops the gRPC server and the catalog consumer thread. Afterwards uvicorn re-raises
the signal, so the process ends as killed by SIGTERM (status 143), or returns 130 after SIGINT.
"""

from __future__ import annotations

import logging
import sys

import uvicorn

from services.core.logs import configure_logging
from services.core.settings import GatewayServiceSettings, load
from services.gateway.app import create_app
from services.gateway.errors import GatewayConfigError

log = logging.getLogger("services.gateway")


def main() -> int:
    configure_logging("gateway")
    settings = load(GatewayServiceSettings)
    try:
        app = create_app(settings)
    except GatewayConfigError as exc:
        log.error("cannot start the gateway: %s", exc)
        return 2
    config = uvicorn.Config(
        app,
        host=settings.http_host,
        port=settings.http_port,
        log_config=None,  # keep the JSON logging configured above
        timeout_graceful_shutdown=30,
    )
    try:
        uvicorn.Server(config).run()
    except KeyboardInterrupt:
        # uvicorn re-raises the signal it shut down for, once everything has stopped
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())
