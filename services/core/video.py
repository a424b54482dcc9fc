"""Video probing and frame access with PyAV (bundled FFmpeg).

Readers seek to the timestamps they need instead of decoding whole videos: `frames_at` jumps to the
keyframe before each requested time and decodes forward only from there.
"""

from __future__ import annotations

import bisect
import logging
from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass, fields
from fractions import Fraction
from pathlib import Path

import av
import av.error
import numpy as np
from av.video.reformatter import VideoReformatter

from haic.v1 import events_pb2
from services.core.bus import PoisonMessageError

log = logging.getLogger(__name__)

# Container signatures: a file that starts like a video container but cannot be opened is truncated or
# corrupt (422); anything else is not a video at all (415).
_CONTAINER_MAGIC: tuple[tuple[int, bytes], ...] = (
    (4, b"ftyp"),  # MP4, MOV, 3GP (ISO BMFF)
    (0, b"\x1a\x45\xdf\xa3"),  # Matroska, WebM
    (0, b"RIFF"),  # AVI
    (0, b"OggS"),
    (0, b"FLV"),
    (0, b"\x00\x00\x01\xba"),  # MPEG-PS
    (0, b"\x47"),  # MPEG-TS sync byte
)


class VideoUnreadableError(PoisonMessageError):
    """A stored video, or the video of a clip, is missing or does not decode: retrying cannot help, so the
    bus dead-letters the message and gRPC answers NOT_FOUND (missing) or INVALID_ARGUMENT. One error for
    every stage that reads videos.

    `code` is "not_found" when the store has no such object, otherwise the probe's code (not_a_video,
    truncated, undecodable, ...) or "decode_failed" when decoding broke after a successful probe.
    """

    NOT_FOUND = "not_found"

    def __init__(self, code: str, message: str, *, video_id: str = "", clip_id: str = "") -> None:
        subject = f"clip {clip_id}" if clip_id else f"video {video_id or '<no id>'}"
        super().__init__(f"{subject}: {code}: {message}")
        self.code = code
        self.video_id = video_id
        self.clip_id = clip_id

    @property
    def not_found(self) -> bool:
        return self.code == self.NOT_FOUND


class VideoProbeError(ValueError):
    """The file cannot be used as a video; `code` says why (not_a_video, no_video_stream, ...)."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code


@dataclass(frozen=True)
class VideoInfo:
    width: int
    height: int
    fps: float
    duration_s: float
    frame_count: int
    codec: str
    container: str

    @property
    def short_side(self) -> int:
        return min(self.width, self.height)

    # The fields are the proto's (haic.v1.VideoInfo), in its order: tests/core/test_video_info.py holds them equal.

    @classmethod
    def from_proto(cls, info: events_pb2.VideoInfo) -> VideoInfo:
        return cls(**{f.name: getattr(info, f.name) for f in fields(cls)})

    def to_proto(self) -> events_pb2.VideoInfo:
        return events_pb2.VideoInfo(**asdict(self))


def _looks_like_container(path: Path) -> bool:
    with open(path, "rb") as f:
        head = f.read(16)
    return any(head[offset : offset + len(magic)] == magic for offset, magic in _CONTAINER_MAGIC)


def _stream_duration(container: av.container.InputContainer, stream: av.VideoStream) -> float:
    if stream.duration is not None and stream.time_base is not None:
        return float(stream.duration * stream.time_base)
    if container.duration is not None:
        return container.duration / av.time_base
    return 0.0


def probe(path: Path) -> VideoInfo:
    """Reads the container, checks that the first and the last second decode, and returns the info.

    Raises VideoProbeError with code not_a_video, no_video_stream, zero_duration, undecodable or
    truncated.
    """
    if path.stat().st_size == 0:
        raise VideoProbeError("empty_file", "the file is empty")
    try:
        container = av.open(str(path))
    except (av.error.FFmpegError, UnicodeDecodeError) as exc:
        if _looks_like_container(path):
            raise VideoProbeError("truncated", f"the video container is truncated or corrupt: {exc}") from exc
        raise VideoProbeError("not_a_video", "the file is not a video container FFmpeg can read") from exc
    with container:
        if not container.streams.video:
            raise VideoProbeError("no_video_stream", "the file has no video stream")
        stream = container.streams.video[0]
        duration = _stream_duration(container, stream)
        if duration <= 0:
            raise VideoProbeError("zero_duration", "the video stream has zero duration")
        fps = float(stream.average_rate or stream.guessed_rate or 0) or 25.0
        first = _firstframe_time(container, stream, 0.0)
        if first is None:
            raise VideoProbeError("undecodable", "no frame of the video stream decodes")
        tail_start = max(0.0, duration - 1.0)
        # Reaching the tail decodes the whole last GOP (often the whole video): frames nothing references
        # are skipped on the way, and only if that finds nothing is every frame tried, so the verdict is
        # the full decode's either way.
        last = _firstframe_time(container, stream, tail_start, skip_nonref=True)
        if last is None:
            last = _firstframe_time(container, stream, tail_start)
        if last is None:
            raise VideoProbeError(
                "truncated", f"the container declares {duration:.2f} s but nothing after {tail_start:.2f} s decodes"
            )
        codec_ctx = stream.codec_context
        return VideoInfo(
            width=int(codec_ctx.width),
            height=int(codec_ctx.height),
            fps=fps,
            duration_s=duration,
            frame_count=int(stream.frames or round(duration * fps)),
            codec=str(codec_ctx.name),
            container=str(container.format.name),
        )


def _firstframe_time(
    container: av.container.InputContainer, stream: av.VideoStream, at_s: float, skip_nonref: bool = False
) -> float | None:
    """Time of the first frame at or after `at_s` that decodes (a reference frame with skip_nonref), or None."""
    ctx = stream.codec_context
    ctx.skip_frame = "NONREF" if skip_nonref else "DEFAULT"
    try:
        container.seek(_to_pts(at_s, stream), stream=stream, backward=True)
        for frame in container.decode(stream):
            t = frame_time(frame, stream)
            if t + 1e-3 >= at_s or at_s == 0.0:
                return t
    except av.error.FFmpegError as exc:
        log.debug("decode failed at %.2f s: %s", at_s, exc)
    finally:
        ctx.skip_frame = "DEFAULT"
    return None


def _to_pts(t_s: float, stream: av.VideoStream) -> int:
    time_base = stream.time_base or Fraction(1, av.time_base)
    start = stream.start_time or 0
    return int(t_s / time_base) + start


def frame_time(frame: av.VideoFrame, stream: av.VideoStream) -> float:
    """Seconds from the stream start (stream start offsets removed)."""
    if frame.pts is None:
        return float(frame.time or 0.0)
    time_base = frame.time_base or stream.time_base
    if time_base is None:  # neither the frame nor the stream has one: the frame's own seconds
        return float(frame.time or 0.0)
    return float((frame.pts - (stream.start_time or 0)) * time_base)


class VideoReader:
    """Decodes frames of one video; open it once per video and reuse it for every sample."""

    def __init__(self, path: Path, info: VideoInfo | None = None) -> None:
        """`info` from an earlier probe (the gateway's, carried by the event) skips probing again."""
        self.path = path
        self.info = info or probe(path)
        self._container = av.open(str(path))
        self._stream = self._container.streams.video[0]
        self._stream.thread_type = "AUTO"
        # One scaler for every frame, on the calling thread: a frame's own to_ndarray builds a new context
        # (with its own thread pool) per frame, which costs more CPU than the conversion; same pixels.
        self._reformatter = VideoReformatter()
        self.frames_decoded = 0
        self._keyframes: list[float] | None = None

    def keyframe_times(self) -> list[float]:
        """Times of the keyframes, from the packets alone (demuxing reads no pixels)."""
        if self._keyframes is None:
            self._container.seek(0, stream=self._stream)
            self._keyframes = sorted(
                float((p.pts - (self._stream.start_time or 0)) * p.time_base)
                for p in self._container.demux(self._stream)
                if p.is_keyframe and p.pts is not None
            ) or [0.0]
        return self._keyframes

    def close(self) -> None:
        self._container.close()

    def __enter__(self) -> VideoReader:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _to_ndarray(
        self, frame: av.VideoFrame, width: int | None, height: int | None, fmt: str, interpolation: str | None = None
    ) -> np.ndarray:
        """The frame as an array, scaled and converted like `VideoFrame.to_ndarray` (bit for bit)."""
        return self._reformatter.reformat(
            frame, width=width, height=height, format=fmt, interpolation=interpolation, threads=1
        ).to_ndarray()

    def _scaled_size(self, width: int | None) -> tuple[int | None, int | None]:
        if not width or width >= self.info.width:
            return None, None
        height = max(2, round(self.info.height * width / self.info.width / 2) * 2)
        return width, height

    def iter_frames(
        self, width: int | None = None, fps: float | None = None, fmt: str = "bgr24", skip_nonref: bool = False
    ) -> Iterator[tuple[float, np.ndarray]]:
        """Every frame in order (or at most `fps` per second), scaled in FFmpeg to `width`.

        skip_nonref drops frames no other frame references (B-frames), which the decoder then never
        decodes; fine where a frame or two of resolution does not matter (scene cuts).
        """
        w, h = self._scaled_size(width)
        self._container.seek(0, stream=self._stream)
        ctx = self._stream.codec_context
        ctx.skip_frame = "NONREF" if skip_nonref else "DEFAULT"
        next_t = 0.0
        try:
            for frame in self._container.decode(self._stream):
                self.frames_decoded += 1
                t = frame_time(frame, self._stream)
                if fps and t + 1e-6 < next_t:
                    continue
                next_t = t + 1.0 / fps if fps else 0.0
                # Bilinear is enough for frame-difference scores and ~20% cheaper than FFmpeg's bicubic.
                yield t, self._to_ndarray(frame, w, h, fmt, "FAST_BILINEAR")
        finally:
            ctx.skip_frame = "DEFAULT"

    def frames_at(
        self, timestamps: Sequence[float], width: int | None = None, fmt: str = "rgb24"
    ) -> Iterator[tuple[float, np.ndarray]]:
        """The frame shown at each requested time (sorted, duplicates decoded once), by seeking.

        A seek lands on the keyframe before the target; it is taken only when that keyframe lies past
        the current decoding position, so no frame is decoded twice.
        """
        w, h = self._scaled_size(width)
        keyframes = self.keyframe_times()
        wanted = sorted(set(timestamps))
        decoder: Iterator[av.VideoFrame] | None = None
        position = -1.0  # time of the last decoded frame
        previous: av.VideoFrame | None = None
        half_frame = 0.5 / self.info.fps
        for target in wanted:
            keyframe = keyframes[max(0, bisect.bisect_right(keyframes, target + half_frame) - 1)]
            if decoder is None or target < position or keyframe > position + half_frame:
                self._container.seek(_to_pts(target, self._stream), stream=self._stream, backward=True)
                decoder = self._container.decode(self._stream)
                previous, position = None, -1.0
            chosen = None
            if previous is not None and position + half_frame >= target:
                chosen = previous
            for frame in decoder:
                self.frames_decoded += 1
                previous, position = frame, frame_time(frame, self._stream)
                if position + half_frame >= target:
                    chosen = frame
                    break
            if chosen is None:
                if previous is None:
                    return  # past the end of the stream
                chosen = previous  # the last frame of the stream
            yield target, self._to_ndarray(chosen, w, h, fmt)
