"""The review desk's caption checks and JSON shapes, on the QA tests' hand-written two-person caption."""

from __future__ import annotations

import pytest

from haic.v1 import events_pb2
from services.core.caption_checks import (
    Problem,
    caption_from_json,
    caption_to_json,
    check_caption,
    check_item,
    errors,
    item_from_json,
    item_to_json,
    rerender,
)
from tests.qagen import GREEN, RED, two_people_caption

CLIP = (0.0, 10.0)


def caption() -> events_pb2.Caption:
    return two_people_caption()


def paths(problems: list[Problem]) -> set[str]:
    return {p.path for p in problems}


def count_item(answer: int = 1, options: list[str] | None = None) -> events_pb2.QAItem:
    return events_pb2.QAItem(
        item_id="count",
        category=events_pb2.QA_CATEGORY_COUNT,
        question=f"How many times does {GREEN} clap?",
        options=options or ["Three times", "Four times", "Five times", "Twice"],
        answer_index=answer,
        facts=["claps four times"],
    )


def test_the_pipelines_caption_has_no_problems_and_round_trips_through_json() -> None:
    original = caption()
    assert check_caption(original, *CLIP) == []
    data = caption_to_json(original)
    assert data["subjects"][0]["label"] == RED and data["subjects"][0]["attributes"]["gender"] == ""  # printed
    assert "video_id" not in data and "span" not in data  # the clip's, not the editor's
    parsed, problems = caption_from_json(data)
    assert problems == []
    assert list(parsed.subjects) == list(original.subjects)
    assert list(parsed.interactions) == list(original.interactions)


def test_each_structural_check_names_the_field() -> None:
    edited = caption()
    edited.subjects[0].actions[1].end_s = 2.0  # before its start 2.5
    edited.subjects[0].actions[2].start_s = 0.1  # out of order
    edited.subjects[0].actions[3].end_s = 12.0  # past the clip
    edited.subjects[0].actions[4].repetitions = -1
    edited.subjects[1].label = RED  # the same label twice
    edited.subjects[1].attributes.gender = "robot"
    edited.subjects[1].attributes.age_group = "ancient"
    edited.subjects[1].actions[0].verb_phrase = "claps\nfour times"
    edited.interactions[0].kind = "dancing"
    edited.interactions[1].object_label = "the man in the hat"
    found = paths(check_caption(edited, *CLIP))
    assert found == {
        "subjects[0].actions[1].end_s",
        "subjects[0].actions[2].start_s",
        "subjects[0].actions[3].end_s",
        "subjects[0].actions[4].repetitions",
        "subjects[1].label",
        "subjects[1].attributes.gender",
        "subjects[1].attributes.age_group",
        "subjects[1].actions[0].verb_phrase",
        "interactions[0].kind",
        "interactions[1].object_label",
        # the green dress's label is gone (renamed above), so the interactions that name it name no one
        "interactions[0].subject_label",
        "interactions[1].subject_label",
    }


def test_empty_and_overlong_labels_and_no_subjects() -> None:
    edited = caption()
    edited.subjects[0].label = "  "
    edited.subjects[1].label = "x" * 500
    assert {"subjects[0].label", "subjects[1].label"} <= paths(check_caption(edited, *CLIP))
    assert paths(check_caption(events_pb2.Caption(), *CLIP)) == {"subjects"}


def test_markup_is_text_not_a_problem() -> None:
    """The desk shows captions as text: markup in a label is a (strange) label, stored verbatim."""
    edited = caption()
    label = "<script>alert(1)</script> the man"
    edited.subjects[0].label = label
    for interaction in edited.interactions:
        interaction.object_label = label
    assert check_caption(edited, *CLIP) == []
    assert label in rerender(edited, 10.0)


def test_rerender_follows_the_edited_structure() -> None:
    edited = caption()
    before = rerender(edited, 10.0)
    edited.subjects[1].attributes.gender = "male"
    after = rerender(edited, 10.0)
    assert before != after and "man" in after


@pytest.mark.parametrize(
    ("data", "path"),
    [
        ({"subjects": [{"label": "x", "colour": "red"}]}, "subjects[0]"),
        ({"subjects": [{"label": "x", "actions": [{"start_s": "soon"}]}]}, "subjects[0].actions[0].start_s"),
        ({"subjects": [{"track_id": 2**40}]}, ""),  # the message names the field; the parser gives no path
        ({"unknown": 1}, ""),
        ([1, 2], ""),
    ],
)
def test_json_that_is_no_caption_is_a_problem_not_an_exception(data: object, path: str) -> None:
    _caption, problems = caption_from_json(data)
    assert len(problems) == 1 and problems[0].path == path, problems


def test_item_json_uses_category_slugs() -> None:
    data = item_to_json(count_item())
    assert data["category"] == "count" and data["answer_index"] == 1
    parsed, problems = item_from_json(data)
    assert problems == [] and parsed == count_item()
    _item, problems = item_from_json({**data, "category": "QA_CATEGORY_COUNT"})
    assert paths(problems) == {"category"}
    _item, problems = item_from_json({**data, "extra": True})
    assert problems and problems[0].path == ""


def test_item_checks_are_the_validators_with_paths() -> None:
    assert errors(check_item(count_item(), caption())) == []
    wrong_answer = check_item(count_item(answer=0), caption())  # "Three times" is not true
    assert "answer_index" in paths(errors(wrong_answer))
    duplicate = check_item(count_item(options=["Three times", "Four times", "three  times", "Twice"]), caption())
    assert "options[2]" in paths(errors(duplicate))
    out_of_range = check_item(count_item(answer=7), caption())
    assert paths(errors(out_of_range)) == {"answer_index"}


def test_an_unknown_question_form_is_a_warning_only() -> None:
    item = count_item()
    item.question = f"Why does {GREEN} clap?"
    problems = check_item(item, caption())
    assert problems and errors(problems) == [] and problems[0].path == "question"


def test_problem_paths_nest() -> None:
    assert Problem("subjects[0].label", "m").under("caption").path == "caption.subjects[0].label"
    assert Problem("options[1]", "m").under("items[3]").path == "items[3].options[1]"
    assert Problem("", "m").under("items[3]").path == "items[3]"
