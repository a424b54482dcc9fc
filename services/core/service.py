"""The stage interface and the process that runs a stage: its Kafka worker, its gRPC API and its /metrics.

A stage declares itself once in services/core/topology.py (input topic, output topics, gRPC service) and
implements one processing function from its input message to its outputs. `stage_handler` wraps that
function into the Kafka handler (the input's type is checked here, once, for every stage), and `run_stage`
runs it; the process stops gracefully on SIGTERM/SIGINT.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any, TypeVar

from google.protobuf.message import Message

from services.core import topics
from services.core.bus import Event, Handler, Output, PoisonMessageError, Worker
from services.core.grpc_server import GrpcServer, ServiceRegistration
from services.core.logs import configure_logging
from services.core.metrics import start_metrics_server
from services.core.settings import ProcessSettings
from services.core.topology import StageSpec

log = logging.getLogger(__name__)

M = TypeVar("M", bound=Message)


def stage_handler(stage: StageSpec, process: Callable[[Any], list[Output]]) -> Handler:
    """The Kafka handler of a stage: a message of another type than the input topic's is poison."""
    expected = topics.MESSAGE_TYPES[stage.input_topic]

    def handle(event: Event) -> list[Output]:
        if not isinstance(event.message, expected):
            raise PoisonMessageError(
                f"{event.topic} carried {type(event.message).__name__}, not {expected.DESCRIPTOR.name}"
            )
        return process(event.message)

    return handle


def run_stage(
    stage: StageSpec,
    settings: ProcessSettings,
    handler: Handler,
    add_to_server: Callable[[Any, Any], None],
    servicer: object,
) -> None:
    """Consumes the stage's input topic with `handler` as its consumer group, serves its gRPC API."""
    configure_logging(stage.name)
    start_metrics_server(settings.metrics_port)
    server = GrpcServer([ServiceRegistration(add_to_server, servicer, stage.grpc_service)], settings.grpc_port)
    worker = Worker(settings, stage.name, [stage.input_topic], handler, output_topics=stage.output_topics)
    worker.install_signal_handlers()
    server.start()
    log.info("%s started: gRPC %d, metrics %d", stage.name, server.port, settings.metrics_port)
    try:
        worker.run()
    finally:
        server.stop()
