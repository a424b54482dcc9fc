"""VideoReader's frames are PyAV's own conversions bit for bit (one reused scaler instead of one per frame),
and the probe's tail check gives the full decode's answer while skipping non-reference frames."""

from __future__ import annotations

from pathlib import Path

import av
import numpy as np
import pytest

from services.core.video import VideoProbeError, VideoReader, probe

VIDEOS = [
    "juggle_one_person.mp4",  # H.264 with B-frames
    "pedestrians_small_long.avi",  # MS-MPEG4
    "corpus/flower_blooms_vp8.webm",
    "corpus/two_people_jump_walk_park_vp9.mp4",
    "corpus/worker_walks_warehouse.gif",  # palette frames
]


def pyav_frames(path: Path, limit: int, **convert: object) -> list[tuple[float, np.ndarray]]:
    """The first frames as PyAV decodes and converts them, with their times."""
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        frames = []
        for frame in container.decode(stream):
            frames.append((float(frame.time or 0.0), frame.to_ndarray(**convert)))
            if len(frames) == limit:
                break
        return frames


@pytest.mark.parametrize("name", VIDEOS)
def test_scene_analysis_frames_equal_pyavs_conversion(name: str, shared_videos: Path) -> None:
    path = shared_videos / name
    with VideoReader(path) as reader:
        width, height = reader._scaled_size(256)
        ours = [frame for _, (_, frame) in zip(range(40), reader.iter_frames(width=256), strict=False)]
    theirs = pyav_frames(path, 40, width=width, height=height, format="bgr24", interpolation="FAST_BILINEAR")
    assert len(ours) == len(theirs) > 0
    for a, (_, b) in zip(ours, theirs, strict=True):
        np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("name", VIDEOS)
def test_sampled_frames_equal_pyavs_conversion(name: str, shared_videos: Path) -> None:
    path = shared_videos / name
    full = pyav_frames(path, 12, format="rgb24")
    # every third of the first frames, at their own times: frames_at must hand back exactly those
    times = [t for t, _ in full[::3]]
    with VideoReader(path) as reader:
        ours = dict(reader.frames_at(times))
        width, height = reader._scaled_size(160)
        small = dict(reader.frames_at(times, width=160))
    scaled = pyav_frames(path, 12, width=width, height=height, format="rgb24")
    for t, (_, frame), (_, frame_small) in zip(times, full[::3], scaled[::3], strict=True):
        np.testing.assert_array_equal(ours[t], frame)
        np.testing.assert_array_equal(small[t], frame_small)


def test_probe_still_finds_a_truncated_tail(shared_videos: Path, tmp_path: Path) -> None:
    # one GOP for the whole clip: the tail check decodes through it, skipping the B-frames
    source = shared_videos / "juggle_one_person.mp4"
    info = probe(source)
    assert info.duration_s == pytest.approx(10.29, abs=0.05)
    cut = tmp_path / "cut.mp4"
    cut.write_bytes(source.read_bytes()[: int(source.stat().st_size * 0.9)])
    with pytest.raises(VideoProbeError) as caught:
        probe(cut)
    assert caught.value.code == "truncated"
