"""Following a video: server-sent events and gRPC WatchVideo replay the log, follow it, end when settled."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import grpc
import pytest
from fastapi.testclient import TestClient
from grpc_health.v1 import health_pb2, health_pb2_grpc

from haic.v1 import pipeline_pb2, pipeline_pb2_grpc
from services.core.bus import EventProducer
from services.core.topics import CLIPS_CANDIDATE, CLIPS_REJECTED, VIDEOS
from tests.kafka_helpers import wait_until

from .conftest import AUTH, candidate, rejected, span, upload

pytestmark = pytest.mark.kafka


def sse_events(lines: Iterator[str]) -> Iterator[dict[str, str]]:
    """Parses a text/event-stream into {event, id, data} dicts (comments and pings skipped)."""
    fields: dict[str, str] = {}
    for line in lines:
        if not line:
            if "data" in fields:
                yield fields
            fields = {}
        elif not line.startswith(":"):
            name, _, value = line.partition(":")
            fields[name] = value.removeprefix(" ")


def uploaded_video(gateway: TestClient, shared_videos: Path) -> str:
    video_id = upload(gateway, shared_videos / "juggle_one_person.mp4").json()["video_id"]
    catalog = gateway.app.state.runtime.catalog
    wait_until(lambda: catalog.events_after(video_id, 0), what="the VideoUploaded in the event log")
    return video_id


def test_sse_replays_follows_and_ends_with_settled(
    gateway: TestClient, producer: EventProducer, shared_videos: Path
) -> None:
    video_id = uploaded_video(gateway, shared_videos)
    kept, dropped = span(video_id, 0, 2, 0.0, 6.0), span(video_id, 1, 2, 6.0, 10.29)
    with gateway.stream("GET", f"/v1/videos/{video_id}/events", headers=AUTH) as response:
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("text/event-stream")
        stream = sse_events(response.iter_lines())

        first = next(stream)
        data = json.loads(first["data"])
        assert (first["event"], data["topic"], data["status"]) == (VIDEOS, VIDEOS, "uploaded")
        assert first["id"] == str(data["sequence"])
        assert data["event"]["video_id"] == video_id and data["event"]["info"]["width"] == 1280

        producer.deliver([candidate(video_id, kept)])  # produced while the stream is open
        second = next(stream)
        data = json.loads(second["data"])
        assert (second["event"], data["status"]) == (CLIPS_CANDIDATE, "processing")
        assert data["event"]["span"]["clip_id"] == kept.clip_id

        producer.deliver([rejected(video_id, dropped, "filter.scene", "scene_too_short", {"duration_s": 4.29})])
        third = next(stream)
        data = json.loads(third["data"])
        assert (third["event"], data["status"], data["event"]["reason_code"]) == (
            CLIPS_REJECTED,
            "completed",
            "scene_too_short",
        )
        assert int(first["id"]) < int(second["id"]) < int(third["id"])

        settled = next(stream)
        assert settled["event"] == "settled"
        assert json.loads(settled["data"]) == {
            "video_id": video_id,
            "status": "completed",
            "sequence": int(third["id"]),
        }
        assert list(stream) == []  # the stream ended

    # a reconnecting client resumes after its Last-Event-ID
    resumed_headers = {**AUTH, "Last-Event-ID": first["id"]}
    with gateway.stream("GET", f"/v1/videos/{video_id}/events", headers=resumed_headers) as response:
        resumed = list(sse_events(response.iter_lines()))
    assert [e.get("id") for e in resumed] == [second["id"], third["id"], None]
    assert resumed[-1]["event"] == "settled"


def test_grpc_watch_video_streams_until_settled(
    gateway: TestClient, producer: EventProducer, shared_videos: Path
) -> None:
    video_id = uploaded_video(gateway, shared_videos)
    port = gateway.app.state.runtime.grpc_port
    kept, dropped = span(video_id, 0, 2, 0.0, 6.0), span(video_id, 1, 2, 6.0, 10.29)
    with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
        health = health_pb2_grpc.HealthStub(channel)
        serving = health.Check(health_pb2.HealthCheckRequest(service="haic.v1.PipelineService"), timeout=10)
        assert serving.status == health_pb2.HealthCheckResponse.SERVING

        stub = pipeline_pb2_grpc.PipelineServiceStub(channel)
        stream = stub.WatchVideo(pipeline_pb2.WatchVideoRequest(video_id=video_id), timeout=60)
        first = next(stream)
        assert (first.WhichOneof("event"), first.topic, first.status) == ("uploaded", VIDEOS, "uploaded")
        assert first.uploaded.video_id == video_id and first.uploaded.info.width == 1280
        assert first.recorded_at.seconds > 0

        producer.deliver([candidate(video_id, kept)])
        second = next(stream)
        assert (second.WhichOneof("event"), second.status) == ("candidate", "processing")
        assert second.candidate.span.clip_id == kept.clip_id

        producer.deliver([rejected(video_id, dropped, "filter.scene", "scene_too_short", {})])
        third = next(stream)
        assert (third.WhichOneof("event"), third.status, third.verdict.reason_code) == (
            "verdict",
            "completed",
            "scene_too_short",
        )
        assert list(stream) == []  # ended once settled

        resumed = list(
            stub.WatchVideo(
                pipeline_pb2.WatchVideoRequest(video_id=video_id, after_sequence=first.sequence), timeout=30
            )
        )
        assert [p.sequence for p in resumed] == [second.sequence, third.sequence]

        with pytest.raises(grpc.RpcError) as unknown:
            list(stub.WatchVideo(pipeline_pb2.WatchVideoRequest(video_id="vid_000000000000000000000000"), timeout=10))
        assert unknown.value.code() == grpc.StatusCode.NOT_FOUND
        with pytest.raises(grpc.RpcError) as empty:
            list(stub.WatchVideo(pipeline_pb2.WatchVideoRequest(), timeout=10))
        assert empty.value.code() == grpc.StatusCode.INVALID_ARGUMENT
