"""End to end: the launcher starts the broker and every service; the shared videos go through the gateway.

The stages built so far end at the filter, so a label's verdict is checked at the filter stage:
videos labelled `reject` for a pose-stage reason (no person, static person) still pass the filter.
"""

from __future__ import annotations

import signal
from collections.abc import Iterator
from pathlib import Path

import pytest

from clients.sdk import GatewayError, HaicClient
from services.core.settings import Settings
from services.local import LocalStack, StackPorts
from tests.kafka_helpers import wait_until

pytestmark = [pytest.mark.e2e, pytest.mark.kafka]

DESCRIPTIONS = {
    "juggle_one_person.mp4": "A man juggles a football with his feet",
    "pedestrians_small_long.avi": "People walk across a square",
    "static_no_person.mp4": "Trees sway in the wind",
    "camera_pan_static_person.mp4": "A woman stands with her dog",
    "slideshow_three_stills.mp4": "People pose for photos",
    "test_card_no_person.mp4": "A test card counts down",
}

# What the filter stage must conclude for each labelled video (clip counts of 5-20 s scenes).
FILTER_EXPECTATION = {
    "juggle_one_person.mp4": {"status": "completed", "candidates": 1},
    "pedestrians_small_long.avi": {"status": "rejected", "candidates": 0, "reason_code": "scene_too_long"},
    "static_no_person.mp4": {"status": "completed", "candidates": 1},
    "camera_pan_static_person.mp4": {"status": "completed", "candidates": 1},
    "slideshow_three_stills.mp4": {"status": "completed", "candidates": 3},
    "test_card_no_person.mp4": {"status": "completed", "candidates": 1},
}


@pytest.fixture
def stack(tmp_path: Path) -> Iterator[LocalStack]:
    settings = Settings(data_dir=tmp_path / "haic", api_keys=["e2e-key"])
    with LocalStack(settings, StackPorts.free()) as running:
        yield running
    assert all(c.process.poll() is not None for c in running.children) or not running.children


def test_shared_videos_reach_their_filter_stage_verdicts(
    stack: LocalStack, shared_videos: Path, video_labels: dict[str, dict]
) -> None:
    assert set(FILTER_EXPECTATION) == set(video_labels), "labels.json changed: update FILTER_EXPECTATION"
    with HaicClient(stack.gateway_url, stack.api_key) as client:
        ids = {
            name: client.submit(shared_videos / name, description=DESCRIPTIONS[name])["video_id"]
            for name in video_labels
        }
        videos = {name: client.wait(video_id, timeout_s=300) for name, video_id in ids.items()}

    for name, video in videos.items():
        expected = FILTER_EXPECTATION[name]
        candidates = [c for c in video["clips"] if c["verdict"] == "candidate"]
        assert video["status"] == expected["status"], (name, video)
        assert len(candidates) == expected["candidates"], (name, video["clips"])
        assert len(candidates) >= video_labels[name]["accepted_clips"], name
        for clip in video["clips"]:
            assert clip["verdict"] == "candidate" or (clip["reason_code"] and clip["values"]), clip
            if clip["verdict"] == "candidate":
                assert 5.0 <= clip["end_s"] - clip["start_s"] <= 20.0
        if "reason_code" in expected:
            reasons = {c["reason_code"] for c in video["clips"]} | {(video.get("rejection") or {}).get("reason_code")}
            assert expected["reason_code"] in reasons, video
            assert all(c["values"].get("duration_s", 0) > 20 for c in video["clips"])


def test_filter_killed_mid_video_leaves_each_clip_once(stack: LocalStack, shared_videos: Path) -> None:
    names = [
        "slideshow_three_stills.mp4",
        "juggle_one_person.mp4",
        "test_card_no_person.mp4",
        "camera_pan_static_person.mp4",
    ]
    with HaicClient(stack.gateway_url, stack.api_key) as client:
        ids = [client.submit(shared_videos / n, description=DESCRIPTIONS[n])["video_id"] for n in names]
        # Kill the filter with SIGKILL as soon as its first outputs reach the catalog: the rest of the
        # queue is in flight or pending, and nothing gets the chance to commit gracefully.
        assert wait_until(lambda: any(client.video(i)["clips"] for i in ids), timeout_s=120)
        filter_process = stack.child("filter").process
        filter_process.send_signal(signal.SIGKILL)
        filter_process.wait(10)
        stack.restart("filter")
        videos = [client.wait(i, timeout_s=300) for i in ids]

    expected_counts = [3, 1, 1, 1]
    for video, expected in zip(videos, expected_counts, strict=True):
        clip_ids = [c["clip_id"] for c in video["clips"]]
        assert len(clip_ids) == len(set(clip_ids)) == expected == video["clip_count"], video
        assert video["status"] == "completed"


def test_bad_upload_emits_nothing_and_stack_keeps_working(
    stack: LocalStack, tmp_path: Path, shared_videos: Path
) -> None:
    not_a_video = tmp_path / "notes.txt"
    not_a_video.write_text("hello, this is not a video\n")
    with HaicClient(stack.gateway_url, stack.api_key) as client:
        with pytest.raises(GatewayError) as failure:
            client.submit(not_a_video)
        assert failure.value.status_code == 415 and failure.value.code == "not_a_video"
        assert client.videos()["total"] == 0
        video_id = client.submit(shared_videos / "juggle_one_person.mp4", description="A man juggles")["video_id"]
        assert client.wait(video_id, timeout_s=120)["status"] == "completed"
