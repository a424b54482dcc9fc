"""Contract values shared by services, derived from the protos."""

from __future__ import annotations

from haic.v1 import events_pb2
from services.core.contracts import CATEGORY_BY_SLUG, CATEGORY_SLUGS, OPTION_LETTERS, InteractionKind, category_slug


def test_category_slugs_come_from_the_proto_enum() -> None:
    assert CATEGORY_SLUGS[events_pb2.QA_CATEGORY_ACTION_DETAILS] == "action_details"
    assert CATEGORY_SLUGS[events_pb2.QA_CATEGORY_HUMAN_OBJECT_INTERACTION] == "human_object_interaction"
    assert len(CATEGORY_SLUGS) == len(events_pb2.QACategory.keys()) - 1  # every category but UNSPECIFIED
    assert all(CATEGORY_BY_SLUG[slug] == value for value, slug in CATEGORY_SLUGS.items())
    assert category_slug(events_pb2.QA_CATEGORY_UNSPECIFIED) == "unspecified" == category_slug(999)


def test_items_have_four_lettered_options() -> None:
    assert OPTION_LETTERS == "ABCD"


def test_interaction_kinds_are_one_vocabulary_that_the_renderer_and_qa_phrase() -> None:
    from services.core.caption_text import render_interaction
    from services.core.qa_checks.phrasing import INTERACTION_SIDES

    assert (
        InteractionKind("facing each other") is InteractionKind.FACING_EACH_OTHER
        and InteractionKind.FACING_EACH_OTHER == "facing each other"
    )
    for kind in InteractionKind:
        text = render_interaction(events_pb2.Interaction(kind=kind, subject_label="the man", object_label="the woman"))
        assert ":" not in text, (kind, text)  # a kind the renderer did not know would be written "a and b: kind"
    assert set(INTERACTION_SIDES) <= set(InteractionKind)
