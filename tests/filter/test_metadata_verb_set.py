"""The verb rule measured on the labelled descriptions in tests/filter/data/descriptions.jsonl.

The set (465 web-video-caption-style descriptions, 286 with a verb, 179 without; see bench/verb_rule.py
for the labelling convention) was written for this test: a "dev" part the rules were tuned on and a
"heldout" part written afterwards. Measured with en_core_web_sm 3.8.0: 2 of 286 verb-bearing
descriptions dropped (0.7%; before the subject-chain, determiner, "-ing" and base-form recoveries: 16,
5.6%), 133 of 179 verbless ones caught (74.3%), 109 of 122 (89%) in the categories where the tagger
can tell a noun from a verb. The bounds below sit at those figures, so a change that costs even one
more dropped video or a few caught ones fails here and has to say why.
"""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import pytest

from services.filter.metadata import verb_checker

SET = Path(__file__).parent / "data" / "descriptions.jsonl"
# Noun compounds whose head or modifier is also a verb form: the tagger cannot tell them from a verb
# ("Ocean waves", "Man waves"; "Running track", "Running man"), and the rule keeps them on purpose.
AMBIGUOUS = frozenset({"noun_plural_s", "compound_verblike"})


@pytest.fixture(scope="module")
def verdicts() -> list[tuple[dict[str, object], bool]]:
    rows = [json.loads(line) for line in SET.read_text().splitlines() if line.strip()]
    checker = verb_checker()
    return [(row, checker.analyse(str(row["text"])).has_verb) for row in rows]


def test_the_set_is_labelled_and_varied() -> None:
    rows = [json.loads(line) for line in SET.read_text().splitlines() if line.strip()]
    assert len(rows) >= 400
    texts = [row["text"].lower() for row in rows]
    assert len(set(texts)) == len(texts), "duplicate descriptions"
    assert {row["split"] for row in rows} == {"dev", "heldout"}
    assert all(isinstance(row["has_verb"], bool) and row["category"] for row in rows)
    by_label = Counter(row["has_verb"] for row in rows)
    assert by_label[True] >= 250 and by_label[False] >= 150
    assert len({row["category"] for row in rows}) >= 20


def test_verb_bearing_descriptions_are_kept(verdicts: list[tuple[dict[str, object], bool]]) -> None:
    verb_bearing = [(row, found) for row, found in verdicts if row["has_verb"]]
    dropped = [row["text"] for row, found in verb_bearing if not found]
    assert len(verb_bearing) == 286
    # measured: 2 of 286 (0.7%), "Farmer harvesting wheat" and "Sheep graze on a hillside"; aim <= 1%
    assert len(dropped) <= 2, dropped
    assert len(dropped) / len(verb_bearing) <= 0.01


def test_verbless_descriptions_are_still_caught(verdicts: list[tuple[dict[str, object], bool]]) -> None:
    verbless = [(row, found) for row, found in verdicts if not row["has_verb"]]
    caught = sum(1 for _, found in verbless if not found)
    assert len(verbless) == 179
    assert caught >= 131, f"{caught}/179 caught (measured 133)"
    clear = [(row, found) for row, found in verbless if row["category"] not in AMBIGUOUS]
    clear_caught = sum(1 for _, found in clear if not found)
    assert len(clear) == 122
    assert clear_caught >= 107, f"{clear_caught}/122 caught where the tagger can tell (measured 109)"


def test_every_verb_category_is_kept(verdicts: list[tuple[dict[str, object], bool]]) -> None:
    """No kind of verb-bearing description is lost wholesale: at most one miss per category."""
    misses = Counter(str(row["category"]) for row, found in verdicts if row["has_verb"] and not found)
    assert all(count <= 1 for count in misses.values()), misses
