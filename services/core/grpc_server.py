"""gRPC serving for every service: standard health service, reflection and graceful stop."""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable
from concurrent import futures
from dataclasses import dataclass

import grpc
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection

log = logging.getLogger(__name__)


@dataclass
class ServiceRegistration:
    """A servicer with the function that adds it to a server and its full service name."""

    add_to_server: Callable[[object, grpc.Server], None]
    servicer: object
    full_name: str  # e.g. "haic.v1.FilterService"


class GrpcServer:
    def __init__(self, registrations: Iterable[ServiceRegistration], port: int, max_workers: int = 8) -> None:
        self._registrations = list(registrations)
        self._server = grpc.server(futures.ThreadPoolExecutor(max_workers=max_workers))
        self._health = health.HealthServicer()
        health_pb2_grpc.add_HealthServicer_to_server(self._health, self._server)
        names = [r.full_name for r in self._registrations]
        for registration in self._registrations:
            registration.add_to_server(registration.servicer, self._server)
        reflection.enable_server_reflection(
            [*names, health_pb2.DESCRIPTOR.services_by_name["Health"].full_name, reflection.SERVICE_NAME],
            self._server,
        )
        self.port = self._server.add_insecure_port(f"[::]:{port}")
        if self.port == 0:
            raise OSError(f"cannot bind gRPC port {port}")

    def start(self) -> None:
        self._server.start()
        for name in ["", *(r.full_name for r in self._registrations)]:
            self._health.set(name, health_pb2.HealthCheckResponse.SERVING)
        log.info("gRPC serving on port %d", self.port)

    def stop(self, grace_s: float = 5.0) -> None:
        """Reports NOT_SERVING first so load balancers drain, then lets in-flight calls finish."""
        self._health.enter_graceful_shutdown()
        self._server.stop(grace_s).wait()
