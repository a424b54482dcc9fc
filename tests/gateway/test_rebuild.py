"""A gateway restarted on an empty catalog rebuilds it from Kafka."""

from __future__ import annotations

import contextlib
from pathlib import Path

import pytest

from haic.v1 import events_pb2
from services.core import topics
from services.core.bus import EventProducer, Output
from services.core.settings import Settings
from tests.kafka_helpers import wait_until

from .conftest import AUTH, candidate, rejected, running_gateway, span, upload, wait_for_status

pytestmark = pytest.mark.kafka


def without_times(body: dict) -> dict:
    return {key: value for key, value in body.items() if key not in {"created_at", "updated_at"}}


def test_catalog_rebuilt_after_restart_with_an_empty_database(
    gateway_settings: Settings, producer: EventProducer, shared_videos: Path
) -> None:
    with running_gateway(gateway_settings) as client:
        juggle = upload(client, shared_videos / "juggle_one_person.mp4", description="a man juggles").json()
        slideshow = upload(client, shared_videos / "slideshow_three_stills.mp4").json()
        test_card = upload(client, shared_videos / "test_card_no_person.mp4").json()
        juggle_id, slideshow_id, card_id = juggle["video_id"], slideshow["video_id"], test_card["video_id"]
        letter = events_pb2.DeadLetter(
            original_topic=topics.VIDEOS,
            key=card_id.encode(),
            error="boom",
            error_type="RuntimeError",
            service="filter",
        )
        producer.deliver(
            [
                candidate(juggle_id, span(juggle_id, 0, 1, 0.0, 10.29)),
                *(
                    rejected(
                        slideshow_id, span(slideshow_id, i, 3, 6.0 * i, 6.0 * i + 6), "pose.human_action", "static", {}
                    )
                    for i in range(3)
                ),
                Output(topics.DEADLETTER, card_id, letter),
            ]
        )
        expected = {
            juggle_id: wait_for_status(client, juggle_id, "completed"),
            slideshow_id: wait_for_status(client, slideshow_id, "rejected"),
            card_id: wait_for_status(client, card_id, "failed"),
        }
        events_before = {
            video_id: [
                (e.topic, e.status, e.payload) for e in client.app.state.runtime.catalog.events_after(video_id, 0)
            ]
            for video_id in expected
        }

    catalog_file = gateway_settings.data_dir / "catalog.db"
    for path in catalog_file.parent.glob("catalog.db*"):  # the database and its WAL files
        path.unlink()
    assert not catalog_file.exists()

    with running_gateway(gateway_settings) as client:
        for video_id, before in expected.items():
            wanted = sorted((topic, payload) for topic, _, payload in events_before[video_id])

            def rebuilt_log(video_id: str = video_id) -> list:
                return sorted((e.topic, e.payload) for e in client.app.state.runtime.catalog.events_after(video_id, 0))

            # Topics are read in parallel after a rebuild: a clip's verdict can settle the status before the
            # upload event fills in the video's details, so wait for every topic's events before comparing.
            wait_for_status(client, video_id, before["status"])
            with contextlib.suppress(AssertionError):  # on a timeout the assertions below say what differs
                wait_until(lambda v=video_id, w=wanted: rebuilt_log(v) == w, 30, f"{video_id}'s events")
            after = wait_for_status(client, video_id, before["status"])
            assert without_times(after) == without_times(before)
            # compare the logs as sets
            assert rebuilt_log() == wanted
        assert expected[juggle_id]["description"] == "a man juggles"
        assert client.get("/v1/videos", headers=AUTH).json()["total"] == 3
        # the rebuilt catalog still deduplicates uploads
        again = upload(client, shared_videos / "juggle_one_person.mp4")
        assert (again.status_code, again.json()["duplicate"]) == (200, True)
