"""The pose-grounded captioner and its judge on whole shots of labelled real videos (the fixtures of
record_fixture.SHOTS, their videos in the shared corpus): interactions become each participant's
actions, nobody who acts is told still, and the judge's evidence rules hold on real evidence."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from haic.v1 import events_pb2
from services.captioner.judge import judge_caption
from services.captioner.kinematics.posture import POSTURE
from services.captioner.service import ClipCaptioner
from services.core.settings import Settings
from services.core.storage import LocalStorage
from tests.captioner.record_fixture import SHOTS


def caption_shot(name: str, shared_videos: Path, make_settings: Callable[..., Settings]) -> events_pb2.Caption:
    video, fixture = SHOTS[name]
    clip = events_pb2.ClipVerdict.FromString(fixture.read_bytes())
    corpus = shared_videos / "corpus"
    clip.storage_uri = (corpus / video).as_uri()
    return ClipCaptioner(make_settings(storage_url=str(corpus)), LocalStorage(corpus)).caption(clip)


def test_the_hug_is_told_for_both_men_and_passes_the_judge(shared_videos: Path, make_settings) -> None:
    caption = caption_shot("hug", shared_videos, make_settings)
    [hug] = caption.interactions
    assert hug.kind == "hugging"
    hugger, hugged = (
        next(s for s in caption.subjects if s.label == label) for label in (hug.subject_label, hug.object_label)
    )
    assert [a.verb_phrase for a in hugger.actions if a.target] == [f"hugs {hugged.label}"]
    assert [a.verb_phrase for a in hugged.actions if a.target] == [f"hugs {hugger.label}"]
    assert all(a.evidence.signals["contact_samples"] >= 4 for s in caption.subjects for a in s.actions if a.target)
    told = f"{hug.subject_label} hugs {hug.object_label}."
    assert told[0].upper() + told[1:] in caption.text
    assert caption.judgement.passed, list(caption.judgement.reasons)


def test_the_squatter_is_told_squatting_and_the_caption_passes(shared_videos: Path, make_settings) -> None:
    caption = caption_shot("squats", shared_videos, make_settings)
    [subject] = caption.subjects
    assert any(a.verb_phrase == "squats three times" for a in subject.actions)
    assert all(a.body_part != POSTURE for a in subject.actions)
    assert caption.judgement.passed, list(caption.judgement.reasons)


def test_three_tracks_of_one_dancer_fail_the_count_against_the_existence_evidence(
    shared_videos: Path, make_settings
) -> None:
    # Two short false tracks (2 and 3 samples) beside the dancer make three subjects; the existence rule
    # never counted more than two people in a sampled frame.
    caption = caption_shot("dance", shared_videos, make_settings)
    assert len(caption.subjects) == 3
    assert "subject_count_vs_existence" in caption.judgement.reasons
    assert caption.judgement.scores["people_max"] < 3


def test_the_man_lost_while_jumping_off_the_box_is_caught_as_one_person_split_in_two(
    shared_videos: Path, make_settings
) -> None:
    # "a person stands on top of the box ... jumps down ... lands in a crouch and moves off to the right":
    # his track ends on the box, a new one starts 2 s later on the grass, a body height away, crouching.
    caption = caption_shot("park", shared_videos, make_settings)
    assert len(caption.subjects) == 3  # two real people
    assert "split_subject" in caption.judgement.reasons
    assert 1.5 <= caption.judgement.scores["split_gap_s"] <= 3.0
    # The woman walking across the whole time is never taken for either part of him.
    assert "split_subject" not in judge_without_the_second_part(caption).reasons


def judge_without_the_second_part(caption: events_pb2.Caption) -> events_pb2.Judgement:
    clip = events_pb2.ClipVerdict.FromString(SHOTS["park"][1].read_bytes())
    last = max(clip.dense_tracks, key=lambda t: t.samples[0].t_s)  # the man again, after his jump
    tracks = [t for t in clip.dense_tracks if t.track_id != last.track_id]
    kept = events_pb2.Caption()
    kept.CopyFrom(caption)
    del kept.subjects[:]
    kept.subjects.extend(s for s in caption.subjects if s.track_id != last.track_id)
    return judge_caption(
        kept,
        tracks,
        clip.info.width,
        clip.info.height,
        still_l1=0.085,
        min_keypoint_score=0.2,
        count_tolerance=1,
        split_max_gap_s=3.0,
    )
