"""The QA validator against a hand-written caption: each check fails the item it should, a valid item passes."""

from __future__ import annotations

import pytest

from haic.v1 import events_pb2
from services.core.qa_checks.oracle import true_options
from services.core.qa_checks.phrasing import base_form, normalize_option, strip_count
from services.core.qa_checks.validator import (
    Issue,
    Severity,
    position_balance,
    rebalance_positions,
    validate_item,
    validate_set,
)
from tests.qagen import GREEN, RED, two_people_caption

CAPTION = two_people_caption()


def qa(
    question: str,
    options: list[str],
    answer: int = 0,
    category: int = events_pb2.QA_CATEGORY_COUNT,
    item_id: str = "item",
) -> events_pb2.QAItem:
    return events_pb2.QAItem(
        item_id=item_id,
        category=category,  # type: ignore[arg-type]
        question=question,
        options=options,
        answer_index=answer,
        facts=["a caption fact"],
    )


def count_item(answer: int = 0, item_id: str = "count") -> events_pb2.QAItem:
    options = ["Three times", "Four times", "Five times", "Twice"]
    options.insert(answer, options.pop(1))  # "Four times" is the truth
    return qa(f"How many times does {GREEN} clap?", options, answer, item_id=item_id)


def test_valid_item_passes() -> None:
    report = validate_item(count_item(), CAPTION)
    assert report.ok, report.findings
    assert report.findings == ()


@pytest.mark.parametrize(
    ("question", "options", "category"),
    [
        (f"How does {GREEN} interact with {RED}?",
         ["Touches them", "Follows them", "Faces them", "Is touched by them"], 1),
        (f"What does {RED} do immediately after they kick the ball with their left leg?",
         ["Walks to the left", "Runs to the left", "Walks to the right", "Sits down"], 3),
        (f"What does {GREEN} do just before they turn around?",
         ["Runs towards the camera", "Runs away from the camera", "Claps", "Jumps"], 3),
        ("What is the person who claps wearing?", ["A green dress", "A red dress", "Blue trousers", "A red top"], 5),
        (f"In which direction does {RED} walk?", ["To the left", "To the right", "Towards the camera",
                                                 "Away from the camera"], 6),
        (f"When does {RED} sit down?", ["At the end of the clip", "In the middle of the clip",
                                        "At the beginning of the clip", "Throughout the clip"], 7),
        (f"What does {RED} do with their right arm?", ["Raises their right arm", "Lowers their right arm",
                                                      "Crosses their right arm", "Swings their right arm"], 8),
        (f"Which whole-body movement does {GREEN} make?", ["Jumps", "Squats", "Sits down", "Lies down"], 9),
        (f"Which object does {RED} interact with?", ["The ball", "The bag", "The chair", "The rope"], 10),
    ],
)  # fmt: skip
def test_valid_items_of_every_question_form_pass(question: str, options: list[str], category: int) -> None:
    report = validate_item(qa(question, options, category=category), CAPTION)
    assert report.ok, report.findings
    assert Issue.UNVERIFIED not in report.issues


def test_duplicate_option_is_caught_case_and_space_insensitively() -> None:
    item = qa(f"How many times does {GREEN} clap?", ["Four times", "Three times", " four  TIMES. ", "Twice"])
    report = validate_item(item, CAPTION)
    assert not report.ok
    assert Issue.DUPLICATE_OPTION in report.issues
    assert [f.option_index for f in report.findings if f.issue is Issue.DUPLICATE_OPTION] == [2]


def test_two_correct_options_are_caught() -> None:
    # Both garments belong to the person who raises their right arm.
    item = qa(
        "What is the person who raises their right arm wearing?",
        ["A red top", "Blue trousers", "A green dress", "A yellow top"],
        category=events_pb2.QA_CATEGORY_ATTRIBUTE,
    )
    report = validate_item(item, CAPTION)
    assert not report.ok
    assert [f.option_index for f in report.findings if f.issue is Issue.MULTIPLE_CORRECT] == [1]


def test_a_distractor_restating_another_true_action_is_a_second_correct_option() -> None:
    item = qa(
        f"Which of these movements does {RED} make?",
        ["Sits down", "Walks to the left", "Claps", "Jumps"],
        category=events_pb2.QA_CATEGORY_ACTION_DETAILS,
    )
    assert Issue.MULTIPLE_CORRECT in validate_item(item, CAPTION).issues


def test_a_shortened_form_of_a_true_action_counts_as_true() -> None:
    # "kicks the ball with their left leg" makes "kicks with their left leg" true as well.
    item = qa(
        f"Which of these movements does {RED} make?",
        ["Sits down", "Kicks with their left leg", "Claps", "Jumps"],
        category=events_pb2.QA_CATEGORY_ACTION_DETAILS,
    )
    assert Issue.MULTIPLE_CORRECT in validate_item(item, CAPTION).issues


def test_an_option_over_fifteen_words_is_caught() -> None:
    long_option = "Claps their hands " + " ".join(["very"] * 12) + " loudly"  # 16 words
    item = qa(f"How many times does {GREEN} clap?", ["Four times", "Three times", "Twice", long_option])
    report = validate_item(item, CAPTION)
    assert not report.ok
    assert [f.option_index for f in report.findings if f.issue is Issue.OPTION_TOO_LONG] == [3]


def test_fifteen_words_is_still_allowed() -> None:
    option = " ".join(["word"] * 15)
    item = qa(f"How many times does {GREEN} clap?", ["Four times", "Three times", "Twice", option])
    assert Issue.OPTION_TOO_LONG not in validate_item(item, CAPTION).issues


def test_giveaway_by_length_is_caught() -> None:
    # 7 words against at most 2: a test-taker picks the long one without watching the video.
    item = qa(
        f"Which of these movements does {RED} make?",
        ["Kicks the ball with their left leg", "Claps", "Jumps", "Turns around"],
        category=events_pb2.QA_CATEGORY_ACTION_DETAILS,
    )
    report = validate_item(item, CAPTION)
    assert not report.ok
    assert Issue.GIVEAWAY_LENGTH in report.issues


def test_giveaway_by_wording_is_caught() -> None:
    # Only the answer repeats "right arm" from the question.
    item = qa(
        f"What does {RED} do with their right arm?",
        ["Raises their right arm", "Claps", "Jumps", "Turns around"],
        category=events_pb2.QA_CATEGORY_LOCAL_POSTURE,
    )
    report = validate_item(item, CAPTION)
    assert not report.ok
    assert Issue.GIVEAWAY_WORDING in report.issues


def test_a_wrong_marked_answer_is_caught() -> None:
    item = qa(f"How many times does {GREEN} clap?", ["Three times", "Four times", "Five times", "Twice"], answer=0)
    report = validate_item(item, CAPTION)
    assert Issue.ANSWER_NOT_SUPPORTED in report.issues
    assert Issue.MULTIPLE_CORRECT in report.issues  # the true "Four times" sits among the distractors


@pytest.mark.parametrize(
    ("options", "answer", "issue"),
    [
        (["Four times", "Three times", "Twice"], 0, Issue.WRONG_OPTION_COUNT),
        (["Four times", "Three times", "Twice", "Five times", "Six times"], 0, Issue.WRONG_OPTION_COUNT),
        (["Four times", "Three times", "Twice", "Five times"], 4, Issue.ANSWER_INDEX_OUT_OF_RANGE),
        (["Four times", "Three times", "Twice", "  "], 0, Issue.EMPTY_OPTION),
    ],
)
def test_shape_errors_are_reported_not_raised(options: list[str], answer: int, issue: Issue) -> None:
    report = validate_item(qa(f"How many times does {GREEN} clap?", options, answer), CAPTION)
    assert not report.ok
    assert issue in report.issues


def test_missing_facts_and_category_are_reported() -> None:
    item = count_item()
    del item.facts[:]
    item.category = events_pb2.QA_CATEGORY_UNSPECIFIED
    assert {Issue.NO_FACTS, Issue.UNSPECIFIED_CATEGORY} <= validate_item(item, CAPTION).issues


def test_people_named_by_number_are_reported() -> None:
    item = qa("How many times does person 2 clap?", ["Four times", "Three times", "Five times", "Twice"])
    report = validate_item(item, CAPTION)
    assert Issue.PERSON_NAMED_BY_NUMBER in report.issues
    assert not report.ok


def test_an_unknown_question_form_is_a_warning_only() -> None:
    item = qa("Why does the crowd cheer?", ["Because of a goal", "Because of rain", "Because of music", "No reason"])
    report = validate_item(item, CAPTION)
    assert report.ok
    assert [(f.issue, f.severity) for f in report.findings] == [(Issue.UNVERIFIED, Severity.WARNING)]


def test_a_question_about_someone_not_in_the_caption_fails() -> None:
    item = qa(
        "How many times does the man in the purple hat clap?", ["Four times", "Three times", "Five times", "Twice"]
    )
    report = validate_item(item, CAPTION)
    assert not report.ok
    assert Issue.SUBJECT_NOT_IN_CAPTION in report.issues
    item = qa(f"How does {RED} interact with the dog?", ["Touches them", "Follows them", "Faces them", "Pats them"])
    assert Issue.SUBJECT_NOT_IN_CAPTION in validate_item(item, CAPTION).issues
    item = qa(f"How many times does {GREEN} wave their right hand?", ["Once", "Twice", "Three times", "Four times"])
    assert Issue.ANSWER_NOT_SUPPORTED in validate_item(item, CAPTION).issues  # she never waves


def test_true_options_recomputed_from_the_caption() -> None:
    assert true_options(f"How many times does {RED} raise their right arm?", CAPTION) == {"four times"}  # 3 + 1
    assert true_options(f"What does {RED} do just before they sit down?", CAPTION) == {"walks to the left"}
    assert true_options(f"What does {RED} do immediately after they raise their right arm?", CAPTION) == {
        "kicks the ball with their left leg"  # the second raise is the last action: nothing follows it
    }
    assert true_options(f"How does {RED} interact with {GREEN}?", CAPTION) == {
        "gets closer to them",
        "is touched by them",
    }
    assert true_options("What is the person who raises their left arm wearing?", CAPTION) == {"green dress"}


def test_text_helpers() -> None:
    assert strip_count("raises their right arm three times") == "raises their right arm"
    assert strip_count("jumps twice") == "jumps"
    assert base_form("lies down") == "lie down"
    assert base_form("touches the ball") == "touch the ball"
    assert base_form("raises their right arm") == "raise their right arm"
    assert normalize_option("  A Red  top. ") == "red top"
    assert normalize_option("Raises his right arm") == "raises their right arm"


# ------------------------------------------------------------------------------------- positions


def test_unbalanced_answer_positions_are_caught() -> None:
    items = [count_item(answer=0, item_id=f"c{i}") for i in range(12)]
    report = validate_set(items, CAPTION)
    assert all(r.ok for r in report.items)
    assert not report.ok
    assert Issue.UNBALANCED_POSITIONS in report.issues
    assert report.balance.counts == (12, 0, 0, 0)
    assert report.balance.p_value < 0.001


def test_rebalancing_spreads_answers_and_keeps_each_answer() -> None:
    items = [count_item(answer=0, item_id=f"c{i}") for i in range(13)]
    rebalanced = rebalance_positions(items, seed=7)
    report = validate_set(rebalanced, CAPTION)
    assert report.ok, (report.findings, report.balance)
    assert sorted(report.balance.counts) == [3, 3, 3, 4]
    for before, after in zip(items, rebalanced, strict=True):
        assert after.options[after.answer_index] == before.options[before.answer_index]
        assert sorted(after.options) == sorted(before.options)
    assert rebalance_positions(items, seed=7) == rebalanced  # deterministic for a seed
    assert rebalance_positions(items, seed=8) != rebalanced
    assert items[0].answer_index == 0  # the input is not modified


def test_small_sets_are_balanced_within_one_item() -> None:
    assert position_balance([count_item(answer=a) for a in (0, 0, 1, 2)]).balanced
    assert not position_balance([count_item(answer=a) for a in (0, 0, 0, 1)]).balanced
    assert position_balance([]).balanced


def test_duplicate_item_ids_in_a_set_are_caught() -> None:
    items = [count_item(answer=a, item_id="same") for a in range(4)]
    assert Issue.DUPLICATE_ITEM_ID in validate_set(items, CAPTION).issues
