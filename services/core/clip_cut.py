"""Cutting a clip out of its source video as an H.264 MP4 that any player (and any browser) plays: the files
`haic export --clips` writes, and the clips the review desk plays."""

from __future__ import annotations

import os
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import av
import av.error

from services.core.video import frame_time

# faststart: the index (moov) goes before the frames, so a browser starts playing, and seeks by range
# requests, after the first bytes instead of after fetching the file's end.
_MP4_OPTIONS = {"movflags": "+faststart"}


@dataclass(frozen=True)
class CutRecipe:
    """x264's settings for a cut, and its name (a manifest or cache compares names to find outdated cuts)."""

    x264: tuple[tuple[str, str], ...]
    threads: int  # 0: as many as x264 likes

    @property
    def name(self) -> str:
        x264 = " ".join(f"{k}={v}" for k, v in sorted(self.x264))
        mp4 = " ".join(f"{k}={v}" for k, v in sorted(_MP4_OPTIONS.items()))
        return f"libx264 yuv420p {x264} mp4 {mp4}"


# The exported clips: one thread and no B-frames, so x264 gives the same bytes on every run, which keeps an
# export's re-runs byte-identical; crf 18 is visually lossless for training.
EXPORT_RECIPE = CutRecipe(x264=(("crf", "18"), ("preset", "medium"), ("threads", "1"), ("bf", "0")), threads=1)
# What the review desk plays: made while a reviewer waits, seen once, never part of a dataset, so speed before
# size and determinism (veryfast with threads takes about a quarter of the export's time on two cores). No
# B-frames: with them the MP4's first frame is presented after a decoding delay (an edit list), and the page
# maps the playhead to source time as currentTime + the clip's start.
PREVIEW_RECIPE = CutRecipe(x264=(("crf", "23"), ("preset", "veryfast"), ("bf", "0")), threads=0)
RECIPE = EXPORT_RECIPE.name


class ClipCutError(RuntimeError):
    """A clip could not be cut from its source (missing source, undecodable, empty span); `clip_id` names it."""

    def __init__(self, message: str, clip_id: str = "") -> None:
        super().__init__(message)
        self.clip_id = clip_id


def cut_clip(
    source: Path, start_s: float, end_s: float, target: Path, clip_id: str = "", recipe: CutRecipe = EXPORT_RECIPE
) -> int:
    """Decodes the frames shown in [start_s, end_s) and re-encodes them to an H.264 MP4 at `target`
    (video only) with `recipe`, written under a temporary name and renamed. Returns the number of frames."""
    tmp = target.with_name(f".{target.stem}.{os.getpid()}.tmp.mp4")
    frames = 0
    try:
        with av.open(str(source)) as container:
            if not container.streams.video:
                raise ClipCutError(f"{source} has no video stream", clip_id)
            stream = container.streams.video[0]
            stream.thread_type = "AUTO"  # decoding threads do not change the decoded pixels
            rate = stream.average_rate or stream.guessed_rate or Fraction(25)
            half_frame = 0.5 / float(rate)
            # yuv420p needs even dimensions
            width, height = stream.codec_context.width & ~1, stream.codec_context.height & ~1
            time_base = stream.time_base or Fraction(1, av.time_base)
            container.seek(int(start_s / time_base) + (stream.start_time or 0), stream=stream, backward=True)
            with av.open(str(tmp), "w", format="mp4", options=dict(_MP4_OPTIONS)) as out:
                encoder = out.add_stream("libx264", rate=rate)
                encoder.width, encoder.height, encoder.pix_fmt = width, height, "yuv420p"
                encoder.options = dict(recipe.x264)
                encoder.thread_count = recipe.threads
                for frame in container.decode(stream):
                    t = frame_time(frame, stream)
                    if t + half_frame < start_s:  # before the span: decoded from the keyframe on
                        continue
                    if t + half_frame >= end_s:
                        break
                    picture = frame.reformat(width=width, height=height, format="yuv420p")
                    picture.pts, picture.time_base = frames, Fraction(1) / rate
                    for packet in encoder.encode(picture):
                        out.mux(packet)
                    frames += 1
                for packet in encoder.encode():
                    out.mux(packet)
        if frames == 0:
            raise ClipCutError(f"no frame of {source} lies in {start_s:.3f}-{end_s:.3f} s", clip_id)
        os.replace(tmp, target)
    except av.error.FFmpegError as exc:
        raise ClipCutError(f"{source}: {exc}", clip_id) from exc
    finally:
        tmp.unlink(missing_ok=True)
    return frames
