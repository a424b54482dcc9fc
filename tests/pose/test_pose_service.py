"""The pose stage on the converted models served by a real PyTriton server: real frames, every shared
video's labelled verdict, PoseService.AnalyzeClip over gRPC, and the Kafka worker with a poison clip."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import grpc
import numpy as np
import pytest

from haic.v1 import events_pb2, pose_pb2, pose_pb2_grpc
from haic_tools.models.build import BuildReport
from services.core import topics
from services.core.bus import EventProducer, Output, Worker
from services.core.grpc_server import GrpcServer, ServiceRegistration
from services.core.settings import Settings
from services.core.storage import LocalStorage
from services.core.video import VideoReader, probe
from services.filter.service import split_video
from services.pose.contract import COCO_KEYPOINTS
from services.pose.estimator import PoseEstimator
from services.pose.service import STAGE, ClipAnalyzer, PoseServicer, make_handler
from services.pose.triton_client import TritonInference
from services.pose.triton_process import EmbeddedTriton, TritonEnvironmentError, TritonPorts, find_python
from tests.kafka_helpers import read_topic, running

pytestmark = [pytest.mark.models, pytest.mark.triton]

KP = {name: i for i, name in enumerate(COCO_KEYPOINTS)}


@pytest.fixture(scope="module")
def triton(built_models: BuildReport, models_settings: Settings) -> Iterator[EmbeddedTriton]:
    try:
        python = find_python(models_settings.triton_python)
    except TritonEnvironmentError as exc:
        pytest.skip(str(exc))
    with EmbeddedTriton(built_models.repository, python, TritonPorts.free()) as server:
        yield server


@pytest.fixture(scope="module")
def settings(shared_store_settings: Settings) -> Settings:
    return shared_store_settings


@pytest.fixture(scope="module")
def analyzer(triton: EmbeddedTriton, settings: Settings) -> Iterator[ClipAnalyzer]:
    backend = TritonInference(triton.url, timeout_s=60, retries=3, max_batch_size=settings.triton_max_batch_size)
    with backend:
        yield ClipAnalyzer(
            settings, LocalStorage(Path(settings.storage_url)), PoseEstimator.from_settings(backend, settings)
        )


def candidates(name: str, settings: Settings, shared_videos: Path) -> list[events_pb2.ClipCandidate]:
    path = shared_videos / name
    uploaded = events_pb2.VideoUploaded(
        video_id=f"vid_{path.stem}",
        storage_uri=path.as_uri(),
        info=probe(path).to_proto(),
        description="people move",
    )
    return split_video(uploaded, settings, LocalStorage(shared_videos)).candidates


def test_a_real_frame_gives_a_box_around_the_person_and_plausible_keypoints(
    analyzer: ClipAnalyzer, shared_videos: Path
) -> None:
    with VideoReader(shared_videos / "juggle_one_person.mp4") as reader:
        [(_, frame)] = list(reader.frames_at([1.0]))
    [people] = analyzer.estimator.analyze([frame])
    assert len(people) == 1
    [person] = people
    x1, y1, x2, y2 = person.box
    height, width = frame.shape[:2]
    # The juggler stands in the middle of the 1280x720 frame, head near the top, feet near the bottom.
    assert y2 - y1 > 0.7 * height and 0.15 * width < x2 - x1 < 0.35 * width
    assert x1 < width / 2 < x2
    kp = person.keypoints
    assert (kp[:, 2] > 0.3).all(), kp
    inside = (kp[:, 0] >= x1) & (kp[:, 0] <= x2) & (kp[:, 1] >= y1) & (kp[:, 1] <= y2)
    assert inside.all()
    y = {name: kp[KP[name], 1] for name in KP}
    assert y["nose"] < y["left_shoulder"] < y["left_hip"] < y["left_knee"] < y["left_ankle"]
    assert y["nose"] < y["right_shoulder"] < y["right_hip"] < y["right_knee"] < y["right_ankle"]
    # He faces the camera: his left side is on the image's right.
    for part in ("shoulder", "elbow", "hip"):
        assert kp[KP[f"left_{part}"], 0] > kp[KP[f"right_{part}"], 0], part


def test_every_shared_video_reaches_its_labelled_verdict(
    analyzer: ClipAnalyzer, settings: Settings, shared_videos: Path, video_labels: dict[str, dict]
) -> None:
    outcomes: dict[str, list[events_pb2.ClipVerdict]] = {}
    for name in video_labels:
        outcomes[name] = [analyzer.analyze(c) for c in candidates(name, settings, shared_videos)]
    for name, label in video_labels.items():
        accepted = [v for v in outcomes[name] if v.verdict == events_pb2.VERDICT_ACCEPTED]
        summary = [(v.stage, v.reason_code, dict(v.values)) for v in outcomes[name]]
        assert len(accepted) == label["accepted_clips"], (name, summary)
        for verdict in outcomes[name]:
            assert verdict.stage.startswith("pose.") and verdict.values, (name, summary)
            if verdict.verdict == events_pb2.VERDICT_REJECTED:
                assert verdict.reason_code and verdict.reason, (name, summary)
        for verdict in accepted:
            assert len(verdict.tracks) == label["people"], (name, summary)
    # what decided the negatives, so that a change of threshold shows up here first
    reasons = {name: {v.reason_code for v in verdicts} for name, verdicts in outcomes.items()}
    assert reasons["static_no_person.mp4"] == reasons["test_card_no_person.mp4"] == {"no_person"}
    assert reasons["camera_pan_static_person.mp4"] == {"camera_motion"}
    assert "static_people" in reasons["slideshow_three_stills.mp4"]
    assert reasons["pedestrians_small_long.avi"] <= {"too_many_people", "people_too_small"}
    for verdict in outcomes["pedestrians_small_long.avi"]:
        assert verdict.values["coverage_min"] < settings.min_person_area_ratio


def test_an_accepted_clip_carries_tracks_at_1_fps_and_dense_tracks(
    analyzer: ClipAnalyzer, settings: Settings, shared_videos: Path
) -> None:
    [clip] = candidates("juggle_one_person.mp4", settings, shared_videos)
    verdict = analyzer.analyze(clip)
    assert verdict.verdict == events_pb2.VERDICT_ACCEPTED and verdict.stage == "pose.human_action"
    duration = clip.span.end_s - clip.span.start_s
    [track] = verdict.tracks
    assert len(track.samples) == int(duration * settings.action_fps)
    [dense] = verdict.dense_tracks
    assert len(dense.samples) >= int(duration * settings.dense_track_fps) - 1
    times = [s.t_s for s in dense.samples]
    assert times == sorted(times) and {s.t_s for s in track.samples} <= set(times)
    for sample in dense.samples:
        assert len(sample.keypoints) == 17
        xs = np.array([k.x for k in sample.keypoints])
        ys = np.array([k.y for k in sample.keypoints])
        assert (xs >= 0).all() and (xs <= clip.info.width).all() and (ys >= 0).all() and (ys <= clip.info.height).all()
    assert verdict.values["keypoint_l1_max"] > settings.min_keypoint_l1
    assert verdict.values["affine_residual_max"] > settings.min_affine_residual
    # frames shared by the grids are decoded once: never more than the clip's frames
    assert verdict.values["frames_decoded"] <= round(duration * clip.info.fps) + 1


@pytest.fixture(scope="module")
def pose_stub(analyzer: ClipAnalyzer) -> Iterator[pose_pb2_grpc.PoseServiceStub]:
    server = GrpcServer(
        [ServiceRegistration(pose_pb2_grpc.add_PoseServiceServicer_to_server, PoseServicer(analyzer), "x")], port=0
    )
    server.start()
    with grpc.insecure_channel(f"127.0.0.1:{server.port}") as channel:
        yield pose_pb2_grpc.PoseServiceStub(channel)
    server.stop()


def test_grpc_analyze_clip_runs_the_same_logic(
    pose_stub: pose_pb2_grpc.PoseServiceStub, settings: Settings, shared_videos: Path
) -> None:
    [clip] = candidates("camera_pan_static_person.mp4", settings, shared_videos)
    reply = pose_stub.AnalyzeClip(pose_pb2.AnalyzeClipRequest(candidate=clip), timeout=120)
    assert reply.verdict.verdict == events_pb2.VERDICT_REJECTED
    assert reply.verdict.reason_code == "camera_motion"

    with pytest.raises(grpc.RpcError) as missing:
        pose_stub.AnalyzeClip(pose_pb2.AnalyzeClipRequest(), timeout=10)
    assert missing.value.code() == grpc.StatusCode.INVALID_ARGUMENT

    gone = events_pb2.ClipCandidate()
    gone.CopyFrom(clip)
    gone.storage_uri = (shared_videos / "no_such_video.mp4").as_uri()
    with pytest.raises(grpc.RpcError) as not_found:
        pose_stub.AnalyzeClip(pose_pb2.AnalyzeClipRequest(candidate=gone), timeout=10)
    assert not_found.value.code() == grpc.StatusCode.NOT_FOUND


@pytest.mark.kafka
def test_the_worker_dead_letters_a_poison_clip_and_keeps_going(
    analyzer: ClipAnalyzer, settings: Settings, kafka_settings: Settings, shared_videos: Path
) -> None:
    [clip] = candidates("static_no_person.mp4", settings, shared_videos)
    poison = events_pb2.ClipCandidate()
    poison.CopyFrom(clip)
    poison.ClearField("storage_uri")
    EventProducer(kafka_settings, "test").deliver(
        [Output(topics.CLIPS_CANDIDATE, clip.video_id, poison), Output(topics.CLIPS_CANDIDATE, clip.video_id, clip)]
    )
    with running(Worker(kafka_settings, STAGE.name, [topics.CLIPS_CANDIDATE], make_handler(analyzer))):
        [(_, rejected)] = read_topic(kafka_settings, topics.CLIPS_REJECTED, expected=1, timeout_s=120)
        [(key, letter)] = read_topic(kafka_settings, topics.DEADLETTER, expected=1)
    assert rejected.span.clip_id == clip.span.clip_id and rejected.reason_code == "no_person"
    assert key == clip.video_id and letter.error_type == "InvalidClipEventError" and letter.attempts == 1
    assert "storage_uri" in letter.error
