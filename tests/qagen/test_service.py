"""The QA generator service: the template backend on captions (the juggler's real one and the hand-written
two-person one), its Kafka worker, and its gRPC API on a real server."""

from __future__ import annotations

from pathlib import Path

import grpc
import pytest

from haic.v1 import events_pb2, qagen_pb2, qagen_pb2_grpc
from services.captioner import pose_grounded
from services.core import topics
from services.core.bus import EventProducer, Output, Worker
from services.core.caption_text import render_caption
from services.core.grpc_server import GrpcServer, ServiceRegistration
from services.core.qa_checks.validator import validate_item, validate_set
from services.core.settings import CaptionerServiceSettings, Settings, load
from services.qagen.service import STAGE, CaptionNotUsableError, ClipQAGenerator, QAGeneratorServicer, make_handler
from tests.captioner.record_fixture import FIXTURE, SAMPLE
from tests.kafka_helpers import read_topic, running
from tests.qagen import two_people_caption


def judged(caption: events_pb2.Caption, passed: bool = True) -> events_pb2.Caption:
    caption.judgement.CopyFrom(events_pb2.Judgement(passed=passed, judge="rules"))
    # The text as the captioner renders it (the hand-written caption carries a placeholder).
    caption.text = render_caption(caption.subjects, caption.interactions, caption.span.end_s - caption.span.start_s)
    return caption


@pytest.fixture(scope="module")
def juggler_caption() -> events_pb2.Caption:
    clip = events_pb2.ClipVerdict.FromString(FIXTURE.read_bytes())
    return judged(pose_grounded.caption_clip(clip, SAMPLE, 3, load(CaptionerServiceSettings)))


def test_the_juggler_caption_yields_validated_items_carrying_their_caption(
    make_settings, juggler_caption: events_pb2.Caption
) -> None:
    generator = ClipQAGenerator(make_settings())
    qa, dropped = generator.generate(juggler_caption)
    assert qa.backend == "templates" and not dropped
    assert qa.caption == juggler_caption and qa.span == juggler_caption.span
    categories = {item.category for item in qa.items}
    assert {events_pb2.QA_CATEGORY_COUNT, events_pb2.QA_CATEGORY_ACTION_SEQUENCE} <= categories
    for item in qa.items:
        assert validate_item(item, juggler_caption).ok, item
    assert validate_set(list(qa.items), juggler_caption).ok
    # Same caption, same seed: the same items.
    again, _ = generator.generate(juggler_caption)
    assert list(again.items) == list(qa.items)


def test_an_unusable_caption_is_refused(make_settings) -> None:
    with pytest.raises(CaptionNotUsableError):
        ClipQAGenerator(make_settings()).generate(events_pb2.Caption(video_id="vid"))


@pytest.mark.kafka
def test_the_worker_turns_passed_captions_into_qa_and_skips_failed_ones(kafka_settings: Settings) -> None:
    passed = judged(two_people_caption())
    failed = judged(two_people_caption(), passed=False)
    failed.span.clip_id = "clip_failed"
    poison = events_pb2.Caption(video_id="vid_poison", judgement=events_pb2.Judgement(passed=True))
    EventProducer(kafka_settings, "test").deliver(
        [
            Output(topics.CAPTIONS, failed.video_id, failed),
            Output(topics.CAPTIONS, poison.video_id, poison),
            Output(topics.CAPTIONS, passed.video_id, passed),
        ]
    )
    worker = Worker(kafka_settings, STAGE.name, [topics.CAPTIONS], make_handler(ClipQAGenerator(kafka_settings)))
    with running(worker):
        [(key, qa)] = read_topic(kafka_settings, topics.QA, expected=1, timeout_s=60)
        [(_, letter)] = read_topic(kafka_settings, topics.DEADLETTER, expected=1)
    assert key == passed.video_id and qa.span.clip_id == passed.span.clip_id
    assert {item.category for item in qa.items} >= {
        events_pb2.QA_CATEGORY_INTERACTION,
        events_pb2.QA_CATEGORY_ACTION_DETAILS,
        events_pb2.QA_CATEGORY_ACTION_SEQUENCE,
        events_pb2.QA_CATEGORY_COUNT,
        events_pb2.QA_CATEGORY_ATTRIBUTE,
    }
    assert letter.error_type == "CaptionNotUsableError"


def test_generate_over_grpc(make_settings, tmp_path: Path) -> None:
    generator = ClipQAGenerator(make_settings())
    registration = ServiceRegistration(
        qagen_pb2_grpc.add_QAGeneratorServiceServicer_to_server,
        QAGeneratorServicer(generator),
        "haic.v1.QAGeneratorService",
    )
    server = GrpcServer([registration], port=0)
    server.start()
    try:
        with grpc.insecure_channel(f"127.0.0.1:{server.port}") as channel:
            stub = qagen_pb2_grpc.QAGeneratorServiceStub(channel)
            reply = stub.Generate(qagen_pb2.GenerateRequest(caption=judged(two_people_caption()), per_category=1))
            per_category: dict[int, int] = {}
            for item in reply.qa.items:
                per_category[item.category] = per_category.get(item.category, 0) + 1
            assert reply.qa.items and set(per_category.values()) == {1}
            with pytest.raises(grpc.RpcError) as refused:
                stub.Generate(qagen_pb2.GenerateRequest(caption=judged(two_people_caption(), passed=False)))
            assert refused.value.code() == grpc.StatusCode.FAILED_PRECONDITION
    finally:
        server.stop()
