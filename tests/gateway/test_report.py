"""The yield report (GET /v1/report) over a catalog filled through Kafka: its counts equal the catalog's."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from haic.v1 import events_pb2
from services.core import topics
from services.core.bus import Event, EventProducer, Output
from services.core.settings import Settings
from services.gateway.app import MAX_REPORT_VIDEO_IDS
from services.gateway.catalog import Catalog
from services.gateway.report import build_report

from .conftest import AUTH, accepted, candidate, rejected, span, upload, wait_caught_up

pytestmark = pytest.mark.kafka

POSE_VALUES = {
    "keypoint_l1_max": 0.21,
    "affine_residual_max": 0.05,
    "coverage_min": 0.12,
    "people_max": 1.0,
    "min_keypoint_l1": 0.1,
}


def _accepted_with_pose_values(video_id: str, clip: events_pb2.ClipSpan) -> Output:
    output = accepted(video_id, clip)
    output.message.values.update(POSE_VALUES)
    return output


def _caption(video_id: str, clip: events_pb2.ClipSpan, passed: bool) -> Output:
    message = events_pb2.Caption(video_id=video_id, span=clip, text="A man juggles.", backend="test")
    message.judgement.passed = passed
    message.judgement.scores["faithfulness"] = 0.9 if passed else 0.2
    if not passed:
        message.judgement.reasons.append("names <b>two</b> people")
    return Output(topics.CAPTIONS, video_id, message)


def _qa(video_id: str, clip: events_pb2.ClipSpan, items: int) -> Output:
    message = events_pb2.QASet(video_id=video_id, span=clip, backend="test")
    for i in range(items):
        message.items.add().question = f"q{i}"
    return Output(topics.QA, video_id, message)


def test_report_counts_equal_the_catalog(
    gateway: TestClient, gateway_settings: Settings, producer: EventProducer, shared_videos: Path
) -> None:
    start = datetime.now(UTC) - timedelta(seconds=1)
    juggle = upload(gateway, shared_videos / "juggle_one_person.mp4").json()["video_id"]
    static = upload(gateway, shared_videos / "static_no_person.mp4").json()["video_id"]
    pan = upload(gateway, shared_videos / "camera_pan_static_person.mp4").json()["video_id"]
    good, bad, short = span(juggle, 0, 3, 0.0, 5.0), span(juggle, 1, 3, 5.0, 10.0), span(juggle, 2, 3, 10.0, 10.2)
    still = span(pan, 0, 1, 0.0, 6.0)
    producer.deliver(
        [
            candidate(juggle, good),
            candidate(juggle, bad),
            rejected(juggle, short, "filter.scene", "scene_too_short", {"duration_s": 0.2}),
            _accepted_with_pose_values(juggle, good),
            _accepted_with_pose_values(juggle, bad),
            _caption(juggle, good, passed=True),
            _caption(juggle, bad, passed=False),
            _qa(juggle, good, 4),
            rejected(static, None, "filter.metadata", "low_resolution", {"short_side": 240.0}),
            candidate(pan, still),
            rejected(pan, still, "pose.human_action", "no_action", {"keypoint_l1_max": 0.01, "people_max": 1.0}),
        ]
    )
    wait_caught_up(gateway, gateway_settings)

    # issue 11: an accepted clip keeps the pose stage's values after its caption and QA outcomes
    clip = gateway.get(f"/v1/clips/{good.clip_id}", headers=AUTH).json()
    assert clip["qa_item_count"] == 4 and clip["caption_judge_passed"] is True
    assert {key: clip["values"][key] for key in POSE_VALUES} == POSE_VALUES
    assert clip["values"]["faithfulness"] == 0.9

    response = gateway.get("/v1/report", headers=AUTH)
    assert response.status_code == 200, response.text
    report = response.json()
    assert report["videos_in"] == 3
    funnel = {step["step"]: (step["videos"], step["clips"]) for step in report["funnel"]}
    assert funnel == {
        "videos_in": (3, None),
        "clips_produced": (2, 3),  # juggle's two candidates, pan's one
        "pose_accepted": (1, 2),
        "caption_passed": (1, 1),
        "qa_items": (1, 4),
    }
    assert report["yield_percent"] == pytest.approx(100 / 3, abs=1e-3)
    rejections = {(r["level"], r["stage"], r["reason_code"]): (r["videos"], r["clips"]) for r in report["rejections"]}
    assert rejections == {
        ("video", "filter.metadata", "low_resolution"): (1, 0),
        ("clip", "filter.scene", "scene_too_short"): (1, 1),
        ("clip", "pose.human_action", "no_action"): (1, 1),
        ("clip", "captioner.judge", "caption_judgement_failed"): (1, 1),
    }
    # the same counts straight from the catalog
    catalog = gateway.app.state.runtime.catalog
    clip_rows = [row for video_id in (juggle, static, pan) for row in catalog.find_video(video_id).clips]
    assert sum(1 for row in clip_rows if row["verdict"] == "rejected") == 3
    assert sum(1 for row in clip_rows if row["caption_judge_passed"]) == funnel["caption_passed"][1]
    assert sum(row["qa_item_count"] or 0 for row in clip_rows) == funnel["qa_items"][1]

    distributions = {d["key"]: d for d in report["distributions"]}
    l1 = distributions["keypoint_l1_max"]
    assert (l1["count"], l1["min"], l1["max"], l1["threshold"]) == (3, 0.01, 0.21, 0.1)
    assert sum(l1["bin_counts"]) == 3 and len(l1["bin_edges"]) == len(l1["bin_counts"]) + 1
    assert distributions["coverage_min"]["count"] == 2
    times = {t["stage"]: t for t in report["stage_times"]}
    assert times["filter"]["videos"] == 3 and times["pose"]["videos"] == 2
    assert times["captioner"]["videos"] == 1 and times["qagen"]["videos"] == 1
    assert times["pose"]["p50_s"] >= 0

    # a batch: a list of ids, and an upload-time window
    one = gateway.get("/v1/report", params={"video_id": [static]}, headers=AUTH).json()
    assert one["videos_in"] == 1 and one["yield_percent"] == 0.0
    window = gateway.get("/v1/report", params={"since": start.isoformat()}, headers=AUTH).json()
    assert window["videos_in"] == 3
    later = gateway.get("/v1/report", params={"since": (start + timedelta(hours=1)).isoformat()}, headers=AUTH)
    assert later.json()["videos_in"] == 0 and later.json()["funnel"][0]["percent"] == 0.0

    assert gateway.get("/v1/report").status_code == 401
    assert gateway.get("/v1/report", params={"video_id": ["bad id"]}, headers=AUTH).status_code == 422
    too_many = [f"vid_{n:024x}" for n in range(MAX_REPORT_VIDEO_IDS + 1)]
    assert gateway.get("/v1/report", params={"video_id": too_many}, headers=AUTH).status_code == 422
    assert gateway.get("/v1/report", params={"since": "1733346000"}, headers=AUTH).status_code == 422


def test_report_on_each_backend(catalog_url: str) -> None:
    """build_report's queries on SQLite and PostgreSQL, over a catalog fed through its Kafka handler."""
    catalog = Catalog(catalog_url, final_stage="qagen")
    try:
        outputs: list[Output] = []
        for n in range(4):
            video_id = f"vid_{n:024x}"
            uploaded = events_pb2.VideoUploaded(video_id=video_id, sha256=f"{n:064x}", storage_uri="file:///x")
            uploaded.uploaded_at.FromDatetime(datetime(2026, 12, 1 + n, tzinfo=UTC))
            outputs.append(Output(topics.VIDEOS, video_id, uploaded))
            clip = span(video_id, 0, 1, 0.0, 5.0)
            if n == 0:
                outputs += [candidate(video_id, clip), _accepted_with_pose_values(video_id, clip)]
                outputs += [_caption(video_id, clip, passed=True), _qa(video_id, clip, 3)]
            elif n == 1:
                outputs += [candidate(video_id, clip), _accepted_with_pose_values(video_id, clip)]
            elif n == 2:  # topics are not ordered among themselves: the judge's rejection before the pose pass
                outputs += [_caption(video_id, clip, passed=False), candidate(video_id, clip)]
                outputs.append(_accepted_with_pose_values(video_id, clip))
            else:  # and the pose stage's rejection before the filter's candidate
                no_action = rejected(video_id, clip, "pose.human_action", "no_action", {"keypoint_l1_max": 0.01})
                outputs += [no_action, candidate(video_id, clip)]
        for offset, output in enumerate(outputs):
            catalog.handle(Event(output.topic, 0, offset, output.key, output.message))
        report = build_report(catalog.engine)
        assert report.videos_in == 4 and report.yield_percent == 25.0
        assert [(s.videos, s.clips) for s in report.funnel] == [(4, None), (4, 4), (3, 3), (1, 1), (1, 3)]
        assert {(r.stage, r.clips) for r in report.rejections} == {("captioner.judge", 1), ("pose.human_action", 1)}
        window = build_report(catalog.engine, since=datetime(2026, 12, 2), until=datetime(2026, 12, 4, tzinfo=UTC))
        assert window.videos_in == 2 and window.funnel[3].videos == 0
        assert build_report(catalog.engine, video_ids=["vid_" + "0" * 24]).yield_percent == 100.0
    finally:
        catalog.close()
