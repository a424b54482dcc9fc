"""Runs one pipeline service: its Kafka worker, its gRPC API and its /metrics endpoint.

Every worker service's __main__ calls `run_service`; the process stops gracefully on SIGTERM/SIGINT.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable

from services.core.bus import Handler, Worker
from services.core.grpc_server import GrpcServer, ServiceRegistration
from services.core.logs import configure_logging
from services.core.metrics import start_metrics_server
from services.core.settings import Settings

log = logging.getLogger(__name__)


def run_service(
    name: str,
    settings: Settings,
    input_topics: Iterable[str],
    handler: Handler,
    registrations: Iterable[ServiceRegistration],
    output_topics: Iterable[str] = (),
) -> None:
    configure_logging(name)
    start_metrics_server(settings.metrics_port)
    server = GrpcServer(registrations, settings.grpc_port)
    worker = Worker(settings, name, input_topics, handler, output_topics=output_topics)
    worker.install_signal_handlers()
    server.start()
    log.info("%s started: gRPC %d, metrics %d", name, server.port, settings.metrics_port)
    try:
        worker.run()
    finally:
        server.stop()
