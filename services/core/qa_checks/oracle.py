"""The truth oracle: which options answer a QA question correctly, recomputed from the caption.

The truth is recomputed for the question forms in `QuestionForm` (the forms the template backend
writes, and the ones an LLM backend is told to use); a question in any other form has no known truth
(None), and one that names a person the caption does not have has none true.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from enum import StrEnum

from haic.v1 import events_pb2
from services.core.qa_checks.phrasing import (
    base_form,
    clip_window,
    count_option,
    direction_option,
    garment_option,
    interaction_option,
    normalize_option,
    object_targets,
    ordered_actions,
    strip_count,
    temporal_option,
)


class QuestionForm(StrEnum):
    """The question wordings whose answers the oracle can recompute from a caption.

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


Truth = frozenset[str]  # normalized texts of every option that would be correct


@dataclass(frozen=True)
class ParsedQuestion:
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


def parse_question(question: str, caption: events_pb2.Caption) -> ParsedQuestion | None:
    labels = [s.label for s in caption.subjects if s.label]
    by_label = {s.label.lower(): s for s in caption.subjects}
    text = " ".join(question.split())
    for known in (labels, None):
        for form in QuestionForm:
            match = _form_pattern(form, known).match(text)
            if match:
                groups = match.groupdict()
                return ParsedQuestion(
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


def _truth_interaction(caption: events_pb2.Caption, p: ParsedQuestion) -> Truth:
    assert p.subject is not None and p.other is not None
    pair = {p.subject.label, p.other.label}
    return frozenset(
        normalize_option(option)
        for i in caption.interactions
        if {i.subject_label, i.object_label} == pair and (option := interaction_option(i, p.subject.label)) is not None
    )


def _truth_all_actions(caption: events_pb2.Caption, p: ParsedQuestion) -> Truth:
    assert p.subject is not None
    return frozenset(normalize_option(strip_count(a.verb_phrase)) for a in p.subject.actions)


def _truth_neighbour(caption: events_pb2.Caption, p: ParsedQuestion) -> Truth:
    assert p.subject is not None
    actions = ordered_actions(p.subject)
    step = 1 if p.form is QuestionForm.AFTER else -1
    out: set[str] = set()
    for index, action in enumerate(actions):
        neighbour = index + step
        if _is_same_action(action, p.fields["action"]) and 0 <= neighbour < len(actions):
            out.add(normalize_option(strip_count(actions[neighbour].verb_phrase)))
    return frozenset(out)


def _truth_count(caption: events_pb2.Caption, p: ParsedQuestion) -> Truth | None:
    assert p.subject is not None
    matching = [a for a in p.subject.actions if _is_same_action(a, p.fields["action"])]
    if not matching:
        return frozenset()
    if any(a.repetitions <= 0 for a in matching):
        return None  # an uncounted action (repetitions 0) says nothing about how many times
    return frozenset({normalize_option(count_option(sum(a.repetitions for a in matching)))})


def _truth_attribute(caption: events_pb2.Caption, p: ParsedQuestion) -> Truth:
    doers = [
        s
        for s in caption.subjects
        if any(normalize_option(strip_count(a.verb_phrase)) == normalize_option(p.fields["act"]) for a in s.actions)
    ]
    out: set[str] = set()
    for s in doers:
        out.update(normalize_option(garment_option(g)) for g in s.attributes.clothing if g.item)
        out.update(normalize_option(a) for a in s.attributes.accessories)
    return frozenset(out)


def _truth_direction(caption: events_pb2.Caption, p: ParsedQuestion) -> Truth:
    assert p.subject is not None
    motion = normalize_option(p.fields["motion"])
    return frozenset(
        normalize_option(direction_option(a.direction))
        for a in p.subject.actions
        if a.direction and normalize_option(base_form(a.verb_phrase)).split(" ")[0] == motion
    )


def _truth_when(caption: events_pb2.Caption, p: ParsedQuestion) -> Truth:
    assert p.subject is not None
    window = clip_window(caption)
    return frozenset(
        normalize_option(temporal_option(a, window))
        for a in p.subject.actions
        if _is_same_action(a, p.fields["action"])
    )


def _truth_local(caption: events_pb2.Caption, p: ParsedQuestion) -> Truth:
    assert p.subject is not None
    part = normalize_option(p.fields["body_part"])
    return frozenset(
        normalize_option(strip_count(a.verb_phrase)) for a in p.subject.actions if normalize_option(a.body_part) == part
    )


def _truth_object(caption: events_pb2.Caption, p: ParsedQuestion) -> Truth:
    assert p.subject is not None
    return frozenset(normalize_option(t) for t in object_targets(p.subject, [s.label for s in caption.subjects]))


_TRUTH: dict[QuestionForm, Callable[[events_pb2.Caption, ParsedQuestion], Truth | None]] = {
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


def names_unknown_person(parsed: ParsedQuestion) -> bool:
    form = parsed.form.value
    return ("{subject}" in form and parsed.subject is None) or ("{other}" in form and parsed.other is None)


def true_options(question: str, caption: events_pb2.Caption) -> Truth | None:
    """Normalized texts of every option that answers `question` correctly according to `caption`.

    None when the question is in no known form (or asks what the caption leaves open), so its options
    cannot be checked.
    """
    parsed = parse_question(question, caption)
    if parsed is None:
        return None
    if names_unknown_person(parsed):
        return frozenset()
    return _TRUTH[parsed.form](caption, parsed)
