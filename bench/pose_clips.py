"""Pose stage on the shared videos: frames decoded per clip, and clip verdicts per second.

    .venv/bin/python bench/pose_clips.py [--videos DIR]

Serves the built models (`haic models build`) on the embedded PyTriton server and runs the pose
stage (`ClipAnalyzer`, the same code as the worker and AnalyzeClip) on every candidate clip the
filter makes of the shared videos (long scenes split into windows so they reach the pose stage).

- frames decoded: what the seeking sampler decoded for a clip (16 existence + 1 fps action + 4 fps
  dense targets, converted to RGB; between a keyframe and a target every frame must be decoded, so
  long GOPs decode most of the clip anyway) against the clip's frame count (decoding the whole clip);
  the shared files have long GOPs (up to 10 s), so the bench adds a copy of the juggling video
  re-encoded with a keyframe every 0.5 s, as streaming sources often are, to show what seeking saves;
- verdicts per second: clips analysed per second of wall time, one clip at a time, everything
  included (decode, Triton, the rules).
"""

from __future__ import annotations

import argparse
import logging
import shutil
import tempfile
import time
from pathlib import Path

import av

from haic.v1 import events_pb2
from haic_tools.models.build import build_model_repository
from services.core.settings import LongScenePolicy, Settings
from services.core.storage import LocalStorage
from services.core.video import probe
from services.filter.service import split_video
from services.pose.estimator import PoseEstimator
from services.pose.service import ClipAnalyzer
from services.pose.triton_client import TritonInference
from services.pose.triton_process import EmbeddedTriton, TritonPorts, find_python

VIDEO_SUFFIXES = {".mp4", ".avi", ".mov", ".mkv", ".webm"}
ROW = "{:<34} {:<16} {:>8} {:>8} {:>6} {:>8}"


def short_gop_copy(source: Path, target: Path, gop_s: float = 0.5) -> Path:
    """The video re-encoded with H.264 and a keyframe every gop_s seconds (PyAV's bundled libx264)."""
    with av.open(str(source)) as src, av.open(str(target), "w") as dst:
        in_stream = src.streams.video[0]
        rate = in_stream.average_rate
        out = dst.add_stream("libx264", rate=rate)
        out.width, out.height, out.pix_fmt = in_stream.width, in_stream.height, "yuv420p"
        out.gop_size = max(1, round(float(rate) * gop_s))
        out.options = {"crf": "20", "preset": "veryfast"}
        for frame in src.decode(in_stream):
            dst.mux(out.encode(frame.reformat(format="yuv420p")))
        dst.mux(out.encode(None))
    return target


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--videos", type=Path, default=Path(__file__).resolve().parents[2] / "shared" / "videos")
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)

    with tempfile.TemporaryDirectory() as tmp:
        settings = Settings(data_dir=Path(tmp), storage_url=str(args.videos), long_scene_policy=LongScenePolicy.split)
        report = build_model_repository(settings)
        store = Path(tmp) / "videos"
        store.mkdir()
        for path in args.videos.iterdir():
            if path.suffix.lower() in VIDEO_SUFFIXES:
                shutil.copyfile(path, store / path.name)
        short_gop_copy(args.videos / "juggle_one_person.mp4", store / "juggle_gop_0.5s.mp4")
        settings = settings.model_copy(update={"storage_url": str(store)})
        storage = LocalStorage(store)
        videos = sorted(store.iterdir())
        with EmbeddedTriton(report.repository, find_python(settings.triton_python), TritonPorts.free()) as triton:
            print(f"Triton ready in {triton.ready_s:.1f} s serving {', '.join(triton.models)}")
            with TritonInference(
                triton.url,
                timeout_s=settings.triton_timeout_s,
                retries=settings.triton_retries,
                max_batch_size=settings.triton_max_batch_size,
            ) as backend:
                analyzer = ClipAnalyzer(settings, storage, PoseEstimator.from_settings(backend, settings))
                print(ROW.format("clip", "verdict", "decoded", "of clip", "ratio", "wall s"))
                total_s, clips, decoded, frames = 0.0, 0, 0, 0
                for path in videos:
                    info = probe(path)
                    uploaded = events_pb2.VideoUploaded(
                        video_id=f"vid_{path.stem}", storage_uri=path.as_uri(), info=info.to_proto()
                    )
                    for clip in split_video(uploaded, settings, storage).candidates:
                        started = time.perf_counter()
                        verdict = analyzer.analyze(clip)
                        spent = time.perf_counter() - started
                        clip_frames = round((clip.span.end_s - clip.span.start_s) * info.fps)
                        n = int(verdict.values["frames_decoded"])
                        outcome = "accepted" if verdict.verdict == events_pb2.VERDICT_ACCEPTED else verdict.reason_code
                        name = f"{path.name} {clip.span.start_s:.0f}-{clip.span.end_s:.0f}s"
                        print(ROW.format(name, outcome, n, clip_frames, f"{n / clip_frames:.2f}", f"{spent:.2f}"))
                        total_s, clips, decoded, frames = total_s + spent, clips + 1, decoded + n, frames + clip_frames
                print(
                    f"\n{clips} clips in {total_s:.1f} s: {clips / total_s:.2f} clip verdicts/s; "
                    f"{decoded} of {frames} clip frames decoded ({decoded / frames:.2f})"
                )


if __name__ == "__main__":
    main()
