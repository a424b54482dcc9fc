"""Checks multiple-choice QA items against the structured caption they were made from.

Every backend (templates, an LLM) goes through the same checks, and each failed check is reported as
a typed `Finding` rather than raised, so a generator can drop or retry an item and say why:

- shape: a question, exactly four non-empty options, an answer index among them, caption facts;
- wording: no duplicate options (case and spacing ignored), at most 15 words an option, people named
  by their attribute labels and never by number;
- truth: the marked option is true of the caption and no distractor is. The truth is recomputed from
  the caption for the question forms in `QuestionForm` (the forms the template backend writes, and
  the ones an LLM backend is told to use); a question in any other form cannot be checked and gets a
  warning, not an error;
- give-aways: a correct option much longer than every distractor, or the only option that repeats
  wording from the question;
- over a set: answer positions balanced across the letters (and `rebalance_positions` to make them so).
"""

from __future__ import annotations

import math
import random
import re
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from enum import StrEnum

from haic.v1 import events_pb2
from services.core.contracts import OPTION_LETTERS

OPTION_COUNT = 4
MAX_OPTION_WORDS = 15
GIVEAWAY_LENGTH_RATIO = 1.5  # a correct option longer than this times the longest distractor stands out
POSITION_TOLERANCE = 0.1  # a letter's share may stray this far from 1/4 (at least one item either way)

# Share of the clip an action must last to be told "throughout the clip" (as the renderer does).
THROUGHOUT_SHARE = 0.6


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


# ------------------------------------------------------------------------------------ question forms


class QuestionForm(StrEnum):
    """The question wordings whose answers the validator can recompute from a caption.

    {subject} and {other} are subject labels; {action} is a caption verb phrase without its count, in
    the base form that follows "they" ("raise their right arm"); {act} is the same phrase as stated
    ("raises their right arm"); {motion} is "walk" or "run"; {body_part} is an action's body part.
    """

    INTERACTION = "How does {subject} interact with {other}?"
    DETAILS = "Which of these movements does {subject} make?"
    AFTER = "What does {subject} do immediately after they {action}?"
    BEFORE = "What does {subject} do just before they {action}?"
    COUNT = "How many times does {subject} {action}?"
    ATTRIBUTE = "What is the person who {act} wearing?"
    DIRECTION = "In which direction does {subject} {motion}?"
    WHEN = "When does {subject} {action}?"
    LOCAL_POSTURE = "What does {subject} do with their {body_part}?"
    GLOBAL_POSTURE = "Which whole-body movement does {subject} make?"
    OBJECT = "Which object does {subject} interact with?"


# --------------------------------------------------------------------------------------- caption text

_COUNT_SUFFIX = re.compile(r"\s+(?:once|twice|(?:\w+|\d+) times)$")
_ARTICLE = re.compile(r"^(?:a|an|the)\s+")
_NUMBER_WORDS = ("zero", "once", "twice", "three", "four", "five", "six", "seven", "eight", "nine", "ten")
_BY_NUMBER = re.compile(r"\b(?:person|subject|man|woman|people|individual)\s*#?\s*\d+\b", re.IGNORECASE)
_IRREGULAR_BASE = {"lies": "lie", "does": "do", "goes": "go", "has": "have", "is": "be", "dies": "die", "ties": "tie"}


def normalize_option(text: str) -> str:
    """Text compared case-, spacing-, punctuation- and leading-article-insensitively; his/her = their."""
    words = re.sub(r"[^a-z0-9]+", " ", text.lower()).split()
    words = ["their" if w in ("his", "her") else w for w in words]
    return _ARTICLE.sub("", " ".join(words))


def strip_count(phrase: str) -> str:
    """'raises their right arm three times' -> 'raises their right arm'."""
    return _COUNT_SUFFIX.sub("", phrase.strip())


def base_form(phrase: str) -> str:
    """The phrase after 'they': 'raises their right arm' -> 'raise their right arm'."""
    verb, _, rest = phrase.strip().partition(" ")
    if verb in _IRREGULAR_BASE:
        verb = _IRREGULAR_BASE[verb]
    elif verb.endswith("ies") and len(verb) > 4:
        verb = verb[:-3] + "y"
    elif verb.endswith(("shes", "ches", "sses", "xes", "zes")):
        verb = verb[:-2]
    elif verb.endswith("s") and not verb.endswith("ss"):
        verb = verb[:-1]
    return f"{verb} {rest}".strip()


def count_option(n: int) -> str:
    if n == 1:
        return "Once"
    if n == 2:
        return "Twice"
    return f"{_NUMBER_WORDS[n].capitalize() if n < len(_NUMBER_WORDS) else n} times"


def direction_option(direction: str) -> str:
    """Action.direction ('left', 'towards the camera') as an option ('To the left')."""
    text = direction if direction.startswith(("towards", "away", "to ")) else f"to the {direction}"
    return text[0].upper() + text[1:]


# Garments named in the plural take no article ("Blue trousers", but "A green dress").
PLURAL_GARMENTS = frozenset(
    ("trousers", "shorts", "jeans", "pants", "leggings", "shoes", "sneakers", "boots", "socks", "gloves", "glasses")
)


def garment_option(garment: events_pb2.Garment) -> str:
    text = f"{garment.color} {garment.item}".strip()
    if garment.item in PLURAL_GARMENTS:
        return text[0].upper() + text[1:]
    return f"{'An' if text[:1] in 'aeiou' else 'A'} {text}"


def action_option(phrase: str) -> str:
    text = strip_count(phrase)
    return text[0].upper() + text[1:]


TEMPORAL_OPTIONS = ("At the beginning of the clip", "In the middle of the clip", "At the end of the clip")
THROUGHOUT_OPTION = "Throughout the clip"

# Interactions told from one participant's side; the second entry is the other participant's side.
INTERACTION_SIDES: dict[str, tuple[str, str]] = {
    "approaching": ("Gets closer to them", "Gets closer to them"),
    "moving apart": ("Moves away from them", "Moves away from them"),
    "facing each other": ("Faces them", "Faces them"),
    "touching": ("Touches them", "Is touched by them"),
    "following": ("Follows them", "Is followed by them"),
}


def interaction_option(interaction: events_pb2.Interaction, label: str) -> str | None:
    """The interaction as seen from `label`'s side, or None when `label` is not in it."""
    sides = INTERACTION_SIDES.get(interaction.kind, (interaction.kind.capitalize(), interaction.kind.capitalize()))
    if interaction.subject_label == label:
        return sides[0]
    if interaction.object_label == label:
        return sides[1]
    return None


def clip_window(caption: events_pb2.Caption) -> tuple[float, float]:
    """The clip's time range on the actions' clock.

    Actions carry video times when the span's start precedes them, clip times otherwise; with no span
    the actions' own extent is the clip.
    """
    actions = [a for s in caption.subjects for a in s.actions]
    span = caption.span
    if span.end_s > span.start_s:
        if actions and min(a.start_s for a in actions) < span.start_s - 1e-6:
            return 0.0, span.end_s - span.start_s
        return span.start_s, span.end_s
    if not actions:
        return 0.0, 0.0
    return min(a.start_s for a in actions), max(a.end_s for a in actions)


def temporal_option(action: events_pb2.Action, window: tuple[float, float]) -> str:
    """Which part of the clip an action falls in: its midpoint's third, or throughout when it lasts."""
    lo, hi = window
    length = hi - lo
    if length <= 0:
        return THROUGHOUT_OPTION
    if action.end_s - action.start_s >= THROUGHOUT_SHARE * length:
        return THROUGHOUT_OPTION
    share = ((action.start_s + action.end_s) / 2 - lo) / length
    return TEMPORAL_OPTIONS[min(2, max(0, int(share * 3)))]


def ordered_actions(subject: events_pb2.Subject) -> list[events_pb2.Action]:
    """A subject's actions in the order "before" and "after" refer to."""
    return sorted(subject.actions, key=lambda a: (a.start_s, a.end_s, a.verb_phrase))


def object_targets(subject: events_pb2.Subject, labels: Iterable[str]) -> list[str]:
    """Targets of the subject's actions that are objects rather than other people."""
    people = {normalize_option(label) for label in labels}
    return [a.target for a in subject.actions if a.target and normalize_option(a.target) not in people]


# ------------------------------------------------------------------------------------- truth oracle

Truth = frozenset[str]  # normalized texts of every option that would be correct


@dataclass(frozen=True)
class _Parsed:
    form: QuestionForm
    subject: events_pb2.Subject | None
    other: events_pb2.Subject | None
    fields: dict[str, str]


def _form_pattern(form: QuestionForm, labels: Sequence[str] | None) -> re.Pattern[str]:
    # Labels are matched as whole alternatives (longest first) rather than by a lazy wildcard, so a
    # label that contains words of the question form ("the man who waves") still splits correctly.
    # labels=None matches anyone: it finds questions in a known form about someone not in the caption.
    if labels is None:
        label_alt = ".+?"
    else:
        label_alt = "|".join(re.escape(label) for label in sorted(labels, key=len, reverse=True)) or "(?!)"
    pattern = re.escape(form.value)
    for name in ("subject", "other"):
        pattern = pattern.replace(re.escape("{" + name + "}"), f"(?P<{name}>{label_alt})")
    for name in ("action", "act", "motion", "body_part"):
        pattern = pattern.replace(re.escape("{" + name + "}"), f"(?P<{name}>.+?)")
    return re.compile(f"^{pattern}$", re.IGNORECASE)


def _parse_question(question: str, caption: events_pb2.Caption) -> _Parsed | None:
    labels = [s.label for s in caption.subjects if s.label]
    by_label = {s.label.lower(): s for s in caption.subjects}
    text = " ".join(question.split())
    for known in (labels, None):
        for form in QuestionForm:
            match = _form_pattern(form, known).match(text)
            if match:
                groups = match.groupdict()
                return _Parsed(
                    form=form,
                    subject=by_label.get((groups.pop("subject", None) or "").lower()),
                    other=by_label.get((groups.pop("other", None) or "").lower()),
                    fields={k: v for k, v in groups.items() if v is not None},
                )
    return None


def _is_same_action(action: events_pb2.Action, base_phrase: str) -> bool:
    return normalize_option(base_form(strip_count(action.verb_phrase))) == normalize_option(base_phrase)


def option_is_true(option: str, truth: Truth) -> bool:
    """Whether an option states something in `truth`.

    Besides an exact (normalized) match, an option counts as true when it is a shortened form of a
    true statement with the same verb: "kicks with their left leg" is true of a person who "kicks the
    ball with their left leg", so it may not serve as a distractor.
    """
    key = normalize_option(option)
    if key in truth:
        return True
    words = key.split()
    return bool(words) and any(t.split()[:1] == words[:1] and set(words) <= set(t.split()) for t in truth if t)


def _truth_interaction(caption: events_pb2.Caption, p: _Parsed) -> Truth:
    assert p.subject is not None and p.other is not None
    pair = {p.subject.label, p.other.label}
    return frozenset(
        normalize_option(option)
        for i in caption.interactions
        if {i.subject_label, i.object_label} == pair and (option := interaction_option(i, p.subject.label)) is not None
    )


def _truth_all_actions(caption: events_pb2.Caption, p: _Parsed) -> Truth:
    assert p.subject is not None
    return frozenset(normalize_option(strip_count(a.verb_phrase)) for a in p.subject.actions)


def _truth_neighbour(caption: events_pb2.Caption, p: _Parsed) -> Truth:
    assert p.subject is not None
    actions = ordered_actions(p.subject)
    step = 1 if p.form is QuestionForm.AFTER else -1
    out = set()
    for index, action in enumerate(actions):
        neighbour = index + step
        if _is_same_action(action, p.fields["action"]) and 0 <= neighbour < len(actions):
            out.add(normalize_option(strip_count(actions[neighbour].verb_phrase)))
    return frozenset(out)


def _truth_count(caption: events_pb2.Caption, p: _Parsed) -> Truth | None:
    assert p.subject is not None
    matching = [a for a in p.subject.actions if _is_same_action(a, p.fields["action"])]
    if not matching:
        return frozenset()
    if any(a.repetitions <= 0 for a in matching):
        return None  # an uncounted action (repetitions 0) says nothing about how many times
    return frozenset({normalize_option(count_option(sum(a.repetitions for a in matching)))})


def _truth_attribute(caption: events_pb2.Caption, p: _Parsed) -> Truth:
    doers = [
        s
        for s in caption.subjects
        if any(normalize_option(strip_count(a.verb_phrase)) == normalize_option(p.fields["act"]) for a in s.actions)
    ]
    out = set()
    for s in doers:
        out.update(normalize_option(garment_option(g)) for g in s.attributes.clothing if g.item)
        out.update(normalize_option(a) for a in s.attributes.accessories)
    return frozenset(out)


def _truth_direction(caption: events_pb2.Caption, p: _Parsed) -> Truth:
    assert p.subject is not None
    motion = normalize_option(p.fields["motion"])
    return frozenset(
        normalize_option(direction_option(a.direction))
        for a in p.subject.actions
        if a.direction and normalize_option(base_form(a.verb_phrase)).split(" ")[0] == motion
    )


def _truth_when(caption: events_pb2.Caption, p: _Parsed) -> Truth:
    assert p.subject is not None
    window = clip_window(caption)
    return frozenset(
        normalize_option(temporal_option(a, window))
        for a in p.subject.actions
        if _is_same_action(a, p.fields["action"])
    )


def _truth_local(caption: events_pb2.Caption, p: _Parsed) -> Truth:
    assert p.subject is not None
    part = normalize_option(p.fields["body_part"])
    return frozenset(
        normalize_option(strip_count(a.verb_phrase)) for a in p.subject.actions if normalize_option(a.body_part) == part
    )


def _truth_object(caption: events_pb2.Caption, p: _Parsed) -> Truth:
    assert p.subject is not None
    return frozenset(normalize_option(t) for t in object_targets(p.subject, [s.label for s in caption.subjects]))


_TRUTH: dict[QuestionForm, Callable[[events_pb2.Caption, _Parsed], Truth | None]] = {
    QuestionForm.INTERACTION: _truth_interaction,
    QuestionForm.DETAILS: _truth_all_actions,
    QuestionForm.AFTER: _truth_neighbour,
    QuestionForm.BEFORE: _truth_neighbour,
    QuestionForm.COUNT: _truth_count,
    QuestionForm.ATTRIBUTE: _truth_attribute,
    QuestionForm.DIRECTION: _truth_direction,
    QuestionForm.WHEN: _truth_when,
    QuestionForm.LOCAL_POSTURE: _truth_local,
    # Any movement the subject makes answers "which whole-body movement": a distractor that names one of
    # theirs is a second correct option, whatever its body part.
    QuestionForm.GLOBAL_POSTURE: _truth_all_actions,
    QuestionForm.OBJECT: _truth_object,
}


def _names_unknown_person(parsed: _Parsed) -> bool:
    form = parsed.form.value
    return ("{subject}" in form and parsed.subject is None) or ("{other}" in form and parsed.other is None)


def true_options(question: str, caption: events_pb2.Caption) -> Truth | None:
    """Normalized texts of every option that answers `question` correctly according to `caption`.

    None when the question is in no known form (or asks what the caption leaves open), so its options
    cannot be checked.
    """
    parsed = _parse_question(question, caption)
    if parsed is None:
        return None
    if _names_unknown_person(parsed):
        return frozenset()
    return _TRUTH[parsed.form](caption, parsed)


# ------------------------------------------------------------------------------------------ checks

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
    parsed = _parse_question(item.question, caption)
    if parsed is not None and _names_unknown_person(parsed):
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
