"""Scene split on the shared videos and clip planning on synthetic scene lists (HAIC section 3.1)."""

from __future__ import annotations

import functools
import shutil
from collections.abc import Callable
from pathlib import Path

import av
import numpy as np
import pytest

from haic.v1 import events_pb2
from services.core import ids
from services.core.settings import LongScenePolicy, Settings
from services.core.storage import LocalStorage
from services.core.video import VideoReader, probe
from services.filter import scenes
from services.filter.service import split_video

PAPER_BOUNDS = {"min_clip_s": 5.0, "max_clip_s": 20.0}


@functools.cache
def detected(path: Path, detector: str = "content") -> tuple[list[float], list[scenes.Scene], float]:
    """Cuts, scenes and frame duration of a shared video; decoded once per test session."""
    settings = Settings(scene_detector=detector)
    with VideoReader(path) as reader:
        cuts = scenes.detect_cuts(reader, settings)
        return cuts, scenes.scenes_from_cuts(cuts, reader.info.duration_s), 1.0 / reader.info.fps


@pytest.mark.parametrize("detector", ["content", "adaptive"])
def test_slideshow_has_three_six_second_scenes(shared_videos: Path, detector: str) -> None:
    cuts, found, frame_s = detected(shared_videos / "slideshow_three_stills.mp4", detector)
    assert len(cuts) == 2
    assert cuts[0] == pytest.approx(6.0, abs=2 * frame_s)
    assert cuts[1] == pytest.approx(12.0, abs=2 * frame_s)
    assert [s.index for s in found] == [0, 1, 2]
    assert all(s.duration_s == pytest.approx(6.0, abs=2 * frame_s) for s in found)

    plans = scenes.plan_clips("vid_slides", found, long_scene_policy=LongScenePolicy.drop, **PAPER_BOUNDS)
    assert [p.kept for p in plans] == [True, True, True]
    assert [(p.clip_index, p.clip_count, p.scene.index) for p in plans] == [(0, 3, 0), (1, 3, 1), (2, 3, 2)]


def test_reduced_analysis_rate_still_finds_the_cuts(shared_videos: Path) -> None:
    """At 6 analysed frames per second (skip_nonref on for 24 fps), cuts are exact to a sampling step."""
    settings = Settings(scene_analysis_fps=6.0)
    with VideoReader(shared_videos / "slideshow_three_stills.mp4") as reader:
        assert scenes.use_skip_nonref(settings.scene_analysis_fps, reader.info.fps)
        cuts = scenes.detect_cuts(reader, settings)
        decoded = reader.frames_decoded
    assert cuts == [pytest.approx(6.0, abs=1 / 6), pytest.approx(12.0, abs=1 / 6)]
    assert decoded < 432  # the skipped B-frames were never decoded


def test_one_shot_video_is_one_scene(shared_videos: Path) -> None:
    cuts, found, _ = detected(shared_videos / "juggle_one_person.mp4")
    assert cuts == []
    assert len(found) == 1 and found[0].start_s == 0.0
    plans = scenes.plan_clips("vid_juggle", found, long_scene_policy=LongScenePolicy.drop, **PAPER_BOUNDS)
    assert len(plans) == 1 and plans[0].kept
    assert plans[0].duration_s == pytest.approx(10.3, abs=0.05)
    assert plans[0].clip_id == ids.clip_id("vid_juggle", 0.0, found[0].end_s)


def test_long_single_shot_is_dropped_or_split(shared_videos: Path) -> None:
    cuts, found, _ = detected(shared_videos / "pedestrians_small_long.avi")
    assert cuts == []
    assert [(s.start_s, s.end_s) for s in found] == [(0.0, pytest.approx(79.5))]

    dropped = scenes.plan_clips("vid_walk", found, long_scene_policy=LongScenePolicy.drop, **PAPER_BOUNDS)
    assert [(p.decision, p.clip_count) for p in dropped] == [(scenes.ClipDecision.scene_too_long, 1)]

    windows = scenes.plan_clips("vid_walk", found, long_scene_policy=LongScenePolicy.split, **PAPER_BOUNDS)
    assert [p.decision for p in windows] == [scenes.ClipDecision.keep] * 4
    assert [p.duration_s for p in windows] == pytest.approx([19.875] * 4)
    assert [p.start_s for p in windows] == pytest.approx([0.0, 19.875, 39.75, 59.625])
    assert [(p.clip_index, p.clip_count, p.scene.index, p.window_count) for p in windows] == [
        (i, 4, 0, 4) for i in range(4)
    ]
    assert len({p.clip_id for p in windows}) == 4


def synthetic(durations: list[float]) -> list[scenes.Scene]:
    found, start = [], 0.0
    for index, duration in enumerate(durations):
        found.append(scenes.Scene(index, start, start + duration))
        start += duration
    return found


def test_planning_keeps_five_to_twenty_seconds() -> None:
    plans = scenes.plan_clips(
        "vid_syn", synthetic([3.0, 5.0, 20.0, 20.5]), long_scene_policy=LongScenePolicy.drop, **PAPER_BOUNDS
    )
    assert [p.decision for p in plans] == [
        scenes.ClipDecision.scene_too_short,
        scenes.ClipDecision.keep,
        scenes.ClipDecision.keep,
        scenes.ClipDecision.scene_too_long,
    ]
    assert [(p.clip_index, p.clip_count, p.scene.index) for p in plans] == [(i, 4, i) for i in range(4)]
    assert [p.clip_id for p in plans] == [
        ids.clip_id("vid_syn", 0.0, 3.0),
        ids.clip_id("vid_syn", 3.0, 8.0),
        ids.clip_id("vid_syn", 8.0, 28.0),
        ids.clip_id("vid_syn", 28.0, 48.5),
    ]


def test_planning_is_deterministic_and_splits_with_numbering_across_scenes() -> None:
    found = synthetic([6.0, 41.0, 4.0])
    plans = scenes.plan_clips("vid_mix", found, long_scene_policy=LongScenePolicy.split, **PAPER_BOUNDS)
    assert plans == scenes.plan_clips("vid_mix", found, long_scene_policy=LongScenePolicy.split, **PAPER_BOUNDS)
    # 41 s: ceil(41 / 20) = 3 windows of 13.67 s
    assert [(p.scene.index, p.decision) for p in plans] == [
        (0, scenes.ClipDecision.keep),
        (1, scenes.ClipDecision.keep),
        (1, scenes.ClipDecision.keep),
        (1, scenes.ClipDecision.keep),
        (2, scenes.ClipDecision.scene_too_short),
    ]
    assert [p.duration_s for p in plans[1:4]] == pytest.approx([41.0 / 3] * 3)
    assert plans[3].end_s == 47.0
    assert [p.clip_index for p in plans] == [0, 1, 2, 3, 4]
    assert {p.clip_count for p in plans} == {5}


def test_no_cut_means_one_scene_spanning_the_video() -> None:
    assert scenes.scenes_from_cuts([], 12.5) == [scenes.Scene(0, 0.0, 12.5)]
    # cuts at the very start or past the end do not make empty scenes
    assert scenes.scenes_from_cuts([0.0, 4.0, 12.5], 12.5) == [scenes.Scene(0, 0.0, 4.0), scenes.Scene(1, 4.0, 12.5)]


def test_skip_nonref_only_when_sampling_coarser_than_a_b_frame_run() -> None:
    assert not scenes.use_skip_nonref(0.0, 24.0)  # every frame analysed: frame-accurate cuts
    assert not scenes.use_skip_nonref(12.0, 24.0)
    assert scenes.use_skip_nonref(6.0, 24.0)
    assert scenes.use_skip_nonref(2.0, 25.0)


def encode_cut_on_b_frame(path: Path, cut_frame: int, fps: int = 24, frames: int = 120) -> None:
    """Two moving synthetic shots, H.264 with non-reference B-frames and no keyframe at the cut.

    scenecut=0 stops x264 from starting a new GOP at the cut, and b-pyramid=none makes every B-frame
    non-reference, so with a fixed I BBB P pattern the cut frame (4k + 1) is a frame that skip_nonref drops.
    """
    height, width = 180, 320
    rows, cols = np.mgrid[0:height, 0:width]
    with av.open(str(path), "w") as container:
        stream = container.add_stream("libx264", rate=fps)
        stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
        stream.options = {
            "preset": "ultrafast",
            "x264-params": "scenecut=0:bframes=3:b-adapt=0:b-pyramid=none:keyint=250:min-keyint=250",
        }
        for i in range(frames):
            if i < cut_frame:
                channels = [(cols * 2 + i * 7) % 256, (rows * 3 + i * 5) % 256, np.full_like(cols, 60)]
            else:
                channels = [np.full_like(cols, 200), (cols + rows + i * 9) % 256, (rows * 4) % 256]
            image = np.stack(channels, axis=-1).astype(np.uint8)
            container.mux(stream.encode(av.VideoFrame.from_ndarray(image, format="rgb24")))
        container.mux(stream.encode())


def test_cut_on_a_non_reference_frame_is_found_at_its_frame(tmp_path: Path) -> None:
    path, fps, cut_frame = tmp_path / "b_frame_cut.mp4", 24, 61
    encode_cut_on_b_frame(path, cut_frame, fps)
    with VideoReader(path) as reader:
        reference_frames = {round(t * fps) for t, _ in reader.iter_frames(skip_nonref=True)}
        assert cut_frame not in reference_frames  # the case skip_nonref would get wrong
        cuts = scenes.detect_cuts(reader, Settings())
    assert cuts == [pytest.approx(cut_frame / fps, abs=0.5 / fps)]


def test_bad_scene_settings_fail_early(make_settings: Callable[..., Settings]) -> None:
    with pytest.raises(scenes.InvalidSceneSettingsError, match="HAIC_SCENE_DETECTOR='histogram'"):
        scenes.validate_settings(make_settings(scene_detector="histogram"))
    with pytest.raises(scenes.InvalidSceneSettingsError, match="HAIC_MIN_CLIP_S"):
        scenes.validate_settings(make_settings(min_clip_s=25.0))
    scenes.validate_settings(make_settings(scene_detector="adaptive"))


@pytest.mark.parametrize("announce_info", [True, False])
def test_low_resolution_video_is_rejected_whole(
    shared_videos: Path, tmp_path: Path, make_settings: Callable[..., Settings], announce_info: bool
) -> None:
    """static_no_person.mp4 is 416x720: it passes the default 360 px and fails a 480 px minimum."""
    source = shared_videos / "static_no_person.mp4"
    storage = LocalStorage(tmp_path / "videos")
    copy = tmp_path / "upload.mp4"
    shutil.copyfile(source, copy)
    uploaded = events_pb2.VideoUploaded(
        video_id="vid_static",
        storage_uri=storage.put_file(copy, "vid_static.mp4"),
        description="a man waves",
    )
    if announce_info:
        uploaded.info.CopyFrom(probe(source).to_proto())

    result = split_video(uploaded, make_settings(min_short_side_px=480), storage)
    assert result.candidates == []
    [verdict] = result.rejections
    assert (verdict.stage, verdict.reason_code, verdict.verdict) == (
        "filter.metadata",
        "low_resolution",
        events_pb2.VERDICT_REJECTED,
    )
    assert dict(verdict.values) == {"width": 416, "height": 720, "short_side": 416, "min_short_side_px": 480}
    assert not verdict.HasField("span")
    assert (verdict.info.width, verdict.info.height) == (416, 720)

    passed = split_video(uploaded, make_settings(), storage)
    assert passed.rejections == [] and len(passed.candidates) == 1
