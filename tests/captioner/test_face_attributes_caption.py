"""Gender and age group from the pose stage's faces in the caption: led by them in HAIC's words, unsaid
when unknown, used to tell people apart, and given to the MLLM as grounding."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from haic.v1 import events_pb2
from services.captioner.appearance import distinct_labels
from services.captioner.mllm import evidence_lines
from services.captioner.pose_grounded import with_face_attributes
from services.captioner.service import ClipCaptioner
from services.core.caption_text import describe_person, person_noun, render_caption
from services.core.settings import Settings
from services.core.storage import LocalStorage
from tests.captioner.record_fixture import FIXTURE, SAMPLE


@pytest.mark.parametrize(
    ("gender", "age_group", "noun"),
    [
        ("male", "young adult", "young man"),
        ("female", "middle-aged", "middle-aged woman"),
        ("female", "child", "girl"),
        ("male", "teenager", "teenage boy"),
        ("", "elderly", "elderly person"),
        ("female", "", "woman"),
        ("", "", "person"),
        ("unknown", "unknown", "person"),  # a label's "unknown" is never said
    ],
)
def test_person_noun_names_gender_and_age_group_as_a_reader_would(gender: str, age_group: str, noun: str) -> None:
    assert person_noun(gender, age_group) == noun


def test_the_description_leads_with_age_and_gender_and_keeps_the_article() -> None:
    top = events_pb2.Garment(item="top", color="gray")
    man = events_pb2.SubjectAttributes(gender="male", age_group="young adult", clothing=[top])
    assert describe_person(man) == "a young man wearing a gray top"
    elderly = events_pb2.SubjectAttributes(gender="female", age_group="elderly", clothing=[top])
    assert describe_person(elderly) == "an elderly woman wearing a gray top"
    nobody_knows = events_pb2.SubjectAttributes(clothing=[top])
    assert describe_person(nobody_knows) == "a person wearing a gray top"
    orange = events_pb2.SubjectAttributes(gender="female", age_group="young adult")
    orange.clothing.add(item="top", color="orange")
    assert describe_person(orange) == "a young woman wearing an orange top"


def test_face_attributes_are_copied_from_the_track_and_unknown_stays_empty() -> None:
    seen = events_pb2.PersonTrack(
        track_id=1, attributes=events_pb2.PersonAttributes(gender="female", age_group="young adult", faces_seen=4)
    )
    unseen = events_pb2.PersonTrack(track_id=2, attributes=events_pb2.PersonAttributes(unknown_reason="not_confirmed"))
    garments = [events_pb2.Garment(item="top", color="black")]
    her = with_face_attributes(events_pb2.SubjectAttributes(clothing=garments), seen)
    them = with_face_attributes(events_pb2.SubjectAttributes(clothing=garments), unseen)
    assert (her.gender, her.age_group) == ("female", "young adult")
    assert (them.gender, them.age_group) == ("", "")
    # alike in clothes, told apart by what the face showed; the unknown one is not given a gender
    labels = distinct_labels([her, them], [100.0, 300.0])
    assert labels[0] != labels[1]
    assert labels[0].startswith("the young woman in the black top") and labels[1].startswith("the person in the black")


def test_the_juggler_caption_leads_with_what_his_face_showed(make_settings: Callable[..., Settings]) -> None:
    juggle = events_pb2.ClipVerdict.FromString(FIXTURE.read_bytes())
    juggle.storage_uri = SAMPLE.as_uri()
    juggle.dense_tracks[0].attributes.CopyFrom(
        events_pb2.PersonAttributes(gender="male", age_group="young adult", gender_confidence=0.93, faces_seen=6)
    )
    captioner = ClipCaptioner(make_settings(storage_url=str(SAMPLE.parent)), LocalStorage(SAMPLE.parent))
    caption = captioner.caption(juggle)
    [subject] = caption.subjects
    assert (subject.attributes.gender, subject.attributes.age_group) == ("male", "young adult")
    assert "The first subject is a young man wearing" in caption.text, caption.text
    assert "unknown" not in caption.text
    assert caption.text == render_caption(
        caption.subjects, caption.interactions, juggle.span.end_s - juggle.span.start_s
    )

    lines = evidence_lines(juggle, caption)
    assert "  from the face: male, young adult" in lines
    subject.attributes.gender = subject.attributes.age_group = ""
    assert "  from the face: gender and age group not clear" in evidence_lines(juggle, caption)
