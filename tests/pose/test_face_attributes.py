"""Gender and age group from faces: the pooling rules (quick), the face models on real frames of the
labelled videos (`models`: the session build, onnxruntime in-process) and through Triton (`triton`)."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pytest

from haic_tools.models import build
from haic_tools.models.build import BuildReport
from services.core.settings import Settings
from services.core.video import VideoReader
from services.pose import contract, face_attributes
from services.pose.estimator import PoseEstimator
from services.pose.face_attributes import (
    FaceAttributeEstimator,
    FaceObservation,
    FaceSettings,
    PersonAttributes,
    age_group_probabilities,
    estimate_attributes,
    head_region,
    pool,
)
from services.pose.onnx_backend import OnnxRuntimeInference


@dataclass
class Sample:
    t_s: float
    keypoints: np.ndarray


@dataclass
class PersonTrack:
    track_id: int
    samples: list[Sample] = field(default_factory=list)


# --------------------------------------------------------------------------------------------------
# quick: geometry and pooling


def _frontal(eye_gap: float = 20.0, score: float = 0.9) -> np.ndarray:
    points = np.zeros((17, 3))
    points[face_attributes.NOSE] = (100, 110, score)
    points[face_attributes.LEFT_EYE] = (100 + eye_gap / 2, 100, score)
    points[face_attributes.RIGHT_EYE] = (100 - eye_gap / 2, 100, score)
    return points


def test_head_region_needs_the_nose_and_both_eyes() -> None:
    centre, side = head_region(_frontal(), 0.3)
    assert np.allclose(centre, (100, 310 / 3))
    assert side == pytest.approx(20 * face_attributes.FACE_PER_EYE_SPACING * face_attributes.HEAD_REGION_PER_FACE)
    turned = _frontal()
    turned[face_attributes.RIGHT_EYE, 2] = 0.1  # one eye hidden: turned away, not tried
    assert head_region(turned, 0.3) is None
    shoulders = _frontal()
    shoulders[face_attributes.LEFT_SHOULDER] = (200, 200, 0.9)
    shoulders[face_attributes.RIGHT_SHOULDER] = (0, 200, 0.9)
    assert head_region(shoulders, 0.3)[1] == pytest.approx(200 * 0.38 * face_attributes.HEAD_REGION_PER_FACE)


def test_age_groups_partition_the_distribution() -> None:
    uniform = np.full(contract.AGE_BINS, 1 / contract.AGE_BINS)
    groups = age_group_probabilities(uniform)
    assert list(groups) == ["child", "teenager", "young adult", "middle-aged", "elderly"]
    assert sum(groups.values()) == pytest.approx(1.0)
    assert groups["teenager"] == pytest.approx(7 / 100)  # 13..19 years


def _face(male: float, age: int) -> FaceObservation:
    distribution = np.zeros(contract.AGE_BINS, np.float32)
    distribution[age - 1] = 1.0  # bin i is i + 1 years
    return FaceObservation(0.0, np.array([0, 0, 50, 60], np.float32), 0.9, male, distribution)


def test_pooling_asserts_only_what_the_faces_clearly_support() -> None:
    rules = FaceSettings.from_settings(
        Settings().model_copy(
            update={
                "face_min_faces": 2,
                "face_male_boundary": 0.6,
                "face_gender_margin": 0.2,
                "face_age_min_confidence": 0.5,
            }
        )
    )
    clear = pool([_face(0.95, 27), _face(0.9, 31)], 2, rules)
    assert (clear.gender, clear.age_group, clear.faces_seen) == ("male", "young adult", 2)
    assert clear.age_years == pytest.approx(29.0) and clear.gender_confidence == pytest.approx(0.925)
    woman = pool([_face(0.3, 45), _face(0.36, 50)], 2, rules)  # the model leans male: 0.33 is a woman
    assert (woman.gender, woman.age_group) == ("female", "middle-aged")
    unsure = pool([_face(0.5, 30), _face(0.7, 50), _face(0.6, 70)], 3, rules)  # 0.6; ages split three ways
    assert (unsure.gender, unsure.age_group, unsure.reason) == ("", "", "unsure")
    one = pool([_face(0.99, 30)], 1, rules)
    assert (one.gender, one.age_group, one.reason) == ("", "", "too_few_faces")
    assert pool([], 0, rules) == PersonAttributes(reason="no_frontal_face")


class _NoModels:
    def input_size(self, model: str) -> tuple[int, int]:
        raise AssertionError("no face was turned to the camera: no model may run")

    def infer(self, model: str, images: np.ndarray) -> dict[str, np.ndarray]:
        raise AssertionError("no face was turned to the camera: no model may run")


def test_a_track_whose_eyes_are_never_seen_is_unknown_without_running_a_model() -> None:
    back = _frontal(score=0.05)  # seen from behind: the pose model is not sure of the eyes
    track = PersonTrack(3, [Sample(t, back) for t in (0.0, 0.25, 0.5)])
    frames = {t: np.zeros((240, 320, 3), np.uint8) for t in (0.0, 0.25, 0.5)}
    [(track_id, attributes)] = estimate_attributes(_NoModels(), frames, [track], Settings()).items()
    assert track_id == 3 and attributes == PersonAttributes(reason="no_frontal_face")


# --------------------------------------------------------------------------------------------------
# models: real frames of labelled videos


def _one_person_track(backend: OnnxRuntimeInference, video: Path, count: int) -> tuple[dict, PersonTrack]:
    """`count` frames spread over a one-person video, and that person's keypoints (the best detection)."""
    with VideoReader(video) as reader:
        duration = reader.info.duration_s
        frames = dict(reader.frames_at([duration * (i + 0.5) / count for i in range(count)]))
    estimator = PoseEstimator.from_settings(backend, Settings())
    track = PersonTrack(0)
    for (t, _), people in zip(frames.items(), estimator.analyze(list(frames.values())), strict=True):
        if people:
            track.samples.append(Sample(t, max(people, key=lambda p: p.score).keypoints))
    return frames, track


@pytest.fixture(scope="module")
def local_backend(built_models: BuildReport) -> OnnxRuntimeInference:
    return OnnxRuntimeInference(built_models.repository, threads=1)


@pytest.mark.models
def test_the_face_detector_finds_the_jugglers_face_in_his_head_region(local_backend: OnnxRuntimeInference) -> None:
    frames = build.sample_frames(4)
    heads = np.stack([build.region(f, build.SAMPLE_HEAD_REGION, build.FACE_DETECTOR_SIZE) for f in frames])
    out = local_backend.infer(contract.FACE_DETECTOR, heads)
    assert out[contract.LANDMARKS].shape == (4, build.MAX_FACES, contract.FACE_LANDMARKS, 2)
    for boxes, scores, landmarks in zip(
        out[contract.BOXES], out[contract.SCORES], out[contract.LANDMARKS], strict=True
    ):
        assert np.all(np.diff(scores) <= 0) and scores[0] > 0.8
        x1, y1, x2, y2 = boxes[0]
        assert 0.1 < x2 - x1 < 0.5  # a face, not the whole region
        right_eye, left_eye, nose = landmarks[0][:3]
        assert x1 < right_eye[0] < nose[0] < left_eye[0] < x2  # frontal: his right eye on the image's left
        assert y1 < right_eye[1] < nose[1] < y2


@pytest.mark.models
def test_the_juggler_is_a_young_man(local_backend: OnnxRuntimeInference, video_labels: dict[str, dict]) -> None:
    """Labelled male, young adult; his face is frontal and about 60 px wide."""
    [labelled] = video_labels["juggle_one_person.mp4"]["subjects"]
    assert (labelled["gender"], labelled["age_group"]) == ("male", "young adult")
    frames, track = _one_person_track(local_backend, build.SAMPLE_VIDEO, 8)
    [attributes] = estimate_attributes(local_backend, frames, [track], Settings()).values()
    assert (attributes.gender, attributes.age_group) == ("male", "young adult"), attributes
    assert attributes.faces_seen >= 4 and attributes.gender_confidence > 0.85
    assert 20 < attributes.age_years < 40


@pytest.mark.models
def test_a_woman_whose_face_is_turned_away_is_unknown(local_backend: OnnxRuntimeInference, shared_videos: Path) -> None:
    """camera_pan_static_person: a woman bent over a dog, her face turned away under her hair (labelled
    female, age unknown): the detector never confirms a face there, so nothing is said."""
    frames, track = _one_person_track(local_backend, shared_videos / "camera_pan_static_person.mp4", 8)
    assert len(track.samples) >= 6
    [attributes] = estimate_attributes(local_backend, frames, [track], Settings()).values()
    assert (attributes.gender, attributes.age_group, attributes.faces_seen) == ("", "", 0), attributes
    assert attributes.reason in {"no_frontal_face", "not_confirmed"}


@pytest.mark.models
def test_a_face_below_the_minimum_size_is_not_judged(local_backend: OnnxRuntimeInference) -> None:
    frames, track = _one_person_track(local_backend, build.SAMPLE_VIDEO, 4)
    small = {t: frame[::4, ::4].copy() for t, frame in frames.items()}  # his face shrinks to about 15 px
    height, width = next(iter(frames.values())).shape[:2]
    [attributes] = estimate_attributes(local_backend, small, [track], Settings(), source_size=(width, height)).values()
    assert (attributes.gender, attributes.age_group) == ("", "")
    assert attributes.reason in {"face_too_small", "not_confirmed"} and attributes.faces_seen == 0


# --------------------------------------------------------------------------------------------------
# triton: the same through the embedded Triton


@pytest.mark.models
@pytest.mark.triton
def test_face_models_through_triton_give_the_in_process_attributes(
    built_models: BuildReport, local_backend: OnnxRuntimeInference
) -> None:
    from services.pose.triton_client import TritonInference
    from services.pose.triton_process import EmbeddedTriton, TritonEnvironmentError, TritonPorts, find_python

    try:
        python = find_python(Settings().triton_python)
    except TritonEnvironmentError as exc:
        pytest.skip(str(exc))
    frames, track = _one_person_track(local_backend, build.SAMPLE_VIDEO, 6)
    expected = FaceAttributeEstimator(local_backend, FaceSettings.from_settings(Settings())).faces(frames, [track])[0][
        0
    ]
    with (
        EmbeddedTriton(built_models.repository, python, TritonPorts.free()) as server,
        TritonInference(server.url, timeout_s=60, retries=Settings().triton_retries, max_batch_size=8) as client,
    ):
        assert {contract.FACE_DETECTOR, contract.FACE_ATTRIBUTES} <= set(server.models)
        served = FaceAttributeEstimator(client, FaceSettings.from_settings(Settings())).faces(frames, [track])[0][0]
        [attributes] = estimate_attributes(client, frames, [track], Settings()).values()
    assert len(served) == len(expected) >= 3
    for got, want in zip(served, expected, strict=True):
        assert got.t_s == want.t_s
        np.testing.assert_allclose(got.box, want.box, atol=1e-3)
        assert got.male_probability == pytest.approx(want.male_probability, abs=1e-4)
        np.testing.assert_allclose(got.age_distribution, want.age_distribution, atol=1e-5)
    assert (attributes.gender, attributes.age_group) == ("male", "young adult")


@pytest.mark.models
def test_the_pose_stage_puts_the_attributes_on_the_accepted_clips_dense_tracks(
    local_backend: OnnxRuntimeInference,
) -> None:
    from haic.v1 import events_pb2
    from services.core.storage import LocalStorage
    from services.core.video import probe
    from services.pose.service import ClipAnalyzer

    info = probe(build.SAMPLE_VIDEO)
    candidate = events_pb2.ClipCandidate(
        video_id="vid_juggle",
        span=events_pb2.ClipSpan(clip_id="vid_juggle:2-7", start_s=2.0, end_s=7.0),
        storage_uri=build.SAMPLE_VIDEO.as_uri(),
        info=info.to_proto(),
    )
    told = {}
    for enabled in (True, False):
        settings = Settings(face_attributes=enabled)
        analyzer = ClipAnalyzer(
            settings, LocalStorage(build.SAMPLE_VIDEO.parent), PoseEstimator.from_settings(local_backend, settings)
        )
        verdict = analyzer.analyze(candidate)
        assert verdict.verdict == events_pb2.VERDICT_ACCEPTED and verdict.dense_tracks
        told[enabled] = max(verdict.dense_tracks, key=lambda t: len(t.samples)).attributes
    assert (told[True].gender, told[True].age_group) == ("male", "young adult"), told[True]
    assert told[True].faces_seen >= 2 and told[True].gender_confidence > 0.75
    assert told[False] == events_pb2.PersonAttributes()  # switched off: nothing stated, nothing guessed
