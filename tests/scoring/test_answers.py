"""Answer parsing over a corpus of messy model outputs (the forms lmms-eval accepts, and worse)."""

from __future__ import annotations

import pytest

from services.scoring.answers import REFUSED, ParsedAnswer, letter, parse_answer

OPTIONS = ["Raises their right arm", "A red top", "Jumps", "Jumps twice"]
A, B, C, D = 0, 1, 2, 3

CORPUS: list[tuple[str | None, ParsedAnswer]] = [
    # letters, bare and dressed
    ("B", B),
    ("b", B),
    ("(B)", B),
    ("B.", B),
    ("B)", B),
    ("[C]", C),
    (" D \n", D),
    ("**B**", B),
    ("**(D)**", D),
    ("`A`", A),
    # answer prefixes
    ("The answer is B", B),
    ("The answer is B.", B),
    ("The answer is (C).", C),
    ("Answer: b", B),
    ("answer: D", D),
    ("The correct answer is D because he jumps two times.", D),
    ("The best answer is A", A),
    ("Best option: (C)", C),
    ("**Answer:** C", C),
    ("Final answer: B", B),
    ("So the answer is D.", D),
    # a letter leading an explained answer
    ("C. Jumps", C),
    ("B) A red top", B),
    ("(A) Raises their right arm, as seen at the start.", A),
    ("D: Jumps twice", D),
    # the option text itself
    ("Raises their right arm", A),
    ("raises their RIGHT arm.", A),
    ("A red top", B),  # the article A is not option A
    ("a red top", B),
    ("The answer is a red top.", B),
    ("The answer is A red top.", B),
    ("The answer is A because he raises his right arm.", A),
    ("jumps twice", D),
    ("Jumps", C),
    ("He jumps twice in the clip.", D),  # "jumps" inside "jumps twice" is not a second match
    # a lone letter in a short reply
    ("I would go with C", C),
    ("Option C seems right", C),
    # refusals
    ("Cannot be determined from the caption.", REFUSED),
    ("The caption does not provide enough information to answer.", REFUSED),
    ("Not enough information", REFUSED),
    ("I don't know.", REFUSED),
    ("I do not know", REFUSED),
    ("It is impossible to tell from the description.", REFUSED),
    ("The caption doesn't mention what she wears.", REFUSED),
    # unparseable
    ("", None),
    (None, None),
    ("   ", None),
    ("A or B", None),
    ("He waves at the camera.", None),
    ("Maybe the first or the second one, hard to say which of them applies here honestly", None),
    ("E", None),  # not an option letter with four options
    ("Both A and D could be right.", None),
    ("The person in the video performs a sequence of movements across the whole clip.", None),
]


@pytest.mark.parametrize(("reply", "expected"), CORPUS)
def test_corpus(reply: str | None, expected: ParsedAnswer) -> None:
    assert parse_answer(reply, OPTIONS) == expected


def test_corpus_is_large_and_mixed() -> None:
    assert len(CORPUS) >= 25
    outcomes = {expected for _, expected in CORPUS}
    assert {A, B, C, D, REFUSED, None} <= outcomes


def test_without_options_only_letters_and_refusals_parse() -> None:
    assert parse_answer("The answer is C", ()) == C
    assert parse_answer("Raises their right arm", ()) is None
    assert parse_answer("not enough information", ()) is REFUSED


def test_more_options_allow_more_letters() -> None:
    six = ["one", "two", "three", "four", "five", "six"]
    assert parse_answer("F", six) == 5
    assert parse_answer("F", OPTIONS) is None


def test_letter() -> None:
    assert [letter(i) for i in range(4)] == ["A", "B", "C", "D"]
