"""The existence check's early stop (HAIC_EXISTENCE_EARLY_STOP) gives the full check's verdict, on the
built models (onnxruntime in-process) and the shared videos.

The stop rests on two facts tested here: a frame's `candidates` bound from above the people `detect`
counts there whatever its neighbours (so a frame under the minimum fails the rule for certain), and they
come out the same whether computed frame by frame or in batches (so `detect` may reuse them).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from haic.v1 import events_pb2
from haic_tools.models.build import BuildReport
from services.core.settings import Settings
from services.core.storage import LocalStorage
from services.core.video import VideoReader, probe
from services.filter.service import split_video
from services.pose.estimator import PoseEstimator
from services.pose.onnx_backend import OnnxRuntimeInference
from services.pose.service import ClipAnalyzer

pytestmark = pytest.mark.models


@pytest.fixture(scope="module")
def backend(built_models: BuildReport) -> Iterator[OnnxRuntimeInference]:
    backend = OnnxRuntimeInference(built_models.repository, threads=1)
    yield backend
    backend.close()


@pytest.fixture(scope="module")
def settings(shared_store_settings: Settings) -> Settings:
    # the verdicts, not the captioner's attributes, are under test here
    return shared_store_settings.model_copy(update={"face_attributes": False})


def analyzer(backend: OnnxRuntimeInference, settings: Settings, store: Path, early_stop: bool) -> ClipAnalyzer:
    chosen = settings.model_copy(update={"existence_early_stop": early_stop})
    return ClipAnalyzer(chosen, LocalStorage(store), PoseEstimator.from_settings(backend, chosen))


def candidates(path: Path, settings: Settings) -> list[events_pb2.ClipCandidate]:
    uploaded = events_pb2.VideoUploaded(
        video_id=f"vid_{path.stem}", storage_uri=path.as_uri(), info=probe(path).to_proto(), description="people move"
    )
    return split_video(uploaded, settings, LocalStorage(path.parent)).candidates


def frames(path: Path, times: list[float]) -> list[np.ndarray]:
    with VideoReader(path) as reader:
        return [frame for _, frame in reader.frames_at(times)]


@pytest.mark.parametrize(
    "name",
    [
        "static_no_person.mp4",  # empty: stops at the first existence frame
        "test_card_no_person.mp4",
        "corpus/cockatoo_handheld.mp4",  # a bird the detector is unsure of
        "camera_pan_static_person.mp4",  # passes existence: the screened candidates feed the action rule
    ],
)
def test_the_early_stop_gives_the_full_checks_verdict(
    name: str, backend: OnnxRuntimeInference, settings: Settings, shared_videos: Path
) -> None:
    path = shared_videos / name
    clips = candidates(path, settings)
    assert clips, f"{name}: no candidate clip to check"
    early = analyzer(backend, settings, path.parent, early_stop=True)
    full = analyzer(backend, settings, path.parent, early_stop=False)
    for clip in clips:
        fast, slow = early.analyze(clip), full.analyze(clip)
        assert (fast.verdict, fast.stage, fast.reason_code) == (slow.verdict, slow.stage, slow.reason_code), (
            f"{clip.span.clip_id}: early stop {fast.reason}, full check {slow.reason}"
        )
        if "existence_frames_examined" in fast.values:
            # stopped: fewer frames decoded, the lowest count and coverage as the full check measured them
            assert fast.values["frames_decoded"] < slow.values["frames_decoded"]
            assert fast.values["existence_frames_examined"] < slow.values["existence_frames"]
            assert (fast.values["people_min"], fast.values["coverage_min"]) == (
                slow.values["people_min"],
                slow.values["coverage_min"],
            )
        else:
            # not stopped: the same detections, so every measured value and track is the full check's
            assert dict(fast.values) == dict(slow.values)
            assert list(fast.tracks) == list(slow.tracks)
            assert list(fast.existence_frames) == list(slow.existence_frames)


def test_an_empty_clip_stops_at_its_first_existence_frame(
    backend: OnnxRuntimeInference, settings: Settings, shared_videos: Path
) -> None:
    (clip,) = candidates(shared_videos / "static_no_person.mp4", settings)
    verdict = analyzer(backend, settings, shared_videos, early_stop=True).analyze(clip)
    assert (verdict.stage, verdict.reason_code) == ("pose.human_existence", "no_person")
    assert verdict.values["existence_frames_examined"] == 1.0
    assert verdict.values["existence_frames"] == float(settings.existence_frames)
    assert [f.people for f in verdict.existence_frames] == [0]


@pytest.mark.parametrize(
    ("name", "times"),
    [
        # people the detector is sure of, unsure of (the dark stage: body check and neighbour rule at work),
        # two people, and an empty test card
        ("juggle_one_person.mp4", [0.5, 1.5, 2.5, 3.5, 4.5, 5.5]),
        ("corpus/man_gestures_dark_stage.mp4", [0.3, 1.0, 2.3, 3.0, 5.0, 6.0, 8.0, 9.5]),
        ("corpus/two_people_jump_walk_park_vp9.mp4", [0.5, 1.5, 2.5, 3.5, 4.5]),
        ("corpus/three_women_talk_1940_film.mp4", [0.5, 1.5, 2.5, 3.5]),
        ("test_card_no_person.mp4", [0.5, 4.0, 8.0]),
    ],
)
def test_candidates_bound_the_count_and_do_not_depend_on_the_batch(
    name: str, times: list[float], backend: OnnxRuntimeInference, settings: Settings, shared_videos: Path
) -> None:
    images = frames(shared_videos / name, times)
    estimator = PoseEstimator.from_settings(backend, settings)
    batched = estimator.candidates(images)
    one_by_one = [estimator.candidates([image])[0] for image in images]
    for a, b in zip(batched, one_by_one, strict=True):
        # the same candidates; multipose's numbers move in the last float bits with the batch size
        assert [(d.box.tolist(), d.score) for d in a.boxes] == [(d.box.tolist(), d.score) for d in b.boxes]
        assert len(a.multipose) == len(b.multipose) and a.near_misses == b.near_misses
        for (d, k), (e, m) in zip(a.multipose, b.multipose, strict=True):
            np.testing.assert_allclose(d.box, e.box, atol=1e-3)
            np.testing.assert_allclose(k, m, atol=1e-3)
    # reused candidates give the people of a fresh call
    fresh = estimator.detect(images)
    reused = estimator.detect(images, one_by_one)
    assert [len(f) for f in fresh] == [len(f) for f in reused]
    for f, r in zip(fresh, reused, strict=True):
        for d, e in zip(f, r, strict=True):
            np.testing.assert_allclose(d.box, e.box, atol=1e-2)
            assert d.score == pytest.approx(e.score, abs=1e-5)
    # the bound the early stop relies on: no frame counts more people than its candidates
    for found, people in zip(batched, fresh, strict=True):
        assert len(people) <= found.most_people
    assert name != "test_card_no_person.mp4" or all(found.most_people == 0 for found in batched)
