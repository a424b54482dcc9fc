"""Scene split (HAIC section 3.1): detect cuts with PySceneDetect, then plan 5 to 20 s clips.

Detection feeds PySceneDetect's detectors frames that FFmpeg scales to the analysis width while
converting them to BGR (256 px by default, the width PySceneDetect itself downscales to before
scoring, so the default thresholds keep their meaning). bench/scene_split.py compares its throughput
with PySceneDetect's own pipeline. Planning is a pure function of the scene list, testable without video.
"""

from __future__ import annotations

import itertools
import logging
import math
from dataclasses import dataclass
from enum import StrEnum

from scenedetect import AdaptiveDetector, ContentDetector, SceneDetector
from scenedetect.common import FrameTimecode

from haic.v1 import events_pb2
from services.core import ids
from services.core.settings import FilterServiceSettings, LongScenePolicy
from services.core.video import VideoReader

log = logging.getLogger(__name__)

STAGE = "filter.scene"
# Shortest scene between two cuts: PySceneDetect's default of 15 frames at 25 fps, given in seconds so
# that a reduced analysis frame rate does not stretch it.
MIN_SCENE_LEN_S = 0.6
# x264 and x265 place at most 3 consecutive B-frames by default; see `use_skip_nonref`.
_MAX_B_FRAME_RUN = 3
# Durations are differences of frame timestamps: a 5 s scene may measure 4.999999999 s.
_DURATION_TOLERANCE_S = 1e-6


class SceneDetectorKind(StrEnum):
    content = "content"
    adaptive = "adaptive"


@dataclass(frozen=True)
class Scene:
    index: int
    start_s: float
    end_s: float

    @property
    def duration_s(self) -> float:
        return self.end_s - self.start_s


class ClipDecision(StrEnum):
    keep = "keep"
    scene_too_short = "scene_too_short"
    scene_too_long = "scene_too_long"


@dataclass(frozen=True)
class ClipPlan:
    """One clip of a video, kept or dropped, with its deterministic id and position."""

    clip_id: str
    start_s: float
    end_s: float
    clip_index: int
    clip_count: int
    scene: Scene
    window_count: int  # windows cut from the scene (1 when it was not split)
    decision: ClipDecision

    @property
    def duration_s(self) -> float:
        return self.end_s - self.start_s

    @property
    def kept(self) -> bool:
        return self.decision is ClipDecision.keep

    def span(self) -> events_pb2.ClipSpan:
        return events_pb2.ClipSpan(
            clip_id=self.clip_id,
            start_s=self.start_s,
            end_s=self.end_s,
            clip_index=self.clip_index,
            clip_count=self.clip_count,
            scene_index=self.scene.index,
        )


class InvalidSceneSettingsError(ValueError):
    """The scene settings cannot work (unknown detector, minimum above maximum)."""


def validate_settings(settings: FilterServiceSettings) -> None:
    """Fails at start-up instead of on every message."""
    try:
        SceneDetectorKind(settings.scene_detector)
    except ValueError:
        choices = ", ".join(kind.value for kind in SceneDetectorKind)
        raise InvalidSceneSettingsError(
            f"HAIC_SCENE_DETECTOR={settings.scene_detector!r}: use one of {choices}"
        ) from None
    if settings.min_clip_s > settings.max_clip_s:
        raise InvalidSceneSettingsError(
            f"HAIC_MIN_CLIP_S={settings.min_clip_s} is above HAIC_MAX_CLIP_S={settings.max_clip_s}"
        )


def make_detector(settings: FilterServiceSettings) -> SceneDetector:
    kind = SceneDetectorKind(settings.scene_detector)
    if kind is SceneDetectorKind.adaptive:
        return AdaptiveDetector(min_scene_len=MIN_SCENE_LEN_S)
    return ContentDetector(threshold=settings.scene_threshold, min_scene_len=MIN_SCENE_LEN_S)


def use_skip_nonref(analysis_fps: float, video_fps: float) -> bool:
    """Whether the decoder may skip non-reference frames (B-frames nothing else predicts from).

    Not when every frame is analysed (the default): a cut that falls on a skipped B-frame would be
    seen only at the next decoded frame, up to a B-frame run (3 frames) late, so the last frames of a
    clip could belong to the next shot; and scores would compare frames 2 to 4 apart, which inflates
    them under motion (false cuts at the default threshold). When the analysis frame rate is reduced
    to a step of more than a B-frame run, cut times are only as exact as that step anyway, and the
    skipped frames are ones the sampler would have decoded and thrown away: skipping then costs no
    accuracy that was there and saves about half the decoding of a B-frame stream.
    """
    return analysis_fps > 0 and analysis_fps * (_MAX_B_FRAME_RUN + 1) <= video_fps


def detect_cuts(reader: VideoReader, settings: FilterServiceSettings) -> list[float]:
    """Times of the scene cuts (the first frame of each new scene), in seconds, in order."""
    detector = make_detector(settings)
    fps = settings.scene_analysis_fps or None
    skip_nonref = use_skip_nonref(settings.scene_analysis_fps, reader.info.fps)
    cuts: list[FrameTimecode] = []
    position: FrameTimecode | None = None
    for t_s, frame in reader.iter_frames(width=settings.scene_analysis_width, fps=fps, skip_nonref=skip_nonref):
        # Frame times, not frame counts, so skipped or subsampled frames keep their true position.
        position = FrameTimecode(max(0.0, t_s), fps=reader.info.fps)
        cuts.extend(detector.process_frame(position, frame))
    if position is not None:
        cuts.extend(detector.post_process(position))
    return sorted({cut.seconds for cut in cuts})


def scenes_from_cuts(cuts: list[float], duration_s: float) -> list[Scene]:
    """Scenes between the cuts; no cut means one scene spanning the video (PySceneDetect returns none)."""
    inner = sorted(t for t in cuts if 0.0 < t < duration_s)
    bounds = [0.0, *inner, duration_s]
    return [Scene(i, start, end) for i, (start, end) in enumerate(itertools.pairwise(bounds))]


def detect_scenes(reader: VideoReader, settings: FilterServiceSettings) -> list[Scene]:
    cuts = detect_cuts(reader, settings)
    scenes = scenes_from_cuts(cuts, reader.info.duration_s)
    log.info("%s: %d cut(s), %d scene(s)", reader.path.name, len(cuts), len(scenes))
    return scenes


def _windows(scene: Scene, max_clip_s: float) -> list[tuple[float, float]]:
    """n = ceil(d / max) equal windows; each is longer than max/2, so within 5 to 20 s by default."""
    count = max(1, math.ceil((scene.duration_s - _DURATION_TOLERANCE_S) / max_clip_s))
    width = scene.duration_s / count
    starts = [scene.start_s + i * width for i in range(count)]
    return [(start, scene.end_s if i == count - 1 else start + width) for i, start in enumerate(starts)]


def _decide(duration_s: float, min_clip_s: float, max_clip_s: float) -> ClipDecision:
    if duration_s < min_clip_s - _DURATION_TOLERANCE_S:
        return ClipDecision.scene_too_short
    if duration_s > max_clip_s + _DURATION_TOLERANCE_S:
        return ClipDecision.scene_too_long
    return ClipDecision.keep


def plan_clips(
    video_id: str,
    scenes: list[Scene],
    *,
    min_clip_s: float,
    max_clip_s: float,
    long_scene_policy: LongScenePolicy,
) -> list[ClipPlan]:
    """Every clip of the video in time order, kept or dropped, numbered across the whole video.

    A scene between min_clip_s and max_clip_s is one kept clip; a shorter one is dropped; a longer one
    is dropped (policy drop, the paper) or cut into equal windows (policy split), each then judged by
    the same bounds.
    """
    pieces: list[tuple[Scene, float, float, int, ClipDecision]] = []
    for scene in scenes:
        decision = _decide(scene.duration_s, min_clip_s, max_clip_s)
        if decision is ClipDecision.scene_too_long and long_scene_policy is LongScenePolicy.split:
            windows = _windows(scene, max_clip_s)
            for start, end in windows:
                pieces.append((scene, start, end, len(windows), _decide(end - start, min_clip_s, max_clip_s)))
        else:
            pieces.append((scene, scene.start_s, scene.end_s, 1, decision))
    return [
        ClipPlan(
            clip_id=ids.clip_id(video_id, start, end),
            start_s=start,
            end_s=end,
            clip_index=index,
            clip_count=len(pieces),
            scene=scene,
            window_count=window_count,
            decision=decision,
        )
        for index, (scene, start, end, window_count, decision) in enumerate(pieces)
    ]
