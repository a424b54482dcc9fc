"""The pose-grounded captioner on the juggling sample's real accepted verdict (recorded from the pose
stage by tests/captioner/record_fixture.py), through the service object and its Kafka worker."""

from __future__ import annotations

from pathlib import Path

import pytest

from haic.v1 import events_pb2
from services.captioner.service import STAGE, ClipCaptioner, InvalidClipError, make_handler
from services.core import topics
from services.core.bus import EventProducer, Output, Worker
from services.core.settings import Settings
from services.core.storage import LocalStorage
from tests.captioner.record_fixture import FIXTURE, SAMPLE
from tests.kafka_helpers import read_topic, running


@pytest.fixture
def juggle() -> events_pb2.ClipVerdict:
    verdict = events_pb2.ClipVerdict.FromString(FIXTURE.read_bytes())
    verdict.storage_uri = SAMPLE.as_uri()  # recorded in another checkout
    return verdict


@pytest.fixture
def captioner(make_settings) -> ClipCaptioner:
    return ClipCaptioner(make_settings(storage_url=str(SAMPLE.parent)), LocalStorage(SAMPLE.parent))


def test_the_juggler_gets_one_subject_with_colours_and_evidence_backed_actions(
    captioner: ClipCaptioner, juggle: events_pb2.ClipVerdict
) -> None:
    caption = captioner.caption(juggle)
    assert caption.backend == "pose-grounded"
    [subject] = caption.subjects
    assert subject.track_id == juggle.dense_tracks[0].track_id and subject.label
    colours = {g.color for g in subject.attributes.clothing}
    assert subject.attributes.clothing and colours, subject.attributes
    assert not subject.attributes.gender  # no model for it here: left out, not guessed
    assert subject.actions, caption.text
    for action in subject.actions:
        assert (
            juggle.span.start_s - 0.05 <= action.evidence.start_s <= action.evidence.end_s <= juggle.span.end_s + 0.05
        )
        assert action.evidence.signals, action
    assert caption.text.startswith("The main character is one person.")
    assert caption.judgement.judge == "rules"
    assert caption.judgement.passed, list(caption.judgement.reasons)


def test_a_rejected_or_trackless_clip_is_refused(captioner: ClipCaptioner, juggle: events_pb2.ClipVerdict) -> None:
    rejected = events_pb2.ClipVerdict()
    rejected.CopyFrom(juggle)
    rejected.verdict = events_pb2.VERDICT_REJECTED
    with pytest.raises(InvalidClipError):
        captioner.caption(rejected)
    trackless = events_pb2.ClipVerdict()
    trackless.CopyFrom(juggle)
    trackless.ClearField("tracks")
    trackless.ClearField("dense_tracks")
    with pytest.raises(InvalidClipError):
        captioner.caption(trackless)


@pytest.mark.kafka
def test_the_worker_captions_accepted_clips_and_dead_letters_a_poison_one(
    kafka_settings: Settings, juggle: events_pb2.ClipVerdict, tmp_path: Path
) -> None:
    settings = kafka_settings.model_copy(update={"storage_url": str(SAMPLE.parent)})
    poison = events_pb2.ClipVerdict()
    poison.CopyFrom(juggle)
    poison.storage_uri = (SAMPLE.parent / "missing.mp4").as_uri()
    EventProducer(settings, "test").deliver(
        [Output(topics.CLIPS_ACCEPTED, juggle.video_id, poison), Output(topics.CLIPS_ACCEPTED, juggle.video_id, juggle)]
    )
    worker = Worker(
        settings,
        STAGE.name,
        [topics.CLIPS_ACCEPTED],
        make_handler(ClipCaptioner(settings, LocalStorage(SAMPLE.parent))),
    )
    with running(worker):
        [(key, caption)] = read_topic(settings, topics.CAPTIONS, expected=1, timeout_s=60)
        [(_, letter)] = read_topic(settings, topics.DEADLETTER, expected=1)
    assert key == juggle.video_id and caption.span.clip_id == juggle.span.clip_id and len(caption.subjects) == 1
    assert letter.error_type == "VideoUnreadableError"  # one unreadable-video error for every stage (issue 14)
