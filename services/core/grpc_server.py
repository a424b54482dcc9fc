"""gRPC serving for every service: standard health service, reflection, graceful stop, and one mapping of
the services' typed errors to gRPC status codes."""

from __future__ import annotations

import functools
import logging
from collections.abc import Callable, Iterable
from concurrent import futures
from dataclasses import dataclass
from typing import Any, Concatenate, NoReturn, ParamSpec, TypeVar

import grpc
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection

from services.core.bus import DependencyUnavailableError, PoisonMessageError
from services.core.storage import ObjectNotFoundError

log = logging.getLogger(__name__)

P = ParamSpec("P")
R = TypeVar("R")


class InvalidRequestError(ValueError):
    """A request the service cannot take as it is (a missing field, an unknown name): INVALID_ARGUMENT."""


class RequestedNotFoundError(LookupError):
    """What the request names does not exist (a video not in the catalog): NOT_FOUND."""


class PreconditionError(RuntimeError):
    """A well-formed request the service will not act on in the state it names: FAILED_PRECONDITION."""


def status_for(exc: BaseException) -> grpc.StatusCode | None:
    """The status code of a service error, or None for an error that is a bug (answered UNKNOWN by gRPC).

    What is missing (the stored video, a catalog entry) is NOT_FOUND; what cannot be processed as sent
    (a poison message, an unreadable video, an invalid request) INVALID_ARGUMENT; a dependency that is down
    (Triton, the MLLM endpoint) UNAVAILABLE, which a client may retry.
    """
    if isinstance(exc, ObjectNotFoundError | RequestedNotFoundError) or getattr(exc, "not_found", False):
        return grpc.StatusCode.NOT_FOUND
    if isinstance(exc, PoisonMessageError | InvalidRequestError):
        return grpc.StatusCode.INVALID_ARGUMENT
    if isinstance(exc, PreconditionError):
        return grpc.StatusCode.FAILED_PRECONDITION
    if isinstance(exc, DependencyUnavailableError):
        return grpc.StatusCode.UNAVAILABLE
    return None


def abort(context: grpc.ServicerContext, exc: BaseException) -> NoReturn:
    code = status_for(exc)
    if code is None:
        raise exc
    context.abort(code, str(exc))
    raise AssertionError("grpc's abort raises")  # for the type checker: abort never returns


def maps_errors(
    method: Callable[Concatenate[Any, Any, grpc.ServicerContext, P], R],
) -> Callable[Concatenate[Any, Any, grpc.ServicerContext, P], R]:
    """Decorates a unary servicer method: a service error it raises becomes its gRPC status (status_for)."""

    @functools.wraps(method)
    def call(self: Any, request: Any, context: grpc.ServicerContext, *args: P.args, **kwargs: P.kwargs) -> R:
        try:
            return method(self, request, context, *args, **kwargs)
        except (
            PoisonMessageError,
            InvalidRequestError,
            PreconditionError,
            DependencyUnavailableError,
            ObjectNotFoundError,
            RequestedNotFoundError,
        ) as exc:
            abort(context, exc)

    return call


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
