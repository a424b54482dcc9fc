"""The catalog fed through Kafka: hand-produced filter and pose events, read back through the API."""

from __future__ import annotations

from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from services.core.bus import EventProducer
from services.core.settings import Settings

from .conftest import AUTH, candidate, rejected, span, upload, wait_caught_up, wait_for_status

pytestmark = pytest.mark.kafka


def test_filter_outcomes_make_the_video_processing_then_completed(
    gateway: TestClient, gateway_settings: Settings, producer: EventProducer, shared_videos: Path
) -> None:
    video_id = upload(gateway, shared_videos / "juggle_one_person.mp4").json()["video_id"]
    kept, dropped = span(video_id, 0, 2, 0.0, 6.0), span(video_id, 1, 2, 6.0, 10.29)
    producer.deliver([candidate(video_id, kept)])
    processing = wait_for_status(gateway, video_id, "processing")
    assert (processing["settled"], processing["clip_count"]) == (False, 2)
    assert [(c["clip_id"], c["verdict"]) for c in processing["clips"]] == [(kept.clip_id, "candidate")]

    too_short = rejected(video_id, dropped, "filter.scene", "scene_too_short", {"duration_s": 4.29, "min_clip_s": 5.0})
    producer.deliver([too_short])
    completed = wait_for_status(gateway, video_id, "completed")
    assert completed["settled"] is True
    assert [(c["clip_index"], c["verdict"], c["stage"], c["reason_code"]) for c in completed["clips"]] == [
        (0, "candidate", "filter", ""),
        (1, "rejected", "filter.scene", "scene_too_short"),
    ]
    assert completed["clips"][1]["values"] == {"duration_s": 4.29, "min_clip_s": 5.0}
    assert completed["clips"][1]["start_s"] == 6.0 and completed["clips"][1]["end_s"] == 10.29

    clip = gateway.get(f"/v1/clips/{dropped.clip_id}", headers=AUTH).json()
    assert (clip["video_id"], clip["clip_count"], clip["verdict"]) == (video_id, 2, "rejected")

    # the stages produce the same messages again (e.g. after a crash before their commit)
    events_before = gateway.app.state.runtime.catalog.events_after(video_id, 0)
    producer.deliver([candidate(video_id, kept), too_short])
    wait_caught_up(gateway, gateway_settings)
    again = gateway.get(f"/v1/videos/{video_id}", headers=AUTH).json()
    assert again["clips"] == completed["clips"] and again["status"] == "completed"
    assert gateway.app.state.runtime.catalog.events_after(video_id, 0) == events_before
    assert len(events_before) == 3  # uploaded, candidate, rejected

    metrics = gateway.get("/metrics").text
    assert 'haic_gateway_request_seconds_count{method="GET",route="/v1/videos/{video_id}",status="200"}' in metrics
    assert 'haic_gateway_uploads_total{outcome="accepted"}' in metrics


def test_every_clip_rejected_and_video_level_rejection(
    gateway: TestClient, producer: EventProducer, shared_videos: Path
) -> None:
    static = upload(gateway, shared_videos / "static_no_person.mp4").json()["video_id"]
    pan = upload(gateway, shared_videos / "camera_pan_static_person.mp4").json()["video_id"]
    producer.deliver(
        [
            rejected(static, span(static, 0, 1, 0.0, 10.29), "pose.human_existence", "no_person", {"people": 0}),
            rejected(pan, None, "filter.metadata", "no_verb", {}),
        ]
    )
    static_body = wait_for_status(gateway, static, "rejected")
    assert static_body["rejection"]["reason_code"] == "all_clips_rejected"
    assert static_body["clips"][0]["stage"] == "pose.human_existence"
    pan_body = wait_for_status(gateway, pan, "rejected")
    assert pan_body["rejection"]["stage"] == "filter.metadata"
    assert pan_body["rejection"]["reason_code"] == "no_verb"
    assert (pan_body["clips"], pan_body["settled"]) == ([], True)

    listed = gateway.get("/v1/videos", params={"status": "rejected"}, headers=AUTH).json()
    assert {item["video_id"] for item in listed["items"]} == {static, pan}
    assert (listed["total"], listed["limit"], listed["offset"]) == (2, 20, 0)
    capped = gateway.get("/v1/videos", params={"limit": 1000}, headers=AUTH).json()
    assert capped["limit"] == 100
    assert gateway.get("/v1/videos", params={"status": "bogus"}, headers=AUTH).status_code == 422


def test_unknown_video_and_clip_are_404(gateway: TestClient) -> None:
    for path, code in [
        ("/v1/videos/vid_000000000000000000000000", "video_not_found"),
        ("/v1/videos/vid_000000000000000000000000/events", "video_not_found"),
        ("/v1/clips/clip_0000000000000000", "clip_not_found"),
    ]:
        response = gateway.get(path, headers=AUTH)
        assert response.status_code == 404
        assert response.json()["detail"]["code"] == code
        assert "not in the catalog" in response.json()["detail"]["message"]
