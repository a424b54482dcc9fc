"""Scene-split throughput: the filter's detector against PySceneDetect's own pipeline, on the shared videos.

    .venv/bin/python bench/scene_split.py [--videos DIR] [--repeat N]

Throughput is in video frames per second of wall time (frames of the video covered, opening included),
the best of --repeat runs. Ways to find the same cuts with the same ContentDetector settings:

- filter: `services.filter.scenes.detect_cuts` with the default settings, frames decoded by PyAV and
  scaled to 256 px in FFmpeg, opening included; as in the service, the reader gets the probe the
  gateway made at upload (carried by the event) instead of probing again;
- filter+skip: the same with the decoder skipping non-reference frames, which the filter does not do
  by default (it can miss or delay cuts; see `scenes.use_skip_nonref`): what that would buy;
- pyscenedetect detect(): `scenedetect.detect(path, ContentDetector())`, the OpenCV backend decoding at
  full resolution and auto-downscaling each frame in Python to about 256 px before scoring;
- pyscenedetect downscale=1: SceneManager with auto_downscale off, scoring full-resolution frames.

Cut lists agree when they have the same length and each pair lies within one frame.
"""

from __future__ import annotations

import argparse
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from unittest import mock

from scenedetect import ContentDetector, SceneManager, detect, open_video

from services.core.settings import Settings
from services.core.video import VideoInfo, VideoReader, probe
from services.filter import scenes

VIDEO_SUFFIXES = {".mp4", ".avi", ".mov", ".mkv", ".webm"}


@dataclass(frozen=True)
class Measurement:
    seconds: float
    cuts: list[float]


def filter_cuts(path: Path, info: VideoInfo) -> list[float]:
    with VideoReader(path, info) as reader:
        return scenes.detect_cuts(reader, Settings())


def filter_skip_nonref_cuts(path: Path, info: VideoInfo) -> list[float]:
    """The filter's detector with non-reference frames skipped (not its default; see use_skip_nonref)."""
    with VideoReader(path, info) as reader, mock.patch.object(scenes, "use_skip_nonref", return_value=True):
        return scenes.detect_cuts(reader, Settings())


def pyscenedetect_default_cuts(path: Path, _info: VideoInfo) -> list[float]:
    scene_list = detect(str(path), ContentDetector())
    return [start.seconds for start, _ in scene_list[1:]]


def pyscenedetect_full_resolution_cuts(path: Path, _info: VideoInfo) -> list[float]:
    video = open_video(str(path))
    manager = SceneManager()
    manager.auto_downscale = False
    manager.downscale = 1
    manager.add_detector(ContentDetector())
    manager.detect_scenes(video)
    return [start.seconds for start, _ in manager.get_scene_list()[1:]]


METHODS: dict[str, Callable[[Path, VideoInfo], list[float]]] = {
    "filter": filter_cuts,
    "filter+skip": filter_skip_nonref_cuts,
    "detect()": pyscenedetect_default_cuts,
    "downscale=1": pyscenedetect_full_resolution_cuts,
}
BASELINES = ("detect()", "downscale=1")


def best_of(run: Callable[[Path, VideoInfo], list[float]], path: Path, info: VideoInfo, repeat: int) -> Measurement:
    best = float("inf")
    cuts: list[float] = []
    for _ in range(repeat):
        started = time.perf_counter()
        cuts = run(path, info)
        best = min(best, time.perf_counter() - started)
    return Measurement(best, cuts)


def agree(left: list[float], right: list[float], frame_s: float) -> bool:
    return len(left) == len(right) and all(abs(a - b) <= frame_s + 1e-9 for a, b in zip(left, right, strict=True))


def row(name: str, frames: int, rates: dict[str, float], tail: str = "") -> str:
    cells = "".join(f"{rates[m]:>13.0f}" for m in METHODS)
    ratios = "".join(f"{rates['filter'] / rates[b]:>20.2f}" for b in BASELINES)
    return f"{name:32}{frames:>7}{cells}{ratios}  {tail}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--videos", type=Path, default=Path(__file__).resolve().parents[2] / "shared" / "videos")
    parser.add_argument("--repeat", type=int, default=3, help="runs per video and method; the best one counts")
    args = parser.parse_args()
    logging.getLogger("pyscenedetect").setLevel(logging.ERROR)

    paths = sorted(p for p in args.videos.iterdir() if p.suffix.lower() in VIDEO_SUFFIXES)
    header = (
        f"{'video frames/s':32}{'frames':>7}"
        + "".join(f"{m:>13}" for m in METHODS)
        + "".join(f"{'filter/' + b:>20}" for b in BASELINES)
        + "  cuts of filter; same as (filter+skip, detect(), downscale=1)"
    )
    print(header)
    print("-" * len(header))
    totals = dict.fromkeys(METHODS, 0.0)
    total_frames = 0
    for path in paths:
        info = probe(path)
        measured = {name: best_of(run, path, info, args.repeat) for name, run in METHODS.items()}
        for name, measurement in measured.items():
            totals[name] += measurement.seconds
        total_frames += info.frame_count
        ours = measured["filter"].cuts
        others = [name for name in METHODS if name != "filter"]
        same = ["yes" if agree(ours, measured[name].cuts, 1.0 / info.fps) else "NO" for name in others]
        rates = {name: info.frame_count / m.seconds for name, m in measured.items()}
        print(row(path.name, info.frame_count, rates, f"{[round(c, 3) for c in ours]}; {', '.join(same)}"))
        for name in others:
            if not agree(ours, measured[name].cuts, 1.0 / info.fps):
                print(f"{'':39}{name} found {[round(c, 3) for c in measured[name].cuts]}")
    print("-" * len(header))
    print(row("all videos", total_frames, {name: total_frames / seconds for name, seconds in totals.items()}))


if __name__ == "__main__":
    main()
