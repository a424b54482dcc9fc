"""End to end: the launcher starts the broker, Triton and every service; the shared videos go through
the gateway, Kafka, the filter, the pose stage and the captioner, and each reaches its labelled verdict.
"""

from __future__ import annotations

import signal
from collections.abc import Iterator
from pathlib import Path

import pytest

from clients.sdk import GatewayError, HaicClient
from haic.v1 import events_pb2
from haic_tools.launcher import LocalStack, StackPorts
from services.core import topics
from services.core.settings import Settings
from tests.captioner.two_people import two_people_clip
from tests.kafka_helpers import read_topic_to_end, wait_until

pytestmark = [pytest.mark.e2e, pytest.mark.kafka]

DESCRIPTIONS = {
    "juggle_one_person.mp4": "A man juggles a football with his feet",
    "pedestrians_small_long.avi": "People walk across a square",
    "static_no_person.mp4": "Trees sway in the wind",
    "camera_pan_static_person.mp4": "A woman stands with her dog",
    "slideshow_three_stills.mp4": "People pose for photos",
    "test_card_no_person.mp4": "A test card counts down",
}

# Where each labelled video ends (labels.json gives the verdict; this adds the stage that decides it).
EXPECTATION = {
    "juggle_one_person.mp4": {"status": "completed", "clips": 1, "accepted": 1},
    "pedestrians_small_long.avi": {"status": "rejected", "clips": 1, "reasons": {"scene_too_long"}},
    "static_no_person.mp4": {"status": "rejected", "clips": 1, "reasons": {"no_person"}},
    "camera_pan_static_person.mp4": {"status": "rejected", "clips": 1, "reasons": {"camera_motion"}},
    "slideshow_three_stills.mp4": {"status": "rejected", "clips": 3, "reasons": {"static_people", "people_too_small"}},
    "test_card_no_person.mp4": {"status": "rejected", "clips": 1, "reasons": {"no_person"}},
}


@pytest.fixture
def stack(tmp_path: Path) -> Iterator[LocalStack]:
    settings = Settings(data_dir=tmp_path / "haic", api_keys=["e2e-key"])
    with LocalStack(settings, StackPorts.free()) as running:
        yield running
    assert all(c.process.poll() is not None for c in running.children) or not running.children


def test_shared_videos_reach_their_labelled_verdicts(
    stack: LocalStack, shared_videos: Path, video_labels: dict[str, dict]
) -> None:
    assert set(EXPECTATION) == set(video_labels), "labels.json changed: update EXPECTATION"
    with HaicClient(stack.gateway_url, stack.api_key) as client:
        ids = {
            name: client.submit(shared_videos / name, description=DESCRIPTIONS[name])["video_id"]
            for name in video_labels
        }
        videos = {name: client.wait(video_id, timeout_s=600) for name, video_id in ids.items()}
        details = {c["clip_id"]: client.clip(c["clip_id"]) for v in videos.values() for c in v["clips"]}

    for name, video in videos.items():
        expected, label = EXPECTATION[name], video_labels[name]
        accepted = [c for c in video["clips"] if c["verdict"] == "accepted"]
        assert video["status"] == expected["status"], (name, video)
        assert (video["status"] == "completed") == (label["expect"] == "accept"), name
        assert len(video["clips"]) == expected["clips"], (name, video["clips"])
        assert len(accepted) == label["accepted_clips"], (name, video["clips"])
        for clip in video["clips"]:
            assert clip["verdict"] in ("accepted", "rejected"), clip  # every clip settled past the filter
            assert clip["values"], clip
            if clip["verdict"] == "rejected":
                assert clip["reason_code"] in expected["reasons"], (name, clip)
            else:  # accepted by the pose stage, then captioned and judged
                assert clip["stage"] in ("qagen", "scoring"), clip  # captioned, judged and turned into QA
                detail = details[clip["clip_id"]]
                assert detail["caption_judge_passed"] is True, detail
                assert detail["caption_text"].startswith("The main character is one person."), detail


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
    for name, video, expected in zip(names, videos, expected_counts, strict=True):
        clip_ids = [c["clip_id"] for c in video["clips"]]
        assert len(clip_ids) == len(set(clip_ids)) == expected == video["clip_count"], video
        assert video["status"] == EXPECTATION[name]["status"], (name, video)


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


def test_two_moving_people_get_a_caption_with_two_subjects_told_apart(stack: LocalStack) -> None:
    """Issue 4's done-when: two moving people -> one caption on haic.captions.v1 whose two subjects are
    told apart by attributes, each with time-ordered actions backed by pose evidence, and a verdict.
    The video is the composite of real footage built by tests/captioner/two_people.py."""
    video = two_people_clip()
    with HaicClient(stack.gateway_url, stack.api_key) as client:
        video_id = client.submit(video, description="Two men juggle footballs")["video_id"]
        status = client.wait(video_id, timeout_s=300)
    assert status["status"] == "completed", status
    [clip] = status["clips"]
    assert clip["verdict"] == "accepted" and clip["stage"] in ("qagen", "scoring"), clip

    settings = stack.settings.model_copy(update={"kafka_bootstrap_servers": stack.bootstrap_servers})
    [accepted] = [v for key, v in read_topic_to_end(settings, topics.CLIPS_ACCEPTED) if key == video_id]
    # The pose stage (paper thresholds) accepted it with both people tracked and acting.
    assert accepted.values["people_min"] == accepted.values["people_max"] == 2, dict(accepted.values)
    assert accepted.values["tracks_acting"] == 2 and len(accepted.dense_tracks) == 2, dict(accepted.values)
    [caption] = [c for key, c in read_topic_to_end(settings, topics.CAPTIONS) if key == video_id]
    assert isinstance(caption, events_pb2.Caption) and caption.span.clip_id == clip["clip_id"]

    assert len(caption.subjects) == 2
    assert {s.track_id for s in caption.subjects} == {t.track_id for t in accepted.dense_tracks}
    labels = [s.label for s in caption.subjects]
    garments = [{(g.item, g.color) for g in s.attributes.clothing} for s in caption.subjects]
    assert len(set(labels)) == 2 and garments[0] != garments[1], (labels, garments)
    for label, worn in zip(labels, garments, strict=True):
        # Told apart by attributes: each label names its garments' colours, not a place or a number.
        assert worn and all(color in label for _, color in worn), (label, worn)
        assert not any(word in label for word in ("left", "right", "first", "second")), label
    for subject in caption.subjects:
        assert subject.actions, subject
        assert [a.start_s for a in subject.actions] == sorted(a.start_s for a in subject.actions)
        for action in subject.actions:
            ev = action.evidence
            assert caption.span.start_s <= ev.start_s <= ev.end_s <= caption.span.end_s and ev.signals, action
    assert caption.text.startswith("The main characters are two people.")
    assert caption.judgement.judge == "rules" and caption.judgement.passed, list(caption.judgement.reasons)
    with HaicClient(stack.gateway_url, stack.api_key) as client:
        detail = client.clip(clip["clip_id"])
    assert detail["caption_judge_passed"] is True and detail["caption_text"] == caption.text, detail
