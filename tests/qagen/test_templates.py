"""The template QA backend over a hand-written two-person caption.

The expected answers below are written out by hand from the caption in tests/qagen/__init__.py, not
recomputed with the validator's code, so a shared bug in caption reading cannot make both agree.
"""

from __future__ import annotations

import re

import pytest

from haic.v1 import events_pb2
from services.core.qa_checks.phrasing import normalize_option
from services.core.qa_checks.validator import validate_item, validate_set
from services.qagen.templates import CATEGORY_SLUGS, generate_items, generate_qa_set
from tests.qagen import GREEN, RED, two_people_caption

CAPTION = two_people_caption()
HAIC_CATEGORIES = {
    events_pb2.QA_CATEGORY_INTERACTION,
    events_pb2.QA_CATEGORY_ACTION_DETAILS,
    events_pb2.QA_CATEGORY_ACTION_SEQUENCE,
    events_pb2.QA_CATEGORY_COUNT,
    events_pb2.QA_CATEGORY_ATTRIBUTE,
}
ACTIONART_CATEGORIES = {
    events_pb2.QA_CATEGORY_MOVING_DIRECTION,
    events_pb2.QA_CATEGORY_TEMPORAL_LOCALIZATION,
    events_pb2.QA_CATEGORY_LOCAL_POSTURE,
    events_pb2.QA_CATEGORY_GLOBAL_POSTURE,
    events_pb2.QA_CATEGORY_HUMAN_OBJECT_INTERACTION,
}

# Each person's actions in time order, without counts, as the caption states them.
ACTIONS = {
    RED: [
        "raises their right arm",
        "kicks the ball with their left leg",
        "walks to the left",
        "sits down",
        "raises their right arm",
    ],
    GREEN: ["claps", "runs towards the camera", "turns around", "raises their left arm", "jumps"],
}
BASE = {  # the phrases after "they"
    "raise their right arm": "raises their right arm",
    "kick the ball with their left leg": "kicks the ball with their left leg",
    "walk to the left": "walks to the left",
    "sit down": "sits down",
    "clap": "claps",
    "run towards the camera": "runs towards the camera",
    "turn around": "turns around",
    "raise their left arm": "raises their left arm",
    "jump": "jumps",
}
COUNTS = {
    (RED, "raise their right arm"): "four times",  # three times, then once more at the end
    (RED, "kick the ball with their left leg"): "twice",
    (GREEN, "clap"): "four times",
    (GREEN, "raise their left arm"): "once",
    (GREEN, "jump"): "twice",
}
GARMENTS = {RED: {"red top", "blue trousers"}, GREEN: {"green dress"}}
DIRECTIONS = {(RED, "walk"): "to the left", (GREEN, "run"): "towards the camera"}
INTERACTIONS = {
    (RED, GREEN): {"gets closer to them", "is touched by them"},
    (GREEN, RED): {"gets closer to them", "touches them"},
}
WHEN = {  # thirds of the 10 s clip, by the action's midpoint
    (RED, "kick the ball with their left leg"): "at beginning of clip",
    (RED, "walk to the left"): "in middle of clip",
    (RED, "sit down"): "at end of clip",
    (GREEN, "clap"): "at beginning of clip",
    (GREEN, "run towards the camera"): "in middle of clip",
    (GREEN, "turn around"): "in middle of clip",
    (GREEN, "raise their left arm"): "at end of clip",
    (GREEN, "jump"): "at end of clip",
}
LIMBS = {
    (RED, "right arm"): "raises their right arm",
    (RED, "left leg"): "kicks the ball with their left leg",
    (GREEN, "hands"): "claps",
    (GREEN, "left arm"): "raises their left arm",
}
OBJECTS = {RED: "ball"}
LABEL = f"(?P<who>{re.escape(RED)}|{re.escape(GREEN)})"


def _words(text: str) -> str:
    """normalize_option, plus 'the' dropped everywhere, so 'At the end of the clip' = 'at end of clip'."""
    return " ".join(w for w in normalize_option(text).split() if w != "the")


def expected_answers(item: events_pb2.QAItem) -> set[str]:
    """Every correct answer to the item's question, from the hand-written tables above."""
    q = item.question
    category = item.category
    if category == events_pb2.QA_CATEGORY_INTERACTION:
        m = re.fullmatch(f"How does {LABEL} interact with (?P<other>.+)\\?", q)
        assert m, q
        return INTERACTIONS[(m["who"], m["other"])]
    if category in (events_pb2.QA_CATEGORY_ACTION_DETAILS, events_pb2.QA_CATEGORY_GLOBAL_POSTURE):
        m = re.fullmatch(f"Which (?:of these movements|whole-body movement) does {LABEL} make\\?", q)
        assert m, q
        return set(ACTIONS[m["who"]])
    if category == events_pb2.QA_CATEGORY_ACTION_SEQUENCE:
        m = re.fullmatch(f"What does {LABEL} do (?P<when>immediately after|just before) they (?P<act>.+)\\?", q)
        assert m, q
        actions = ACTIONS[m["who"]]
        step = 1 if m["when"] == "immediately after" else -1
        return {
            actions[i + step] for i, a in enumerate(actions) if a == BASE[m["act"]] and 0 <= i + step < len(actions)
        }
    if category == events_pb2.QA_CATEGORY_COUNT:
        m = re.fullmatch(f"How many times does {LABEL} (?P<act>.+)\\?", q)
        assert m, q
        return {COUNTS[(m["who"], m["act"])]}
    if category == events_pb2.QA_CATEGORY_ATTRIBUTE:
        m = re.fullmatch("What is the person who (?P<act>.+) wearing\\?", q)
        assert m, q
        return set().union(*(GARMENTS[who] for who, acts in ACTIONS.items() if m["act"] in acts))
    if category == events_pb2.QA_CATEGORY_MOVING_DIRECTION:
        m = re.fullmatch(f"In which direction does {LABEL} (?P<motion>walk|run)\\?", q)
        assert m, q
        return {DIRECTIONS[(m["who"], m["motion"])]}
    if category == events_pb2.QA_CATEGORY_TEMPORAL_LOCALIZATION:
        m = re.fullmatch(f"When does {LABEL} (?P<act>.+)\\?", q)
        assert m, q
        return {WHEN[(m["who"], m["act"])]}
    if category == events_pb2.QA_CATEGORY_LOCAL_POSTURE:
        m = re.fullmatch(f"What does {LABEL} do with their (?P<part>.+)\\?", q)
        assert m, q
        return {LIMBS[(m["who"], m["part"])]}
    if category == events_pb2.QA_CATEGORY_HUMAN_OBJECT_INTERACTION:
        m = re.fullmatch(f"Which object does {LABEL} interact with\\?", q)
        assert m, q
        return {OBJECTS[m["who"]]}
    raise AssertionError(f"unexpected category {category}")


@pytest.fixture(scope="module")
def items() -> list[events_pb2.QAItem]:
    return generate_items(CAPTION, seed=0)


def test_all_five_haic_categories_and_the_supported_actionart_ones(items: list[events_pb2.QAItem]) -> None:
    categories = {item.category for item in items}
    assert categories >= HAIC_CATEGORIES
    assert categories >= ACTIONART_CATEGORIES  # the caption has directions, limbs, postures and a ball


def test_every_answer_is_correct_and_no_distractor_is(items: list[events_pb2.QAItem]) -> None:
    for item in items:
        expected = {_words(a) for a in expected_answers(item)}
        assert _words(item.options[item.answer_index]) in expected, (item.question, list(item.options))
        for index, option in enumerate(item.options):
            if index != item.answer_index:
                assert _words(option) not in expected, (item.question, option)


def test_every_item_passes_the_validator_and_the_set_is_balanced(items: list[events_pb2.QAItem]) -> None:
    for item in items:
        report = validate_item(item, CAPTION)
        assert report.ok and not report.findings, (item.question, report.findings)
    report = validate_set(items, CAPTION)
    assert report.ok, (report.findings, report.balance)
    assert max(report.balance.counts) - min(report.balance.counts) <= 1


def test_people_are_named_by_their_labels(items: list[events_pb2.QAItem]) -> None:
    for item in items:
        if item.category == events_pb2.QA_CATEGORY_ATTRIBUTE:
            # the attribute asked about must not name the person: they are picked out by an action
            assert item.question.startswith("What is the person who "), item.question
            assert RED not in item.question and GREEN not in item.question
            continue
        assert RED in item.question or GREEN in item.question, item.question
        assert not re.search(r"\b(?:person|subject)\s*\d|\b(?:first|second) (?:person|subject)\b", item.question)


def test_haic_question_conventions(items: list[events_pb2.QAItem]) -> None:
    by_category: dict[int, list[str]] = {}
    for item in items:
        by_category.setdefault(item.category, []).append(item.question)
    assert all(q.startswith("How many times") for q in by_category[events_pb2.QA_CATEGORY_COUNT])
    assert all(
        "immediately after" in q or "just before" in q for q in by_category[events_pb2.QA_CATEGORY_ACTION_SEQUENCE]
    )
    for item in items:
        assert len(item.options) == 4
        assert all(len(option.split()) <= 15 for option in item.options)
        assert len({normalize_option(option) for option in item.options}) == 4
        assert item.facts, item.question


def test_hard_distractors_are_used(items: list[events_pb2.QAItem]) -> None:
    counts = [i for i in items if i.category == events_pb2.QA_CATEGORY_COUNT]
    for item in counts:
        # count plus or minus one is always among the options
        words = ("once", "twice", "three", "four", "five", "six", "seven", "eight", "nine", "ten")
        numbers = {(w if n < 3 else f"{w} times"): n for n, w in enumerate(words, start=1)}
        values = {numbers[normalize_option(o)] for o in item.options}
        answer = numbers[normalize_option(item.options[item.answer_index])]
        assert answer + 1 in values
    directions = [i for i in items if i.category == events_pb2.QA_CATEGORY_MOVING_DIRECTION]
    for item in directions:
        options = {_words(o) for o in item.options}
        assert {"to left", "to right"} <= options or {"towards camera", "away from camera"} <= options
    attributes = [i for i in items if i.category == events_pb2.QA_CATEGORY_ATTRIBUTE]
    other_people = {"red top", "blue trousers", "green dress"}
    for item in attributes:
        distractors = {normalize_option(o) for n, o in enumerate(item.options) if n != item.answer_index}
        assert distractors & other_people, list(item.options)  # another person's garment


def test_facts_come_from_the_caption(items: list[events_pb2.QAItem]) -> None:
    for item in items:
        for fact in item.facts:
            assert fact.startswith((RED, GREEN)), fact


def test_ids_and_output_are_deterministic_for_a_seed(items: list[events_pb2.QAItem]) -> None:
    again = generate_items(two_people_caption(), seed=0)
    assert [i.SerializeToString(deterministic=True) for i in again] == [
        i.SerializeToString(deterministic=True) for i in items
    ]
    ids = [item.item_id for item in items]
    assert len(set(ids)) == len(ids)
    for item in items:
        assert re.fullmatch(rf"clip_test-{CATEGORY_SLUGS[item.category]}-\d+", item.item_id), item.item_id
    other_seed = generate_items(two_people_caption(), seed=1)
    assert [i.SerializeToString() for i in other_seed] != [i.SerializeToString() for i in items]
    assert validate_set(other_seed, CAPTION).ok


@pytest.mark.parametrize("seed", range(10))
def test_every_seed_gives_valid_correct_items(seed: int) -> None:
    items = generate_items(CAPTION, seed=seed)
    assert {item.category for item in items} >= HAIC_CATEGORIES
    assert validate_set(items, CAPTION).ok
    for item in items:
        assert _words(item.options[item.answer_index]) in {_words(a) for a in expected_answers(item)}


def test_per_category_limit_and_category_filter() -> None:
    items = generate_items(CAPTION, per_category=1)
    assert len(items) == len({item.category for item in items})
    only_counts = generate_items(CAPTION, categories=[events_pb2.QA_CATEGORY_COUNT], per_category=10)
    assert {item.category for item in only_counts} == {events_pb2.QA_CATEGORY_COUNT}
    assert len(only_counts) == len(COUNTS)  # one question per counted action, no repeats
    assert len({item.question for item in only_counts}) == len(only_counts)


def test_unsupported_categories_are_left_out() -> None:
    caption = events_pb2.Caption()
    caption.CopyFrom(CAPTION)
    del caption.interactions[:]
    for subject in caption.subjects:
        for action in subject.actions:
            action.target = ""
            action.direction = ""
    categories = {item.category for item in generate_items(caption)}
    assert events_pb2.QA_CATEGORY_INTERACTION not in categories
    assert events_pb2.QA_CATEGORY_HUMAN_OBJECT_INTERACTION not in categories
    assert events_pb2.QA_CATEGORY_MOVING_DIRECTION not in categories
    assert events_pb2.QA_CATEGORY_COUNT in categories
    assert generate_items(events_pb2.Caption(video_id="empty")) == []


def test_video_clock_actions_in_a_later_clip() -> None:
    # Actions on the video's clock in a clip starting at 100 s: thirds are taken inside the clip.
    caption = events_pb2.Caption()
    caption.CopyFrom(CAPTION)
    caption.span.start_s, caption.span.end_s = 100.0, 110.0
    for subject in caption.subjects:
        for action in subject.actions:
            action.start_s += 100
            action.end_s += 100
    items = generate_items(caption, categories=[events_pb2.QA_CATEGORY_TEMPORAL_LOCALIZATION], per_category=10)
    assert items
    for item in items:
        assert _words(item.options[item.answer_index]) in {_words(a) for a in expected_answers(item)}


def test_qa_set_message() -> None:
    qa_set = generate_qa_set(CAPTION, seed=0)
    assert qa_set.video_id == "vid_test"
    assert qa_set.span.clip_id == "clip_test"
    assert qa_set.backend == "templates"
    assert list(qa_set.items) == generate_items(CAPTION, seed=0)
