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
from services.captioner.appearance import ColourThresholds, describe_appearance, distinct_labels
from services.captioner.judge import acting_tracks, motion_of
from services.captioner.kinematics.actions import detect_actions
from services.captioner.kinematics.interactions import detect_interactions
from services.captioner.kinematics.posture import POSTURE
from services.captioner.kinematics.signals import KinematicsRules
from services.core.bus import now_timestamp
from services.core.caption_text import render_caption
from services.core.contracts import InteractionKind
from services.core.settings import CaptionerBackend, CaptionerServiceSettings
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


def caption_clip(
    clip: events_pb2.ClipVerdict, video: Path, appearance_frames: int, settings: CaptionerServiceSettings
) -> events_pb2.Caption:
    """A caption of an accepted clip whose video is at `video`; the judgement is left to the judge.

    Keypoints, gaps and contact are judged by the settings' kinematics rules (KinematicsRules), garment
    colours by their HAIC_APPEARANCE_* values, and everyone the action rule finds acting (its
    HAIC_MIN_KEYPOINT_L1 and HAIC_MIN_AFFINE_RESIDUAL) is told moving. An accepted clip is never told as
    everyone standing still: its most moving person is told moving.
    """
    tracks = list(clip.dense_tracks) or list(clip.tracks)
    width, height = clip.info.width, clip.info.height
    rules = KinematicsRules.from_settings(settings)
    acting = acting_tracks(
        tracks,
        width,
        height,
        min_keypoint_l1=settings.min_keypoint_l1,
        min_affine_residual=settings.min_affine_residual,
        min_keypoint_score=settings.min_keypoint_score,
    )
    actions = {t.track_id: detect_actions(t, width, height, rules, ensure_action=t.track_id in acting) for t in tracks}
    if clip.verdict == events_pb2.VERDICT_ACCEPTED and tracks and not any(_moves(a) for a in actions.values()):
        most = max(tracks, key=lambda t: motion_of(t, width, height, rules.min_score))
        actions[most.track_id] = detect_actions(most, width, height, rules, ensure_action=True)
    colours = ColourThresholds.from_settings(settings)
    chosen = {t.track_id: appearance_samples(t, appearance_frames) for t in tracks}
    times = sorted({s.t_s for samples in chosen.values() for s in samples})
    with VideoReader(video, VideoInfo.from_proto(clip.info)) as reader:
        frames = dict(reader.frames_at(times))
    attributes = [
        with_face_attributes(describe_appearance([(frames[s.t_s], s) for s in chosen[t.track_id]], colours), t)
        for t in tracks
    ]
    labels = distinct_labels(attributes, [_centre_x(t) for t in tracks])
    label_of = {t.track_id: label for t, label in zip(tracks, labels, strict=True)}
    subjects = [
        events_pb2.Subject(
            track_id=t.track_id,
            label=label_of[t.track_id],
            attributes=attrs,
            actions=actions[t.track_id],
        )
        for t, attrs in zip(tracks, attributes, strict=True)
    ]
    interactions = detect_interactions(tracks, label_of, width, height, rules)
    by_label = {s.label: s for s in subjects}
    for interaction in interactions:
        for actor, verb, other in _INTERACTION_ACTIONS.get(interaction.kind, ()):
            doer = by_label.get(interaction.subject_label if actor == "subject" else interaction.object_label)
            target = interaction.object_label if other == "object" else interaction.subject_label
            if doer is not None:
                doer.actions.append(_interaction_action(interaction, f"{verb} {target}", target))
    for subject in subjects:
        subject.actions.sort(key=lambda a: (a.start_s, a.end_s, a.verb_phrase))
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


# What each participant of an interaction does, told among their own actions: (who, verb, whom).
# A hug is mutual (both hold each other); a touch or an approach is the subject's.
_INTERACTION_ACTIONS: dict[str, tuple[tuple[str, str, str], ...]] = {
    InteractionKind.HUGGING: (("subject", "hugs", "object"), ("object", "hugs", "subject")),
    InteractionKind.TOUCHING: (("subject", "touches", "object"),),
    InteractionKind.APPROACHING: (("subject", "walks up to", "object"),),
}


def _interaction_action(interaction: events_pb2.Interaction, phrase: str, target: str) -> events_pb2.Action:
    return events_pb2.Action(
        start_s=interaction.start_s,
        end_s=interaction.end_s,
        verb_phrase=phrase,
        body_part="arms" if interaction.kind in (InteractionKind.HUGGING, InteractionKind.TOUCHING) else "whole body",
        target=target,
        evidence=interaction.evidence,
    )


def with_face_attributes(
    attributes: events_pb2.SubjectAttributes, track: events_pb2.PersonTrack
) -> events_pb2.SubjectAttributes:
    """The garments plus the gender and age group the pose stage read from the track's face (empty,
    so unsaid, where the face could not tell)."""
    attributes.gender = track.attributes.gender
    attributes.age_group = track.attributes.age_group
    return attributes


def _centre_x(track: events_pb2.PersonTrack) -> float:
    xs: Sequence[float] = [(s.box.x1 + s.box.x2) / 2 for s in track.samples]
    return float(np.median(xs)) if xs else 0.0


def _moves(actions: Sequence[events_pb2.Action]) -> bool:
    return any(a.body_part != POSTURE for a in actions)
