"""Scoring: HAIC's average over categories, the bootstrap interval, chance, refusals, the built-in
answerers and the leaderboard."""

from __future__ import annotations

import pytest

from haic.v1 import events_pb2
from services.qagen.templates import generate_qa_set
from services.scoring.evaluate import (
    CaptionLexicalAnswerer,
    MajorityLetterAnswerer,
    RandomAnswerer,
    evaluate,
    haic_average,
    leaderboard_markdown,
)
from tests.qagen import two_people_caption
from tests.qagen.test_service import judged

COUNT, ATTRIBUTE = events_pb2.QA_CATEGORY_COUNT, events_pb2.QA_CATEGORY_ATTRIBUTE


def _item(item_id: str, category: int, answer: int) -> events_pb2.QAItem:
    return events_pb2.QAItem(
        item_id=item_id, category=category, question="q?", options=["w", "x", "y", "z"], answer_index=answer
    )


class Scripted:
    """Replies given per item id: an answerer whose outcomes the test knows."""

    name, setting = "scripted", "caption"

    def __init__(self, replies: dict[str, str]) -> None:
        self.replies = replies

    def answer(self, item: events_pb2.QAItem, qa: events_pb2.QASet) -> str:
        return self.replies[item.item_id]


def test_the_average_is_the_mean_of_category_accuracies_not_of_items() -> None:
    # 4 count items all right, 1 attribute item wrong: pooled accuracy 0.8, HAIC's average 0.5.
    items = [_item(f"c{i}", COUNT, 1) for i in range(4)] + [_item("a0", ATTRIBUTE, 2)]
    replies = {f"c{i}": "The answer is B" for i in range(4)} | {"a0": "Cannot be determined."}
    result = evaluate(Scripted(replies), [events_pb2.QASet(items=items)], bootstrap_samples=500, seed=1)
    assert result.accuracy(COUNT) == 1.0 and result.accuracy(ATTRIBUTE) == 0.0
    assert result.average == pytest.approx(0.5)
    assert result.refused == 1 and result.unparsed == 0 and result.chance == pytest.approx(0.25)
    assert 0.0 <= result.ci_low <= result.average <= result.ci_high <= 1.0 and result.ci_low < result.ci_high
    record = result.to_record("vid", events_pb2.ClipSpan(clip_id="clip"))
    assert record.average == pytest.approx(0.5) and record.refused == 1
    assert [(c.category, c.correct, c.total) for c in record.categories] == [(COUNT, 4, 4), (ATTRIBUTE, 0, 1)]


def test_the_bootstrap_is_seeded_and_unreadable_replies_count_wrong() -> None:
    items = [_item(f"i{i}", COUNT, i % 4) for i in range(12)]
    replies = {f"i{i}": ("ABCD"[i % 4] if i < 6 else "I think maybe") for i in range(12)}
    runs = [evaluate(Scripted(replies), [events_pb2.QASet(items=items)], 300, seed=7) for _ in range(2)]
    assert runs[0].ci_low == runs[1].ci_low and runs[0].ci_high == runs[1].ci_high
    assert runs[0].average == pytest.approx(0.5) and runs[0].unparsed == 6


def test_haic_average_ignores_absent_categories() -> None:
    import numpy as np

    assert haic_average(np.array([1, 1, 2]), np.array([1.0, 0.0, 1.0])) == pytest.approx(0.75)


def test_baselines_are_deterministic_and_the_majority_letter_is_the_commonest_answer() -> None:
    items = [_item("a", COUNT, 2), _item("b", COUNT, 2), _item("c", COUNT, 0)]
    qa = events_pb2.QASet(items=items)
    assert MajorityLetterAnswerer(items).answer(items[2], qa) == "C"
    random_answerer = RandomAnswerer(seed=3)
    assert [random_answerer.answer(i, qa) for i in items] == [RandomAnswerer(seed=3).answer(i, qa) for i in items]


def test_the_lexical_answerer_reads_the_caption_and_refuses_what_it_does_not_say() -> None:
    caption = judged(two_people_caption())
    qa = generate_qa_set(caption, seed=0)
    qa.caption.CopyFrom(caption)
    answerer = CaptionLexicalAnswerer(refusal_threshold=0.34)
    result = evaluate(answerer, [qa], bootstrap_samples=200)
    assert result.average > result.chance  # it reads the caption: better than chance on the caption's own QA
    blank = events_pb2.QASet(items=qa.items, caption=events_pb2.Caption(text="A clip."))
    assert evaluate(answerer, [blank], bootstrap_samples=200).refused == len(qa.items)


def test_the_leaderboard_lists_answerers_best_first_with_category_columns() -> None:
    caption = judged(two_people_caption())
    qa = generate_qa_set(caption, seed=0)
    qa.caption.CopyFrom(caption)
    items = list(qa.items)
    results = [
        evaluate(a, [qa], bootstrap_samples=200)
        for a in (RandomAnswerer(0), CaptionLexicalAnswerer(0.34), MajorityLetterAnswerer(items))
    ]
    table = leaderboard_markdown(results)
    lines = table.splitlines()
    assert lines[0].startswith("| answerer | setting | items | HAIC average | 95% CI |")
    assert "count" in lines[0] and "attribute" in lines[0] and "interaction" in lines[0]
    averages = [float(line.split("|")[4]) for line in lines[2:5]]
    assert averages == sorted(averages, reverse=True)
    assert "Chance: 25.0." in table
    as_json = results[0].as_dict()
    assert set(as_json["categories"]) >= {"count", "attribute"} and as_json["items"] == len(items)
