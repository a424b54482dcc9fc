"""Core's gRPC serving: one mapping of the services' typed errors to status codes, over a real server."""

from __future__ import annotations

from collections.abc import Iterator

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from haic.v1 import events_pb2, scoring_pb2, scoring_pb2_grpc
from services.core.bus import ClipPoisonError, DependencyUnavailableError
from services.core.grpc_server import (
    GrpcServer,
    InvalidRequestError,
    PreconditionError,
    RequestedNotFoundError,
    ServiceRegistration,
    maps_errors,
    status_for,
)
from services.core.llm import MllmUnavailableError
from services.core.storage import ObjectNotFoundError


class _Failing(scoring_pb2_grpc.ScoringServiceServicer):
    """Raises the error named by the request's answerer."""

    ERRORS: dict[str, Exception] = {
        "poison": ClipPoisonError("clip_1", "no items"),
        "invalid": InvalidRequestError("unknown setting 'x'"),
        "missing": ObjectNotFoundError("file:///v.mp4 does not exist"),
        "absent": RequestedNotFoundError("video vid_1 is not in the catalog"),
        "precondition": PreconditionError("the caption did not pass the judge"),
        "mllm": MllmUnavailableError("clip clip_1: MLLM endpoint unavailable"),
        "bug": ZeroDivisionError("division by zero"),
    }

    @maps_errors
    def Evaluate(
        self, request: scoring_pb2.EvaluateRequest, context: grpc.ServicerContext
    ) -> scoring_pb2.EvaluateResponse:
        if request.answerer in self.ERRORS:
            raise self.ERRORS[request.answerer]
        return scoring_pb2.EvaluateResponse(score=events_pb2.ScoreRecord(video_id="vid_ok"))


@pytest.fixture
def channel() -> Iterator[grpc.Channel]:
    registration = ServiceRegistration(
        scoring_pb2_grpc.add_ScoringServiceServicer_to_server, _Failing(), "haic.v1.ScoringService"
    )
    server = GrpcServer([registration], port=0)
    server.start()
    with grpc.insecure_channel(f"127.0.0.1:{server.port}") as open_channel:
        yield open_channel
    server.stop(grace_s=0.5)


@pytest.mark.parametrize(
    ("answerer", "code"),
    [
        ("poison", grpc.StatusCode.INVALID_ARGUMENT),
        ("invalid", grpc.StatusCode.INVALID_ARGUMENT),
        ("missing", grpc.StatusCode.NOT_FOUND),
        ("absent", grpc.StatusCode.NOT_FOUND),
        ("precondition", grpc.StatusCode.FAILED_PRECONDITION),
        ("mllm", grpc.StatusCode.UNAVAILABLE),  # was UNKNOWN from the captioner before the mapping moved to core
        ("bug", grpc.StatusCode.UNKNOWN),
    ],
)
def test_each_service_error_gets_its_status_over_the_wire(channel: grpc.Channel, answerer: str, code) -> None:
    stub = scoring_pb2_grpc.ScoringServiceStub(channel)
    with pytest.raises(grpc.RpcError) as caught:
        stub.Evaluate(scoring_pb2.EvaluateRequest(answerer=answerer), timeout=10)
    assert caught.value.code() == code
    if code != grpc.StatusCode.UNKNOWN:
        assert str(_Failing.ERRORS[answerer]) in caught.value.details()


def test_a_call_that_succeeds_is_untouched_and_health_serves(channel: grpc.Channel) -> None:
    answer = scoring_pb2_grpc.ScoringServiceStub(channel).Evaluate(
        scoring_pb2.EvaluateRequest(answerer="ok"), timeout=10
    )
    assert answer.score.video_id == "vid_ok"
    health = health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest(service="haic.v1.ScoringService"))
    assert health.status == health_pb2.HealthCheckResponse.SERVING


def test_an_error_that_is_a_bug_has_no_status() -> None:
    assert status_for(KeyError("x")) is None
    assert status_for(DependencyUnavailableError("triton down")) == grpc.StatusCode.UNAVAILABLE
