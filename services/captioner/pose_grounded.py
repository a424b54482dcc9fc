"""The pose-grounded captioner (the embedded default, no language model).

From an accepted clip's dense tracks and a few of its frames: each person's garment colours
(appearance), their actions from kinematics, the interactions between people, then HAIC's text.
Every stated fact keeps its evidence (time range and signal values) for the judge and for QA.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np

from haic.v1 import events_pb2
from services.captioner.appearance import describe_appearance, distinct_labels
from services.captioner.kinematics import detect_actions, detect_interactions
from services.captioner.render import render_caption
from services.core.bus import now_timestamp
from services.core.settings import CaptionerBackend
from services.core.video import VideoInfo, VideoReader

BACKEND = CaptionerBackend.pose_grounded.value


def appearance_samples(track: events_pb2.PersonTrack, count: int) -> list[events_pb2.PoseSample]:
    """The `count` samples with the most confident keypoints, spread over the track (one per time slice)."""
    samples = list(track.samples)
    if len(samples) <= count:
        return samples
    slices = np.array_split(np.arange(len(samples)), count)
    chosen = []
    for indices in slices:
        best = max(indices, key=lambda i: sum(k.score for k in samples[i].keypoints))
        chosen.append(samples[best])
    return chosen


def caption_clip(clip: events_pb2.ClipVerdict, video: Path, appearance_frames: int) -> events_pb2.Caption:
    """A caption of an accepted clip whose video is at `video`; the judgement is left to the judge."""
    tracks = list(clip.dense_tracks) or list(clip.tracks)
    width, height = clip.info.width, clip.info.height
    chosen = {t.track_id: appearance_samples(t, appearance_frames) for t in tracks}
    times = sorted({s.t_s for samples in chosen.values() for s in samples})
    with VideoReader(video, VideoInfo.from_proto(clip.info)) as reader:
        frames = dict(reader.frames_at(times))
    attributes = [describe_appearance([(frames[s.t_s], s) for s in chosen[t.track_id]]) for t in tracks]
    labels = distinct_labels(attributes, [_centre_x(t) for t in tracks])
    label_of = {t.track_id: label for t, label in zip(tracks, labels, strict=True)}
    subjects = [
        events_pb2.Subject(
            track_id=t.track_id,
            label=label_of[t.track_id],
            attributes=attrs,
            actions=detect_actions(t, width, height),
        )
        for t, attrs in zip(tracks, attributes, strict=True)
    ]
    interactions = detect_interactions(tracks, label_of, width, height)
    return events_pb2.Caption(
        video_id=clip.video_id,
        span=clip.span,
        subjects=subjects,
        interactions=interactions,
        text=render_caption(subjects, interactions, clip.span.end_s - clip.span.start_s),
        backend=BACKEND,
        storage_uri=clip.storage_uri,
        produced_at=now_timestamp(),
    )


def _centre_x(track: events_pb2.PersonTrack) -> float:
    xs: Sequence[float] = [(s.box.x1 + s.box.x2) / 2 for s in track.samples]
    return float(np.median(xs)) if xs else 0.0
