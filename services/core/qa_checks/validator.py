"""Checks multiple-choice QA items against the structured caption they were made from.

Every backend (templates, an LLM) goes through the same checks, and each failed check is reported as
a typed `Finding` rather than raised, so a generator can drop or retry an item and say why:

- shape: a question, exactly four non-empty options, an answer index among them, caption facts;
- wording: no duplicate options (case and spacing ignored), at most 15 words an option, people named
  by their attribute labels and never by number;
- truth: the marked option is true of the caption and no distractor is, by the truth oracle
  (oracle.py); a question in a form the oracle does not know cannot be checked and gets a warning,
  not an error;
- give-aways: a correct option much longer than every distractor, or the only option that repeats
  wording from the question;
- over a set: answer positions balanced across the letters (and `rebalance_positions` to make them so).
"""

from __future__ import annotations

import math
import random
import re
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from enum import StrEnum

from haic.v1 import events_pb2
from services.core.contracts import OPTION_LETTERS
from services.core.qa_checks.oracle import names_unknown_person, option_is_true, parse_question, true_options
from services.core.qa_checks.phrasing import normalize_option

OPTION_COUNT = 4
MAX_OPTION_WORDS = 15
GIVEAWAY_LENGTH_RATIO = 1.5  # a correct option longer than this times the longest distractor stands out
POSITION_TOLERANCE = 0.1  # a letter's share may stray this far from 1/4 (at least one item either way)


class Issue(StrEnum):
    """Why an item or a set fails (or, for UNVERIFIED, could not be fully checked)."""

    EMPTY_QUESTION = "empty_question"
    WRONG_OPTION_COUNT = "wrong_option_count"
    EMPTY_OPTION = "empty_option"
    ANSWER_INDEX_OUT_OF_RANGE = "answer_index_out_of_range"
    UNSPECIFIED_CATEGORY = "unspecified_category"
    NO_FACTS = "no_facts"
    DUPLICATE_OPTION = "duplicate_option"
    OPTION_TOO_LONG = "option_too_long"
    PERSON_NAMED_BY_NUMBER = "person_named_by_number"
    SUBJECT_NOT_IN_CAPTION = "subject_not_in_caption"
    ANSWER_NOT_SUPPORTED = "answer_not_supported"
    MULTIPLE_CORRECT = "multiple_correct"
    GIVEAWAY_LENGTH = "giveaway_length"
    GIVEAWAY_WORDING = "giveaway_wording"
    UNVERIFIED = "unverified"
    DUPLICATE_ITEM_ID = "duplicate_item_id"
    UNBALANCED_POSITIONS = "unbalanced_positions"


class Severity(StrEnum):
    ERROR = "error"
    WARNING = "warning"


@dataclass(frozen=True)
class Finding:
    issue: Issue
    detail: str
    option_index: int | None = None
    severity: Severity = Severity.ERROR


@dataclass(frozen=True)
class ItemReport:
    item_id: str
    findings: tuple[Finding, ...]

    @property
    def ok(self) -> bool:
        return not any(f.severity is Severity.ERROR for f in self.findings)

    @property
    def issues(self) -> set[Issue]:
        return {f.issue for f in self.findings}


@dataclass(frozen=True)
class PositionBalance:
    counts: tuple[int, ...]  # items whose answer is A, B, C, D
    total: int
    max_deviation: float  # largest |share - 1/4| over the letters
    chi_square: float
    p_value: float  # chi-square test against uniform positions (3 degrees of freedom)
    balanced: bool


@dataclass(frozen=True)
class SetReport:
    items: tuple[ItemReport, ...]
    balance: PositionBalance
    findings: tuple[Finding, ...] = field(default=())

    @property
    def ok(self) -> bool:
        return all(r.ok for r in self.items) and not any(f.severity is Severity.ERROR for f in self.findings)

    @property
    def issues(self) -> set[Issue]:
        return {f.issue for f in self.findings}


# ------------------------------------------------------------------------------------------ checks

_BY_NUMBER = re.compile(r"\b(?:person|subject|man|woman|people|individual)\s*#?\s*\d+\b", re.IGNORECASE)

# Words every question and option may share without hinting at the answer.
_STOPWORD_TEXT = (
    "a an the of in on at to with and or their they them he she his her it its is are does do did what which who "
    "whom how when where why many times time this these that person people make makes clip"
)
_STOPWORDS = frozenset(_STOPWORD_TEXT.split())


def _content_words(text: str) -> set[str]:
    # Crude stemming (drop a plural/3rd-person "s") so "raise" in a question meets "raises" in an option.
    words = normalize_option(text).split()
    return {w[:-1] if len(w) > 3 and w.endswith("s") and not w.endswith("ss") else w for w in words} - _STOPWORDS


def _word_count(text: str) -> int:
    return len(text.split())


def validate_item(item: events_pb2.QAItem, caption: events_pb2.Caption) -> ItemReport:
    """Every check of one item against its caption; the report is ok when no finding is an error."""
    findings: list[Finding] = []
    options = list(item.options)
    if not item.question.strip():
        findings.append(Finding(Issue.EMPTY_QUESTION, "the question is empty"))
    if len(options) != OPTION_COUNT:
        findings.append(Finding(Issue.WRONG_OPTION_COUNT, f"{len(options)} options, expected {OPTION_COUNT}"))
    answer_ok = 0 <= item.answer_index < len(options)
    if not answer_ok:
        findings.append(
            Finding(Issue.ANSWER_INDEX_OUT_OF_RANGE, f"answer_index {item.answer_index} with {len(options)} options")
        )
    if item.category == events_pb2.QA_CATEGORY_UNSPECIFIED:
        findings.append(Finding(Issue.UNSPECIFIED_CATEGORY, "the item has no category"))
    if not item.facts:
        findings.append(Finding(Issue.NO_FACTS, "the item lists no caption facts it rests on"))
    if _BY_NUMBER.search(item.question):
        findings.append(Finding(Issue.PERSON_NAMED_BY_NUMBER, "people must be named by attributes, not numbers"))

    seen: dict[str, int] = {}
    for index, option in enumerate(options):
        key = normalize_option(option)
        if not key:
            findings.append(Finding(Issue.EMPTY_OPTION, f"option {OPTION_LETTERS[index % 4]} is empty", index))
            continue
        if key in seen:
            findings.append(
                Finding(Issue.DUPLICATE_OPTION, f"option {index} repeats option {seen[key]}: {option!r}", index)
            )
        else:
            seen[key] = index
        if _word_count(option) > MAX_OPTION_WORDS:
            findings.append(
                Finding(Issue.OPTION_TOO_LONG, f"option {index} has {_word_count(option)} words (max 15)", index)
            )

    if answer_ok and len(options) > 1:
        findings.extend(_truth_findings(item, caption))
        findings.extend(_giveaway_findings(item))
    return ItemReport(item_id=item.item_id, findings=tuple(findings))


def _truth_findings(item: events_pb2.QAItem, caption: events_pb2.Caption) -> list[Finding]:
    parsed = parse_question(item.question, caption)
    if parsed is not None and names_unknown_person(parsed):
        return [Finding(Issue.SUBJECT_NOT_IN_CAPTION, "the question names a person the caption does not have")]
    truth = true_options(item.question, caption)
    if truth is None:
        return [
            Finding(
                Issue.UNVERIFIED,
                "question form not recognised: truth of the options not checked",
                severity=Severity.WARNING,
            )
        ]
    findings = []
    if not option_is_true(item.options[item.answer_index], truth):
        findings.append(
            Finding(Issue.ANSWER_NOT_SUPPORTED, f"the marked answer {item.options[item.answer_index]!r} is not true")
        )
    for index, option in enumerate(item.options):
        if index != item.answer_index and option_is_true(option, truth):
            findings.append(Finding(Issue.MULTIPLE_CORRECT, f"distractor {option!r} is also true", index))
    return findings


def _giveaway_findings(item: events_pb2.QAItem) -> list[Finding]:
    findings = []
    correct = item.options[item.answer_index]
    distractors = [o for i, o in enumerate(item.options) if i != item.answer_index]
    longest = max(_word_count(d) for d in distractors)
    if _word_count(correct) > GIVEAWAY_LENGTH_RATIO * max(longest, 1):
        findings.append(
            Finding(
                Issue.GIVEAWAY_LENGTH,
                f"correct option has {_word_count(correct)} words, the longest distractor {longest}",
                item.answer_index,
            )
        )
    question_words = _content_words(item.question)
    if question_words & _content_words(correct) and not any(question_words & _content_words(d) for d in distractors):
        findings.append(
            Finding(
                Issue.GIVEAWAY_WORDING,
                "only the correct option shares wording with the question",
                item.answer_index,
            )
        )
    return findings


# --------------------------------------------------------------------------------- answer positions


def _chi_square_sf_3(x: float) -> float:
    """Survival function of the chi-square distribution with 3 degrees of freedom (closed form)."""
    if x <= 0:
        return 1.0
    return math.erfc(math.sqrt(x / 2)) + math.sqrt(2 * x / math.pi) * math.exp(-x / 2)


def position_balance(
    items: Sequence[events_pb2.QAItem], tolerance: float = POSITION_TOLERANCE, letters: int = OPTION_COUNT
) -> PositionBalance:
    """How evenly the answers spread over the letters.

    Balanced when every letter's count is within max(1, tolerance * n) items of n / 4: a set of n items
    can always be balanced to within one item, so small sets are not held to a share they cannot meet.
    The chi-square statistic and p-value are reported for larger sets' diagnostics.
    """
    counts = Counter(item.answer_index for item in items)
    per_letter = tuple(counts.get(i, 0) for i in range(letters))
    total = len(items)
    if total == 0:
        return PositionBalance(per_letter, 0, 0.0, 0.0, 1.0, True)
    expected = total / letters
    chi_square = sum((c - expected) ** 2 / expected for c in per_letter)
    max_deviation = max(abs(c / total - 1 / letters) for c in per_letter)
    allowed = max(1.0, tolerance * total)
    balanced = all(abs(c - expected) <= allowed for c in per_letter) and sum(per_letter) == total
    p_value = _chi_square_sf_3(chi_square) if letters == 4 else float("nan")
    return PositionBalance(per_letter, total, max_deviation, chi_square, p_value, balanced)


def rebalance_positions(items: Sequence[events_pb2.QAItem], seed: int | str = 0) -> list[events_pb2.QAItem]:
    """Copies of the items with the options reordered so the answer letters spread evenly.

    Deterministic for a seed: a target letter per item is drawn from an evenly filled, seeded-shuffled
    list (so every letter's count is within one of n / 4), and each item's distractors are shuffled by
    an RNG seeded from the seed and the item id. The options' texts are unchanged.
    """
    rng = random.Random(f"positions:{seed}")
    targets = [i % OPTION_COUNT for i in range(len(items))]
    rng.shuffle(targets)
    out = []
    for item, target in zip(items, targets, strict=True):
        copy = events_pb2.QAItem()
        copy.CopyFrom(item)
        if len(item.options) != OPTION_COUNT or not 0 <= item.answer_index < OPTION_COUNT:
            out.append(copy)  # malformed items are left for the validator to report
            continue
        correct = item.options[item.answer_index]
        distractors = [o for i, o in enumerate(item.options) if i != item.answer_index]
        random.Random(f"distractors:{seed}:{item.item_id}").shuffle(distractors)
        distractors.insert(target, correct)
        del copy.options[:]
        copy.options.extend(distractors)
        copy.answer_index = target
        out.append(copy)
    return out


def validate_set(
    items: Sequence[events_pb2.QAItem], caption: events_pb2.Caption, tolerance: float = POSITION_TOLERANCE
) -> SetReport:
    """Every item's checks, plus the set's: unique item ids and balanced answer positions."""
    reports = tuple(validate_item(item, caption) for item in items)
    findings = []
    for item_id, n in Counter(item.item_id for item in items).items():
        if n > 1:
            findings.append(Finding(Issue.DUPLICATE_ITEM_ID, f"item id {item_id!r} used {n} times"))
    balance = position_balance(items, tolerance)
    if not balance.balanced:
        per_letter = dict(zip(OPTION_LETTERS, balance.counts, strict=True))
        findings.append(
            Finding(
                Issue.UNBALANCED_POSITIONS,
                f"answers per letter {per_letter} over {balance.total} items "
                f"(chi-square {balance.chi_square:.2f}, p {balance.p_value:.3f})",
            )
        )
    return SetReport(items=reports, balance=balance, findings=tuple(findings))
