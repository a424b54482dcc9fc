"""CPU-seconds per rejected video: what a crawl pays for the ~99% of its videos the curation drops.

    .venv/bin/python bench/rejection_cost.py [--videos DIR] [--only SUBSTRING ...] [--repeat N] [--json OUT]

Runs the pipeline's own code in-process on every labelled video of DIR (default ../shared/videos) and
DIR/corpus, plus a synthetic 10 s 1280x720 25 fps clip with nobody in it (the empty parking lot of the
corpus, scaled to 720p, re-encoded with libx264's default GOP), and times three stages in CPU-seconds of
this process (`time.process_time()`: every thread, FFmpeg's decoder threads included):

- probe: the gateway's `probe` (container, first and last second decoded) and the metadata rules;
- filter: the filter stage's `split_video` with the gateway's probe (metadata rules again, scene split);
- pose: the pose stage's `ClipAnalyzer.analyze` on every candidate clip, on the built models through
  in-process onnxruntime with one intra-op thread, so that the figures do not depend on the cores free.

Only videos the curation rejects are in the table (an accepted one pays for its dense tracks, on purpose);
the mean is over them. Model sessions are opened and spaCy is loaded before any timing. With --repeat N
each video is measured N times and the lowest total kept (other processes on the machine only add time).

The "before" column and the before/after ratio compare with BASELINE, the same measurement of the code
before the existence check stopped at a certainly empty frame (see there).
"""

from __future__ import annotations

import argparse
import json
import logging
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from fractions import Fraction
from pathlib import Path
from typing import TypeVar

import av

REPO_ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO_ROOT))

from haic.v1 import events_pb2  # noqa: E402
from haic_tools.models.build import build_model_repository  # noqa: E402
from services.core.settings import Settings  # noqa: E402
from services.core.storage import LocalStorage  # noqa: E402
from services.core.video import VideoProbeError, probe  # noqa: E402
from services.filter.metadata import check_metadata  # noqa: E402
from services.filter.service import split_video  # noqa: E402
from services.pose.estimator import PoseEstimator  # noqa: E402
from services.pose.onnx_backend import OnnxRuntimeInference  # noqa: E402
from services.pose.service import ClipAnalyzer  # noqa: E402

SYNTHETIC_SOURCE = Path("corpus") / "parking_lot_empty_long.mp4"
SYNTHETIC_NAME = "synthetic_empty_720p_10s.mp4"
# CPU-s (probe, filter, pose) per rejected video before the cheap rejections of issue 13 item 5 (the code
# of commit c2380aa on the 2-core dev machine, default settings, --repeat 1): the "before" column.
BASELINE: dict[str, tuple[float, float, float]] = {
    "pedestrians_small_long.avi": (0.02, 1.07, 0.00),
    "static_no_person.mp4": (0.12, 0.58, 2.66),
    "camera_pan_static_person.mp4": (0.41, 0.80, 3.94),
    "slideshow_three_stills.mp4": (0.17, 0.91, 9.57),
    "test_card_no_person.mp4": (0.05, 0.59, 1.73),
    "asl_sign_book.mkv": (0.07, 0.21, 0.00),
    "bottles_hand_long.mp4": (0.06, 1.51, 0.00),
    "classroom_seated_static.gif": (0.03, 0.00, 0.00),
    "one_by_one_people_long.mp4": (0.01, 2.13, 0.00),
    "parking_lot_empty_long.mp4": (0.01, 0.63, 0.00),
    "parking_lot_small_people.gif": (0.03, 0.00, 0.00),
    "store_aisle_three_shoppers.gif": (0.07, 0.00, 0.00),
    "three_people_standing_still.gif": (0.05, 0.00, 0.00),
    "two_people_walk_corridor.gif": (0.03, 0.00, 0.00),
    "worker_walks_warehouse.gif": (0.08, 0.00, 0.00),
    "man_chroma_key_camera_leaves.mp4": (0.03, 0.00, 0.00),
    "flower_blooms_vp8.webm": (0.15, 0.31, 2.41),
    "nasa_cleanroom_cuts.mp4": (0.02, 0.00, 0.00),
    "cockatoo_handheld.mp4": (0.31, 0.99, 6.67),
    "keyboard_3frames_rotated.mov": (0.00, 0.00, 0.00),
    "two_people_jump_walk_park_vp9.mp4": (0.20, 1.53, 5.16),
    "two_people_balance_lab_60fps.mp4": (0.20, 0.62, 0.00),
    "hug_two_men_lab.mp4": (0.15, 0.31, 0.00),
    "synthetic_empty_720p_10s.mp4": (0.16, 0.62, 2.96),
}
T = TypeVar("T")


@dataclass
class Row:
    video: str
    size: str
    duration_s: float
    probe_s: float = 0.0
    filter_s: float = 0.0
    pose_s: float = 0.0
    clips: int = 0
    verdict: str = ""

    @property
    def total_s(self) -> float:
        return self.probe_s + self.filter_s + self.pose_s


def cpu(fn: Callable[[], T]) -> tuple[T, float]:
    """fn's result and the CPU-seconds the whole process spent on it."""
    start = time.process_time()
    result = fn()
    return result, time.process_time() - start


def synthetic_clip(corpus_dir: Path, target: Path, seconds: float = 10.0, fps: int = 25) -> Path:
    """A 10 s 1280x720 clip of the empty parking lot (12.5 fps source, each frame shown twice at 25 fps)."""
    if target.exists():
        return target
    partial = target.with_suffix(".partial.mp4")
    with av.open(str(corpus_dir / SYNTHETIC_SOURCE.name)) as src, av.open(str(partial), "w") as dst:
        stream = src.streams.video[0]
        out = dst.add_stream("libx264", rate=fps)
        out.width, out.height, out.pix_fmt = 1280, 720, "yuv420p"
        out.codec_context.time_base = Fraction(1, fps)
        out.options = {"crf": "23", "preset": "medium"}  # libx264's defaults, GOP 250 included
        index = 0
        for frame in src.decode(stream):
            for _ in range(round(fps / float(stream.average_rate or fps))):
                if index >= seconds * fps:
                    break
                scaled = frame.reformat(width=1280, height=720, format="yuv420p")
                scaled.pts, scaled.time_base = index, Fraction(1, fps)
                dst.mux(out.encode(scaled))
                index += 1
            if index >= seconds * fps:
                break
        dst.mux(out.encode(None))
    return partial.rename(target)


class Stages:
    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        backend = OnnxRuntimeInference(build_model_repository(settings).repository, threads=1)
        self.estimator = PoseEstimator.from_settings(backend, settings)

    def measure(self, path: Path, description: str) -> Row:
        info, probe_s = cpu(lambda: probe(path).to_proto())
        uploaded = events_pb2.VideoUploaded(
            video_id=f"vid_{path.stem}", storage_uri=path.as_uri(), info=info, description=description
        )
        metadata, check_s = cpu(lambda: check_metadata(uploaded, info, self.settings))
        row = Row(path.name, f"{info.width}x{info.height}", info.duration_s, probe_s=probe_s + check_s)
        if metadata is not None:
            row.verdict = f"metadata/{metadata.reason_code}"
            return row
        storage = LocalStorage(path.parent)
        split, row.filter_s = cpu(lambda: split_video(uploaded, self.settings, storage))
        row.clips = len(split.candidates)
        analyzer = ClipAnalyzer(self.settings, storage, self.estimator)
        verdicts, row.pose_s = cpu(lambda: [analyzer.analyze(c) for c in split.candidates])
        accepted = [v for v in verdicts if v.verdict == events_pb2.VERDICT_ACCEPTED]
        if accepted:
            row.verdict = "accept"
        else:
            last = verdicts or split.rejections
            codes = sorted({f"{v.stage.split('.')[-1]}/{v.reason_code}" for v in last})
            row.verdict = ",".join(codes)
        return row


def labelled(root: Path) -> list[tuple[Path, str]]:
    videos = []
    for folder in (root, root / "corpus"):
        labels = folder / "labels.json"
        if labels.exists():
            for name, label in json.loads(labels.read_text()).items():
                if not name.startswith("_") and isinstance(label, dict):
                    videos.append((folder / name, label.get("description", "")))
    return videos


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--videos", type=Path, default=REPO_ROOT.parent / "shared" / "videos")
    parser.add_argument("--only", nargs="*", default=[], help="measure only videos whose name contains one of these")
    parser.add_argument("--repeat", type=int, default=1, help="measure each video N times, keep the lowest")
    parser.add_argument("--json", type=Path, help="write the rows here")
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)

    settings = Settings()
    stages = Stages(settings)
    work = Path(tempfile.gettempdir()) / "haic-rejection-cost"
    work.mkdir(exist_ok=True)
    videos = labelled(args.videos)
    videos.append((synthetic_clip(args.videos / "corpus", work / SYNTHETIC_NAME), "A parking lot, nobody walks"))
    if args.only:
        videos = [(p, d) for p, d in videos if any(o in p.name for o in args.only)]
    # warm-up: model sessions, spaCy, FFmpeg's codecs; none of it is a per-video cost
    stages.measure(videos[-1][0], videos[-1][1])

    rows: list[Row] = []
    print(
        f"{'video':<40} {'size':>10} {'dur':>5} {'clips':>5} {'probe':>6} {'filter':>6} {'pose':>6} {'total':>6}",
        end="",
    )
    print(f" {'before':>6}  verdict" if BASELINE else "  verdict")
    for path, description in videos:
        try:
            row = min((stages.measure(path, description) for _ in range(max(1, args.repeat))), key=lambda r: r.total_s)
        except VideoProbeError as exc:
            print(f"{path.name:<40} unreadable: {exc.code}")
            continue
        if row.verdict == "accept":
            continue
        rows.append(row)
        line = (
            f"{row.video:<40} {row.size:>10} {row.duration_s:>5.1f} {row.clips:>5} {row.probe_s:>6.2f} "
            f"{row.filter_s:>6.2f} {row.pose_s:>6.2f} {row.total_s:>6.2f}"
        )
        if BASELINE:
            before = BASELINE.get(row.video)
            line += f" {sum(before):>6.2f}" if before else f" {'':>6}"
        print(f"{line}  {row.verdict}")
    if not rows:
        return
    mean = statistics.fmean(r.total_s for r in rows)
    print(f"\nrejected videos: {len(rows)}; mean CPU-s per rejected video {mean:.2f}")
    print(
        "mean per stage: "
        + ", ".join(
            f"{s} {statistics.fmean(getattr(r, f'{s}_s') for r in rows):.2f}" for s in ("probe", "filter", "pose")
        )
    )
    pose_rejected = [r for r in rows if "existence/" in r.verdict]
    if pose_rejected:
        print(
            f"rejected at existence: {len(pose_rejected)}; mean CPU-s "
            f"{statistics.fmean(r.total_s for r in pose_rejected):.2f}"
        )
    empty = [r for r in rows if "no_person" in r.verdict]
    for what, chosen in (("rejected", rows), ("nobody in view (no_person)", empty)):
        measured = [r for r in chosen if r.video in BASELINE]
        if measured:
            before = statistics.fmean(sum(BASELINE[r.video]) for r in measured)
            after = statistics.fmean(r.total_s for r in measured)
            print(
                f"before/after, {what}, mean over {len(measured)} videos: {before:.2f} -> {after:.2f} CPU-s "
                f"({before / after:.1f}x)"
            )
    if args.json:
        args.json.write_text(json.dumps([{**asdict(r), "total_s": r.total_s} for r in rows], indent=1))


if __name__ == "__main__":
    main()
