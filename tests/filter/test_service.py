"""The filter service end to end: its Kafka worker against a real Apache Kafka broker, and its gRPC API."""

from __future__ import annotations

import shutil
from collections.abc import Callable, Iterator
from pathlib import Path

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc
from prometheus_client import REGISTRY

from haic.v1 import events_pb2, filter_pb2, filter_pb2_grpc
from services.core import ids, topics
from services.core.broker import EmbeddedBroker
from services.core.bus import EventProducer, Output, Worker, ensure_topics
from services.core.grpc_server import GrpcServer, ServiceRegistration
from services.core.settings import Settings
from services.core.storage import LocalStorage
from services.core.video import probe
from services.filter.service import STAGE, FilterServicer, make_handler
from tests.kafka_helpers import read_topic, running


def store_video(
    storage: LocalStorage, source: Path, tmp_path: Path, video_id: str, description: str
) -> events_pb2.VideoUploaded:
    """Copies a video into the store, as the gateway would, and returns its VideoUploaded event."""
    copy = tmp_path / f"{video_id}.upload"
    shutil.copyfile(source, copy)
    return events_pb2.VideoUploaded(
        video_id=video_id,
        storage_uri=storage.put_file(copy, f"{video_id}{source.suffix}"),
        description=description,
        info=probe(source).to_proto() if source.suffix in {".mp4", ".avi"} else None,
    )


def verdict_count(stage: str, verdict: str, reason: str) -> float:
    labels = {"service": STAGE.name, "stage": stage, "verdict": verdict, "reason": reason}
    return REGISTRY.get_sample_value("haic_clip_verdicts_total", labels) or 0.0


@pytest.mark.kafka
def test_worker_splits_rejects_and_dead_letters(
    broker: EmbeddedBroker, make_settings: Callable[..., Settings], shared_videos: Path, tmp_path: Path
) -> None:
    # one partition, so the poison message is ahead of the good ones in the same log
    settings = make_settings(kafka_bootstrap_servers=broker.bootstrap_servers, retry_backoff_s=0.05, topic_partitions=1)
    storage = LocalStorage(tmp_path / "videos")
    not_a_video = tmp_path / "notes.txt"
    not_a_video.write_text("these bytes are no video")
    poison = store_video(storage, not_a_video, tmp_path, "vid_garbage", "a man waves")
    slideshow = store_video(
        storage, shared_videos / "slideshow_three_stills.mp4", tmp_path, "vid_slides", "people smile at the camera"
    )
    scenery = store_video(storage, shared_videos / "juggle_one_person.mp4", tmp_path, "vid_scenery", "a red car")
    no_verb_before = verdict_count("filter.metadata", "rejected", "no_verb")

    ensure_topics(settings)
    EventProducer(settings, "test").deliver(Output(topics.VIDEOS, e.video_id, e) for e in (poison, slideshow, scenery))
    with running(Worker(settings, STAGE.name, [topics.VIDEOS], make_handler(settings, storage))):
        candidates = read_topic(settings, topics.CLIPS_CANDIDATE, expected=3)
        rejected = read_topic(settings, topics.CLIPS_REJECTED, expected=1)
        letters = read_topic(settings, topics.DEADLETTER, expected=1)

    [(letter_key, letter)] = letters
    assert letter_key == "vid_garbage"
    assert (letter.error_type, letter.attempts, letter.service) == ("VideoUnreadableError", 1, STAGE.name)
    assert "vid_garbage" in letter.error and "not_a_video" in letter.error
    assert letter.original_topic == topics.VIDEOS

    # the worker went on past the poison message
    assert {key for key, _ in candidates} == {"vid_slides"}
    spans = sorted((c.span for _, c in candidates), key=lambda span: span.clip_index)
    assert [span.clip_index for span in spans] == [0, 1, 2]
    assert {span.clip_count for span in spans} == {3}
    assert [span.start_s for span in spans] == pytest.approx([0.0, 6.0, 12.0], abs=0.1)
    assert [span.clip_id for span in spans] == [ids.clip_id("vid_slides", s.start_s, s.end_s) for s in spans]
    assert all(c.storage_uri == slideshow.storage_uri and c.values["duration_s"] > 5 for _, c in candidates)

    [(rejected_key, verdict)] = rejected
    assert rejected_key == "vid_scenery"
    assert (verdict.stage, verdict.reason_code) == ("filter.metadata", "no_verb")
    assert "a red car" in verdict.reason
    assert verdict_count("filter.metadata", "rejected", "no_verb") == no_verb_before + 1


@pytest.fixture
def filter_stub(make_settings: Callable[..., Settings], tmp_path: Path) -> Iterator[tuple[grpc.Channel, LocalStorage]]:
    settings = make_settings()
    storage = LocalStorage(tmp_path / "videos")
    registration = ServiceRegistration(
        filter_pb2_grpc.add_FilterServiceServicer_to_server, FilterServicer(settings, storage), "haic.v1.FilterService"
    )
    server = GrpcServer([registration], port=0)
    server.start()
    channel = grpc.insecure_channel(f"localhost:{server.port}")
    try:
        yield channel, storage
    finally:
        channel.close()
        server.stop(grace_s=0)


def test_grpc_split_video(filter_stub: tuple[grpc.Channel, LocalStorage], shared_videos: Path, tmp_path: Path) -> None:
    channel, storage = filter_stub
    stub = filter_pb2_grpc.FilterServiceStub(channel)
    uploaded = store_video(storage, shared_videos / "juggle_one_person.mp4", tmp_path, "vid_juggle", "a man juggles")

    response = stub.SplitVideo(filter_pb2.SplitVideoRequest(video=uploaded), timeout=60)
    assert response.rejections == []
    [candidate] = response.candidates
    assert candidate.video_id == "vid_juggle"
    assert candidate.span.clip_id == ids.clip_id("vid_juggle", 0.0, candidate.span.end_s)
    assert candidate.span.end_s == pytest.approx(10.3, abs=0.05)
    assert (candidate.info.width, candidate.info.height) == (1280, 720)

    scenery = events_pb2.VideoUploaded()
    scenery.CopyFrom(uploaded)
    scenery.description = "the city at night"
    response = stub.SplitVideo(filter_pb2.SplitVideoRequest(video=scenery), timeout=60)
    assert response.candidates == []
    assert [r.reason_code for r in response.rejections] == ["no_verb"]

    health = health_pb2_grpc.HealthStub(channel)
    for service in ("", "haic.v1.FilterService"):
        answer = health.Check(health_pb2.HealthCheckRequest(service=service), timeout=10)
        assert answer.status == health_pb2.HealthCheckResponse.SERVING


def test_grpc_maps_errors_to_status_codes(filter_stub: tuple[grpc.Channel, LocalStorage], tmp_path: Path) -> None:
    channel, storage = filter_stub
    stub = filter_pb2_grpc.FilterServiceStub(channel)
    garbage = tmp_path / "garbage.bin"
    garbage.write_bytes(b"\x00" * 1024)
    cases = [
        (filter_pb2.SplitVideoRequest(), grpc.StatusCode.INVALID_ARGUMENT, "video is required"),
        (
            filter_pb2.SplitVideoRequest(video=events_pb2.VideoUploaded(video_id="vid_nouri")),
            grpc.StatusCode.INVALID_ARGUMENT,
            "vid_nouri: the event has no storage_uri",
        ),
        (
            filter_pb2.SplitVideoRequest(
                video=events_pb2.VideoUploaded(video_id="vid_gone", storage_uri=storage.uri("vid_gone.mp4"))
            ),
            grpc.StatusCode.NOT_FOUND,
            "vid_gone: not_found",
        ),
        (
            filter_pb2.SplitVideoRequest(
                video=events_pb2.VideoUploaded(video_id="vid_zero", storage_uri=storage.put_file(garbage, "zero.mp4"))
            ),
            grpc.StatusCode.INVALID_ARGUMENT,
            "vid_zero: not_a_video",
        ),
    ]
    for request, code, message in cases:
        with pytest.raises(grpc.RpcError) as raised:
            stub.SplitVideo(request, timeout=30)
        assert raised.value.code() == code
        assert message in raised.value.details()
