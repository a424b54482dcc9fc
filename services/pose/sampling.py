"""Which frames of a clip the pose stage looks at.

Three grids over the clip [start, end):
- existence: ``existence_frames`` times spread uniformly (section 3.1: 16), each at the centre of
  one of that many equal slices;
- action: ``action_fps`` (section 3.1: 1 fps), at the centres of one-second slices;
- dense: ``dense_track_fps`` for the captioner, laid on the action grid's phase so that with a
  dense rate that is a multiple of the action rate every action sample is also a dense sample.

Every time is snapped to the frame shown then, so times that land on one frame become one sample:
the frame is decoded and analysed once, whichever grids share it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass


@dataclass(frozen=True)
class SamplePlan:
    existence: tuple[float, ...]
    action: tuple[float, ...]
    dense: tuple[float, ...]

    @property
    def curation(self) -> tuple[float, ...]:
        """Frames the two filters need, each once, in time order."""
        return tuple(sorted(set(self.existence) | set(self.action)))

    @property
    def all(self) -> tuple[float, ...]:
        return tuple(sorted(set(self.curation) | set(self.dense)))

    @property
    def dense_only(self) -> tuple[float, ...]:
        """Frames the dense tracks add to the curation frames."""
        return tuple(sorted(set(self.dense) - set(self.curation)))


def snap(t_s: float, fps: float, start_s: float, end_s: float) -> float:
    """The presentation time of the frame shown at t_s, kept inside the clip."""
    first = math.ceil(start_s * fps - 1e-6)
    last = max(first, math.ceil(end_s * fps - 1e-6) - 1)
    index = min(max(round(t_s * fps), first), last)
    return round(index / fps, 6)


def uniform_times(start_s: float, end_s: float, count: int) -> list[float]:
    step = (end_s - start_s) / count
    return [start_s + (i + 0.5) * step for i in range(count)]


def grid_times(start_s: float, end_s: float, rate: float, phase_s: float) -> list[float]:
    """Times phase_s + k / rate (any integer k) inside [start_s, end_s)."""
    first = math.ceil((start_s - phase_s) * rate - 1e-9)
    times = []
    k = first
    while (t := phase_s + k / rate) < end_s - 1e-9:
        times.append(t)
        k += 1
    return times


def plan_samples(
    start_s: float, end_s: float, video_fps: float, existence_frames: int, action_fps: float, dense_fps: float
) -> SamplePlan:
    if end_s <= start_s:
        raise ValueError(f"empty clip [{start_s}, {end_s})")

    def snapped(times: list[float]) -> tuple[float, ...]:
        return tuple(sorted({snap(t, video_fps, start_s, end_s) for t in times}))

    action_phase = start_s + 0.5 / action_fps
    return SamplePlan(
        existence=snapped(uniform_times(start_s, end_s, existence_frames)),
        action=snapped(grid_times(start_s, end_s, action_fps, action_phase)),
        dense=snapped(grid_times(start_s, end_s, dense_fps, action_phase)),
    )
