"""The catalog as a Kafka sink, fed Event objects directly, on SQLite and on a real PostgreSQL server."""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest
import sqlalchemy as sa
from google.protobuf.message import Message

from haic.v1 import events_pb2
from services.core import topics
from services.core.bus import Event, Output, PoisonMessageError
from services.gateway.catalog import Catalog
from services.gateway.catalog_schema import clips, events, videos
from services.gateway.schemas import VideoDetail
from services.gateway.status import VideoStatus

from .conftest import accepted, candidate, rejected, span

VIDEO = "vid_0123456789abcdef01234567"


@pytest.fixture
def catalog(catalog_url: str) -> Iterator[Catalog]:
    opened = Catalog(catalog_url, final_stage="filter")
    yield opened
    opened.close()


class Feed:
    """Hands messages to the catalog as the Worker would, with increasing offsets per topic."""

    def __init__(self, catalog: Catalog) -> None:
        self.catalog = catalog
        self.offsets: dict[str, itertools.count] = {}
        self.delivered: list[Event] = []

    def __call__(self, output: Output | tuple[str, Message], partition: int = 0) -> Event:
        topic, message = (output.topic, output.message) if isinstance(output, Output) else output
        offset = next(self.offsets.setdefault(topic, itertools.count()))
        event = Event(topic, partition, offset, getattr(message, "video_id", "") or VIDEO, message)
        assert list(self.catalog.handle(event)) == []  # a sink: no outputs
        self.delivered.append(event)
        return event


def announced(video_id: str = VIDEO) -> tuple[str, events_pb2.VideoUploaded]:
    info = events_pb2.VideoInfo(width=1280, height=720, fps=24, duration_s=30, frame_count=720, codec="h264")
    return topics.VIDEOS, events_pb2.VideoUploaded(video_id=video_id, sha256="ab" * 32, size_bytes=1000, info=info)


def event_rows(catalog: Catalog) -> list[tuple[str, str]]:
    return [(record.topic, record.status) for record in catalog.events_after(VIDEO, 0)]


def detail(catalog: Catalog, video_id: str = VIDEO) -> dict:
    view = catalog.find_video(video_id)
    assert view is not None
    return VideoDetail.from_view(view).model_dump(mode="json")


def test_clip_outcomes_move_the_video_from_uploaded_to_completed(catalog: Catalog) -> None:
    feed = Feed(catalog)
    clip0, clip1, clip2 = (span(VIDEO, i, 3, 10.0 * i, 10.0 * i + 8) for i in range(3))
    feed(announced())
    assert catalog.video_state(VIDEO).status is VideoStatus.uploaded
    feed(candidate(VIDEO, clip0))
    feed(rejected(VIDEO, clip1, "filter.scene", "scene_too_short", {"duration_s": 3.0, "min_clip_s": 5.0}))
    state = catalog.video_state(VIDEO)
    assert (state.status, state.settled) == (VideoStatus.processing, False)
    feed(candidate(VIDEO, clip2))
    state = catalog.video_state(VIDEO)
    assert (state.status, state.settled) == (VideoStatus.completed, True)

    body = detail(catalog)
    assert body["clip_count"] == 3 and body["rejection"] is None and body["info"]["width"] == 1280
    assert [(c["clip_index"], c["verdict"], c["stage"], c["reason_code"]) for c in body["clips"]] == [
        (0, "candidate", "filter", ""),
        (1, "rejected", "filter.scene", "scene_too_short"),
        (2, "candidate", "filter", ""),
    ]
    assert body["clips"][1]["values"] == {"duration_s": 3.0, "min_clip_s": 5.0}
    assert event_rows(catalog) == [
        (topics.VIDEOS, "uploaded"),
        (topics.CLIPS_CANDIDATE, "processing"),
        (topics.CLIPS_REJECTED, "processing"),
        (topics.CLIPS_CANDIDATE, "completed"),
    ]
    sequences = [record.sequence for record in catalog.events_after(VIDEO, 0)]
    assert sequences == sorted(sequences) and len(set(sequences)) == 4
    assert [r.sequence for r in catalog.events_after(VIDEO, sequences[1])] == sequences[2:]


def test_every_clip_rejected_means_the_video_is_rejected(catalog: Catalog) -> None:
    feed = Feed(catalog)
    feed(announced())
    for i in range(2):
        feed(rejected(VIDEO, span(VIDEO, i, 2, i * 6.0, i * 6.0 + 4), "filter.scene", "scene_too_short", {}))
    body = detail(catalog)
    assert (body["status"], body["settled"]) == ("rejected", True)
    assert body["rejection"]["reason_code"] == "all_clips_rejected"
    assert body["rejection"]["values"] == {"scene_too_short": 2.0}


def test_video_level_rejection(catalog: Catalog) -> None:
    feed = Feed(catalog)
    feed(announced())
    feed(rejected(VIDEO, None, "filter.metadata", "low_resolution", {"short_side_px": 240.0, "min_short_side_px": 360}))
    body = detail(catalog)
    assert (body["status"], body["settled"], body["clips"]) == ("rejected", True, [])
    assert body["rejection"] == {
        "stage": "filter.metadata",
        "reason_code": "low_resolution",
        "reason": body["rejection"]["reason"],
        "values": {"short_side_px": 240.0, "min_short_side_px": 360.0},
    }


def test_redelivered_message_is_skipped_by_its_stored_offset(catalog: Catalog) -> None:
    feed = Feed(catalog)
    feed(announced())
    first = feed(candidate(VIDEO, span(VIDEO, 0, 2, 0, 8)))
    assert catalog.load_offset(topics.CLIPS_CANDIDATE, 0) == first.offset + 1
    assert catalog.load_offset(topics.CLIPS_CANDIDATE, 1) is None
    before = detail(catalog)
    catalog.handle(first)  # the same Kafka message again (a consumer restarted before committing)
    assert detail(catalog)["clips"] == before["clips"]
    assert len(event_rows(catalog)) == 2


def test_message_produced_twice_adds_no_second_clip_or_event(catalog: Catalog) -> None:
    feed = Feed(catalog)
    feed(announced())
    clip = span(VIDEO, 0, 1, 0, 8)
    feed(candidate(VIDEO, clip))
    feed(candidate(VIDEO, clip))  # a stage that crashed before committing produces it again, at a new offset
    feed(announced())
    with catalog.engine.connect() as conn:
        assert conn.execute(sa.select(sa.func.count()).select_from(clips)).scalar_one() == 1
        assert conn.execute(sa.select(sa.func.count()).select_from(events)).scalar_one() == 2
    assert detail(catalog)["status"] == "completed"


def test_outcomes_arriving_out_of_order_across_topics(catalog_url: str) -> None:
    """With pose deployed: an acceptance read before the candidate, and clip events before the upload."""
    catalog = Catalog(catalog_url, final_stage="pose")
    try:
        feed = Feed(catalog)
        clip0, clip1 = span(VIDEO, 0, 2, 0, 8), span(VIDEO, 1, 2, 9, 17)
        feed(accepted(VIDEO, clip0))
        assert catalog.video_state(VIDEO).status is VideoStatus.processing  # row created before VideoUploaded
        feed(candidate(VIDEO, clip0))  # late: does not demote the accepted clip
        feed(candidate(VIDEO, clip1))
        assert catalog.video_state(VIDEO).status is VideoStatus.processing  # clip1 has not passed pose yet
        feed(rejected(VIDEO, clip1, "pose.human_action", "static_person", {"keypoint_l1": 0.01}))
        feed(announced())
        body = detail(catalog)
        assert (body["status"], body["settled"], body["sha256"]) == ("completed", True, "ab" * 32)
        assert [(c["verdict"], c["stage"]) for c in body["clips"]] == [
            ("accepted", "pose.human_action"),
            ("rejected", "pose.human_action"),
        ]
    finally:
        catalog.close()


def test_later_stages_are_recorded_on_the_clip(catalog_url: str) -> None:
    catalog = Catalog(catalog_url, final_stage="scoring")
    try:
        feed = Feed(catalog)
        good, bad = span(VIDEO, 0, 2, 0, 8), span(VIDEO, 1, 2, 9, 17)
        feed(announced())
        for clip in (good, bad):
            feed(candidate(VIDEO, clip))
            feed(accepted(VIDEO, clip))
        judged = events_pb2.Judgement(passed=True, judge="rules")
        feed((topics.CAPTIONS, events_pb2.Caption(video_id=VIDEO, span=good, text="A man juggles.", judgement=judged)))
        failed_judgement = events_pb2.Judgement(passed=False, reasons=["no action stated"], scores={"coverage": 0.1})
        feed((topics.CAPTIONS, events_pb2.Caption(video_id=VIDEO, span=bad, text="A man.", judgement=failed_judgement)))
        feed((topics.QA, events_pb2.QASet(video_id=VIDEO, span=good, items=[events_pb2.QAItem(item_id="q1")] * 3)))
        assert catalog.video_state(VIDEO).status is VideoStatus.processing
        for answerer in ("model-a", "model-b"):
            score = events_pb2.ScoreRecord(video_id=VIDEO, span=good, answerer=answerer, average=0.75)
            feed((topics.SCORES, score))
        assert catalog.video_state(VIDEO).status is VideoStatus.completed
        good_row, bad_row = catalog.find_clip(good.clip_id), catalog.find_clip(bad.clip_id)
        assert (good_row["verdict"], good_row["stage"], good_row["caption_text"]) == (
            "accepted",
            "scoring",
            "A man juggles.",
        )
        assert (good_row["caption_judge_passed"], good_row["qa_item_count"], good_row["score_average"]) == (
            True,
            3,
            0.75,
        )
        assert (bad_row["verdict"], bad_row["stage"], bad_row["reason_code"]) == (
            "rejected",
            "captioner.judge",
            "caption_judgement_failed",
        )
        assert bad_row["caption_judge_passed"] is False
        assert sum(topic == topics.SCORES for topic, _ in event_rows(catalog)) == 2  # one per answerer
    finally:
        catalog.close()


def test_a_score_over_many_clips_creates_no_video(catalog: Catalog) -> None:
    leaderboard = events_pb2.ScoreRecord(answerer="random", setting="caption", average=0.25)
    assert list(catalog.handle(Event(topics.SCORES, 0, 0, "eval:random", leaderboard))) == []
    assert catalog.list_videos(None, 10, 0)[1] == 0


def test_dead_letter_fails_the_video(catalog: Catalog) -> None:
    feed = Feed(catalog)
    feed(announced())
    letter = events_pb2.DeadLetter(
        original_topic=topics.VIDEOS,
        partition=1,
        offset=7,
        key=VIDEO.encode(),
        error="decoder crashed",
        error_type="RuntimeError",
        attempts=3,
        service="filter",
    )
    feed((topics.DEADLETTER, letter))
    feed((topics.DEADLETTER, letter))  # the same dead letter again: listed once
    body = detail(catalog)
    assert (body["status"], body["settled"]) == ("failed", True)
    assert body["dead_letters"] == [
        {
            "topic": topics.VIDEOS,
            "error": "decoder crashed",
            "error_type": "RuntimeError",
            "attempts": 3,
            "service": "filter",
        }
    ]
    # a dead letter without any video id is kept but touches no video
    catalog.handle(
        Event(topics.DEADLETTER, 0, 99, "", events_pb2.DeadLetter(original_topic=topics.QA, service="qagen"))
    )
    assert len(event_rows(catalog)) == 2


def test_message_without_video_id_is_poison(catalog: Catalog) -> None:
    with pytest.raises(PoisonMessageError, match="no video id"):
        catalog.handle(Event(topics.CLIPS_CANDIDATE, 2, 5, "", events_pb2.ClipCandidate()))
    assert catalog.load_offset(topics.CLIPS_CANDIDATE, 2) is None  # nothing committed


def test_concurrent_identical_registrations_insert_once(catalog: Catalog) -> None:
    _, message = announced()
    assert catalog.register_upload(message) is True
    assert catalog.register_upload(message) is False
    assert catalog.video_state(VIDEO).status is VideoStatus.uploaded
    catalog.forget_upload(VIDEO)  # announcing failed: a retry may register it again
    assert catalog.video_state(VIDEO) is None
    assert catalog.register_upload(message) is True


def test_list_videos_filters_and_pages(catalog: Catalog) -> None:
    feed = Feed(catalog)
    ids = [f"vid_{i:024d}" for i in range(5)]
    for video_id in ids:
        feed(announced(video_id))
    feed(rejected(ids[0], None, "filter.metadata", "no_verb", {}))
    rows, total = catalog.list_videos(None, limit=2, offset=0)
    assert (len(rows), total) == (2, 5)
    rows, total = catalog.list_videos("uploaded", limit=10, offset=1)
    assert (len(rows), total) == (3, 4)
    rows, total = catalog.list_videos("rejected", limit=10, offset=0)
    assert [r["video_id"] for r in rows] == [ids[0]] and total == 1


def test_only_one_caller_claims_a_stale_unannounced_registration(catalog: Catalog) -> None:
    _, message = announced()
    catalog.register_upload(message)
    grace = timedelta(minutes=5)
    assert catalog.claim_stale_registration(VIDEO, datetime.now(UTC) - grace) is False  # recent: not stale
    with catalog.engine.begin() as conn:  # as if registered an hour ago and never announced
        conn.execute(
            sa.update(videos)
            .where(videos.c.video_id == VIDEO)
            .values(created_at=datetime.now(UTC) - timedelta(hours=1))
        )
    assert catalog.claim_stale_registration(VIDEO, datetime.now(UTC) - grace) is True
    assert catalog.claim_stale_registration(VIDEO, datetime.now(UTC) - grace) is False  # claimed: renewed
    Feed(catalog)(announced())  # once the catalog has seen the announcement, nobody claims it
    assert catalog.claim_stale_registration(VIDEO, datetime.now(UTC) + timedelta(hours=1)) is False
