"""Structural checks of a (reviewer-edited) caption, and the JSON shapes of captions and QA items.

A caption a person edited in the review desk comes back as JSON; before it is stored it must still be
a caption the renderer (caption_text.py) and the QA checks (qa_checks/) can read: times inside the clip
and in order, subjects with distinct labels that interactions can name, attributes from the vocabulary
the pipeline writes, and text fields that are short, printable text. Each failed check is a `Problem`
with the path of the field (`subjects[0].actions[1].end_s`), so the desk can show it where it occurs.

JSON <-> proto: a caption is `MessageToDict(..., preserving_proto_field_name=True)` with every field
printed; a QA item is the same except that its category is the slug (contracts.CATEGORY_SLUGS). Parsing
refuses unknown fields and wrong types as Problems, never as exceptions.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from google.protobuf import json_format
from google.protobuf.message import Message

from haic.v1 import events_pb2
from services.core import caption_text
from services.core.caption_text import render_caption
from services.core.contracts import CATEGORY_BY_SLUG, INTERACTION_KIND_WORDS, category_slug
from services.core.qa_checks.validator import Finding, Issue, Severity, validate_item

GENDERS: tuple[str, ...] = ("male", "female")
# The age groups the renderer knows how to say (its nouns are the vocabulary: any other word would be
# rendered as a bare "person", silently).
AGE_GROUPS: tuple[str, ...] = tuple(caption_text._AGE_NOUNS)  # the renderer owns the words

MAX_LABEL_CHARS = 120
MAX_PHRASE_CHARS = 200  # verb phrases, body parts, directions, targets, garments, accessories
MAX_QUESTION_CHARS = 500
MAX_OPTION_CHARS = 200
MAX_SUBJECTS = 10  # the renderer counts people in words up to ten
MAX_ACTIONS = 50
MAX_INTERACTIONS = 50
MAX_LIST_ITEMS = 20  # garments, accessories, facts
TIME_TOLERANCE_S = 1e-3  # clip bounds are floats rounded to frames: a hair outside is the same instant

# C0/C1 control characters, DEL, and the Unicode line and paragraph separators; a tab is not text either.
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f\u2028\u2029]")


@dataclass(frozen=True)
class Problem:
    """One failed check: where (a path into the checked JSON) and what is wrong. A warning (an item whose
    question form the truth oracle does not know) is shown but does not block a review."""

    path: str
    message: str
    severity: str = Severity.ERROR.value

    @property
    def is_error(self) -> bool:
        return self.severity == Severity.ERROR.value

    def under(self, prefix: str) -> Problem:
        """The same problem with its path inside `prefix` (`caption` + `subjects[0]` -> `caption.subjects[0]`)."""
        path = f"{prefix}.{self.path}" if self.path and not self.path.startswith("[") else f"{prefix}{self.path}"
        return Problem(path, self.message, self.severity)


def errors(problems: Iterable[Problem]) -> list[Problem]:
    return [p for p in problems if p.is_error]


# ------------------------------------------------------------------------------------------ JSON


def caption_to_json(caption: events_pb2.Caption) -> dict[str, Any]:
    """The caption as the desk edits it: every field printed (an empty label is "", not missing)."""
    data = json_format.MessageToDict(
        caption, preserving_proto_field_name=True, always_print_fields_with_no_presence=True
    )
    for key in ("video_id", "span", "storage_uri", "produced_at"):  # the clip's, not the editor's
        data.pop(key, None)
    data.setdefault("judgement", {"passed": False, "reasons": [], "scores": {}, "judge": ""})
    return data


def item_to_json(item: events_pb2.QAItem) -> dict[str, Any]:
    data = json_format.MessageToDict(item, preserving_proto_field_name=True, always_print_fields_with_no_presence=True)
    data["category"] = category_slug(item.category)
    return data


# ParseError names the field after the message type: 'at "Caption.subjects[0]"' or 'at Caption.subjects[0].end_s...'
_PARSE_AT = re.compile(r' at "?[A-Za-z_]\w*([^"\s]*)')


def _parse(data: object, message: Message, what: str) -> list[Problem]:
    if not isinstance(data, Mapping):
        return [Problem("", f"{what} must be a JSON object")]
    try:
        json_format.ParseDict(dict(data), message, ignore_unknown_fields=False)
    except (json_format.ParseError, TypeError, ValueError, AttributeError) as exc:
        text = str(exc).splitlines()[0]
        found = _PARSE_AT.search(text)
        path = found.group(1).rstrip(".").lstrip(".") if found else ""
        return [Problem(path, text)]
    return []


def caption_from_json(data: object) -> tuple[events_pb2.Caption, list[Problem]]:
    """The caption of the desk's JSON; Problems (and an empty caption) when it is not one."""
    caption = events_pb2.Caption()
    problems = _parse(data, caption, "a caption")
    return (events_pb2.Caption() if problems else caption), problems


def item_from_json(data: object) -> tuple[events_pb2.QAItem, list[Problem]]:
    """The QA item of the desk's JSON (category as a slug); Problems when it is not one."""
    item = events_pb2.QAItem()
    if not isinstance(data, Mapping):
        return item, [Problem("", "an item must be a JSON object")]
    fields = dict(data)
    slug = fields.pop("category", None)
    problems: list[Problem] = []
    if slug is not None:
        if isinstance(slug, str) and slug in CATEGORY_BY_SLUG:
            item.category = CATEGORY_BY_SLUG[slug]  # type: ignore[assignment]
        else:
            problems.append(Problem("category", f"unknown category {slug!r}: one of {', '.join(CATEGORY_BY_SLUG)}"))
    parsed = events_pb2.QAItem()
    problems.extend(_parse(fields, parsed, "an item"))
    if not problems:
        parsed.category = item.category
        item = parsed
    return item, problems


# ------------------------------------------------------------------------------------------ checks


def rerender(caption: events_pb2.Caption, clip_s: float) -> str:
    """HAIC's text of the caption's structure (what the captioner writes)."""
    return render_caption(caption.subjects, caption.interactions, clip_s)


def _text(path: str, value: str, limit: int, *, required: bool = False) -> list[Problem]:
    if required and not value.strip():
        return [Problem(path, "must not be empty")]
    if len(value) > limit:
        return [Problem(path, f"{len(value)} characters, at most {limit}")]
    if _CONTROL.search(value):
        return [Problem(path, "must not contain control characters (tabs, line breaks, ...)")]
    return []


def _span(path: str, start_s: float, end_s: float, clip_start_s: float, clip_end_s: float) -> list[Problem]:
    problems = []
    if not (math.isfinite(start_s) and math.isfinite(end_s)):
        return [Problem(f"{path}.start_s", "times must be finite numbers")]
    if start_s < clip_start_s - TIME_TOLERANCE_S or start_s > clip_end_s + TIME_TOLERANCE_S:
        problems.append(
            Problem(f"{path}.start_s", f"{start_s:g} s is outside the clip [{clip_start_s:g}, {clip_end_s:g}]")
        )
    if end_s < clip_start_s - TIME_TOLERANCE_S or end_s > clip_end_s + TIME_TOLERANCE_S:
        problems.append(Problem(f"{path}.end_s", f"{end_s:g} s is outside the clip [{clip_start_s:g}, {clip_end_s:g}]"))
    if start_s >= end_s:
        problems.append(Problem(f"{path}.end_s", f"ends at {end_s:g} s, not after its start {start_s:g} s"))
    return problems


def check_caption(caption: events_pb2.Caption, clip_start_s: float, clip_end_s: float) -> list[Problem]:
    """Every structural problem of the caption for a clip of source-video time [clip_start_s, clip_end_s)."""
    problems: list[Problem] = []
    if not caption.subjects:
        problems.append(Problem("subjects", "a caption needs at least one subject"))
    if len(caption.subjects) > MAX_SUBJECTS:
        problems.append(Problem("subjects", f"{len(caption.subjects)} subjects, at most {MAX_SUBJECTS}"))
    labels: dict[str, int] = {}
    for s, subject in enumerate(caption.subjects):
        at = f"subjects[{s}]"
        label_problems = _text(f"{at}.label", subject.label, MAX_LABEL_CHARS, required=True)
        problems.extend(label_problems)
        key = " ".join(subject.label.lower().split())
        if not label_problems:
            if key in labels:
                problems.append(Problem(f"{at}.label", f"the same label as subjects[{labels[key]}]"))
            else:
                labels[key] = s
        attributes = subject.attributes
        if attributes.gender and attributes.gender not in GENDERS:
            problems.append(
                Problem(f"{at}.attributes.gender", f"{attributes.gender!r} is not one of {GENDERS} or empty")
            )
        if attributes.age_group and attributes.age_group not in AGE_GROUPS:
            problems.append(
                Problem(f"{at}.attributes.age_group", f"{attributes.age_group!r} is not one of {AGE_GROUPS} or empty")
            )
        if len(attributes.clothing) > MAX_LIST_ITEMS:
            problems.append(Problem(f"{at}.attributes.clothing", f"at most {MAX_LIST_ITEMS} garments"))
        for g, garment in enumerate(attributes.clothing):
            problems.extend(_text(f"{at}.attributes.clothing[{g}].item", garment.item, MAX_PHRASE_CHARS, required=True))
            problems.extend(_text(f"{at}.attributes.clothing[{g}].color", garment.color, MAX_PHRASE_CHARS))
        if len(attributes.accessories) > MAX_LIST_ITEMS:
            problems.append(Problem(f"{at}.attributes.accessories", f"at most {MAX_LIST_ITEMS} accessories"))
        for a, accessory in enumerate(attributes.accessories):
            problems.extend(_text(f"{at}.attributes.accessories[{a}]", accessory, MAX_PHRASE_CHARS, required=True))
        if len(subject.actions) > MAX_ACTIONS:
            problems.append(Problem(f"{at}.actions", f"{len(subject.actions)} actions, at most {MAX_ACTIONS}"))
        previous_start = -math.inf
        for a, action in enumerate(subject.actions):
            here = f"{at}.actions[{a}]"
            problems.extend(_span(here, action.start_s, action.end_s, clip_start_s, clip_end_s))
            if action.start_s < previous_start:
                problems.append(
                    Problem(f"{here}.start_s", "actions must be in time order (starts before the previous)")
                )
            previous_start = max(previous_start, action.start_s)
            problems.extend(_text(f"{here}.verb_phrase", action.verb_phrase, MAX_PHRASE_CHARS, required=True))
            for name in ("body_part", "direction", "target"):
                problems.extend(_text(f"{here}.{name}", getattr(action, name), MAX_PHRASE_CHARS))
            if action.repetitions < 0:
                problems.append(Problem(f"{here}.repetitions", "must be 0 (not counted) or more"))
    if len(caption.interactions) > MAX_INTERACTIONS:
        problems.append(
            Problem("interactions", f"{len(caption.interactions)} interactions, at most {MAX_INTERACTIONS}")
        )
    for i, interaction in enumerate(caption.interactions):
        here = f"interactions[{i}]"
        problems.extend(_span(here, interaction.start_s, interaction.end_s, clip_start_s, clip_end_s))
        if interaction.kind not in INTERACTION_KIND_WORDS:
            problems.append(Problem(f"{here}.kind", f"{interaction.kind!r} is not one of {INTERACTION_KIND_WORDS}"))
        for name in ("subject_label", "object_label"):
            value = getattr(interaction, name)
            if " ".join(value.lower().split()) not in labels:
                problems.append(Problem(f"{here}.{name}", f"{value!r} is not the label of a subject"))
        if interaction.subject_label.strip() and interaction.subject_label == interaction.object_label:
            problems.append(Problem(f"{here}.object_label", "a subject does not interact with itself"))
    return problems


# The item field a validator finding is about, when it names no option.
_ITEM_FIELD: dict[Issue, str] = {
    Issue.EMPTY_QUESTION: "question",
    Issue.WRONG_OPTION_COUNT: "options",
    Issue.ANSWER_INDEX_OUT_OF_RANGE: "answer_index",
    Issue.UNSPECIFIED_CATEGORY: "category",
    Issue.NO_FACTS: "facts",
    Issue.PERSON_NAMED_BY_NUMBER: "question",
    Issue.SUBJECT_NOT_IN_CAPTION: "question",
    Issue.ANSWER_NOT_SUPPORTED: "answer_index",
    Issue.UNVERIFIED: "question",
    Issue.DUPLICATE_ITEM_ID: "item_id",
}


def _finding_problem(finding: Finding) -> Problem:
    if finding.option_index is not None and finding.issue is not Issue.ANSWER_NOT_SUPPORTED:
        path = f"options[{finding.option_index}]"
    else:
        path = _ITEM_FIELD.get(finding.issue, "")
    return Problem(path, f"{finding.issue.value}: {finding.detail}", finding.severity.value)


def check_item(item: events_pb2.QAItem, caption: events_pb2.Caption) -> list[Problem]:
    """The item's text limits, then every check of the QA generator's validator against the caption."""
    problems = _text("item_id", item.item_id, 128)
    problems += _text("question", item.question, MAX_QUESTION_CHARS)
    for o, option in enumerate(item.options):
        problems += _text(f"options[{o}]", option, MAX_OPTION_CHARS)
    if len(item.facts) > MAX_LIST_ITEMS:
        problems.append(Problem("facts", f"at most {MAX_LIST_ITEMS} facts"))
    for f, fact in enumerate(item.facts):
        problems += _text(f"facts[{f}]", fact, MAX_QUESTION_CHARS)
    problems += [_finding_problem(f) for f in validate_item(item, caption).findings]
    return problems
