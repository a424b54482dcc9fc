"""The captioner's dense tracks on real frames of the labelled videos: ByteTrack tracklets, stitching
across gaps by position and torso appearance, deterministic ids (services/pose/tracking.py)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from haic_tools.models.build import BuildReport
from services.core.settings import Settings
from services.core.video import VideoReader
from services.pose.estimator import PoseEstimator
from services.pose.onnx_backend import OnnxRuntimeInference
from services.pose.tracking import (
    Observation,
    StitchRules,
    Track,
    appearance_distance,
    bytetrack_tracklets,
    stitch_tracks,
    torso_appearance,
)

pytestmark = pytest.mark.models

SETTINGS = Settings()
# decoded frames by time, the people in each sampled frame (decoded pixels), the decoded (width, height)
Observed = tuple[dict[float, np.ndarray], list[list[Observation]], tuple[int, int]]
RULES = StitchRules.from_settings(SETTINGS)


@pytest.fixture(scope="module")
def estimator(built_models: BuildReport) -> Iterator[PoseEstimator]:
    backend = OnnxRuntimeInference(built_models.repository, threads=1)
    yield PoseEstimator.from_settings(backend, SETTINGS)
    backend.close()


def observe(estimator: PoseEstimator, path: Path, times: list[float]) -> Observed:
    """Frames at `times` (decoded at most 1280 wide) and the people in them, in decoded pixels."""
    with VideoReader(path) as reader:
        width = 1280 if reader.info.width > 1280 else None
        frames = dict(reader.frames_at(times, width=width))
    times = sorted(frames)
    people = estimator.analyze([frames[t] for t in times])
    observations = [
        [Observation(t, p.box.astype(np.float64), p.score, p.keypoints.astype(np.float64)) for p in found]
        for t, found in zip(times, people, strict=True)
    ]
    height, width = frames[times[0]].shape[:2]
    return frames, observations, (width, height)


def grid(start: float, end: float, step: float = 0.25) -> list[float]:
    return [round(start + i * step, 3) for i in range(round((end - start) / step) + 1)]


@pytest.fixture(scope="module")
def juggler(estimator: PoseEstimator, shared_videos: Path) -> Observed:
    return observe(estimator, shared_videos / "juggle_one_person.mp4", grid(1.0, 5.0))


@pytest.fixture(scope="module")
def two_men(estimator: PoseEstimator, shared_videos: Path) -> Observed:
    # hug_two_men_lab: before the hug the man in grey (left) and the man in black stand apart
    return observe(estimator, shared_videos / "corpus/hug_two_men_lab.mp4", grid(0.1, 0.85, 0.15))


def test_one_person_hidden_for_a_moment_is_one_track(juggler: Observed) -> None:
    frames, observations, size = juggler
    assert all(len(found) == 1 for found in observations)
    # hide him for 1.5 s, longer than the tracker keeps a lost person here: two tracklets
    visible = [[o for o in found if not 2.0 < o.t_s < 3.5] for found in observations]
    tracklets = bytetrack_tracklets(sorted(frames), visible, min_iou=SETTINGS.track_min_iou, max_lost_s=0.5)
    assert len(tracklets) == 2
    appearance = torso_appearance(frames, tracklets, size, SETTINGS.min_keypoint_score)
    assert set(appearance) == {0, 1}
    [track] = stitch_tracks(tracklets, appearance, RULES)
    assert [o.t_s for o in track.samples] == sorted(o.t_s for found in visible for o in found)
    # the same hiding with the default lost-track time: ByteTrack alone bridges it
    [kept] = bytetrack_tracklets(
        sorted(frames), visible, min_iou=SETTINGS.track_min_iou, max_lost_s=SETTINGS.dense_track_max_gap_s
    )
    assert len(kept.samples) == len(track.samples)


def test_two_people_side_by_side_are_two_tracks_with_ids_by_position(two_men: Observed) -> None:
    frames, observations, _ = two_men
    assert all(len(found) == 2 for found in observations)
    tracks = bytetrack_tracklets(sorted(frames), observations, min_iou=SETTINGS.track_min_iou, max_lost_s=2.0)
    assert [len(t.samples) for t in tracks] == [len(frames)] * 2
    # ids by first appearance, then left to right: track 0 is the man on the left in every frame
    assert all(a.box[0] < b.box[0] for a, b in zip(tracks[0].samples, tracks[1].samples, strict=True))
    again = bytetrack_tracklets(sorted(frames), observations, min_iou=SETTINGS.track_min_iou, max_lost_s=2.0)
    assert [(t.track_id, [id(o) for o in t.samples]) for t in again] == [
        (t.track_id, [id(o) for o in t.samples]) for t in tracks
    ]


def test_two_different_people_are_not_stitched_one_person_is(two_men: Observed) -> None:
    frames, observations, size = two_men
    left = [min(found, key=lambda o: o.box[0]) for found in observations]
    right = [max(found, key=lambda o: o.box[0]) for found in observations]
    half = len(left) // 2
    # the man in grey, then the man in black, one after the other where they stand: near enough to be one
    # person by position, so only their torsos can tell them apart
    grey_then_black = [Track(0, left[:half]), Track(1, right[half:])]
    looks = torso_appearance(frames, grey_then_black, size, SETTINGS.min_keypoint_score)
    assert appearance_distance(looks[0], looks[1]) > RULES.max_appearance
    assert len(stitch_tracks(grey_then_black, looks, RULES)) == 2
    assert len(stitch_tracks(grey_then_black, looks, StitchRules(RULES.max_gap_s, RULES.max_speed, 1.0))) == 1
    grey_then_grey = [Track(0, left[:half]), Track(1, left[half:])]
    looks = torso_appearance(frames, grey_then_grey, size, SETTINGS.min_keypoint_score)
    [grey] = stitch_tracks(grey_then_grey, looks, RULES)
    assert grey.samples == left
    # tracklets seen in one frame are two people, however alike
    together = [Track(0, left), Track(1, right)]
    assert len(stitch_tracks(together, dict.fromkeys((0, 1), looks[0]), RULES)) == 2
