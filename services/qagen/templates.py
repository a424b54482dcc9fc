"""The default QA backend: multiple-choice items written from a structured caption by templates.

Categories are HAIC's five (paper table 1: interaction, action details, action sequence, count,
attribute) and ActionArt's fine-grained ones where the caption carries what they need (moving
direction from locomotion directions, temporal localization from action times, local posture from
limb actions, global posture from whole-body ones, human-object interaction from object targets).

HAIC's conventions: sequence questions ask what a person does immediately after or just before an
action; count questions begin "How many times"; people are named by their labels (attributes), never
by number. Distractors are hard ones first (LLaVAction): the confusable action (left for right, raise
for lower, walk for run, towards for away), the count plus or minus one, other people's garments and
other events of the same clip, and only then generic vocabulary. Every candidate item goes through
the validator; a draft whose distractors would make it fail tries the next combination of candidates
and is dropped when none passes, so every item returned passes.
"""

from __future__ import annotations

import itertools
import random
from collections import Counter
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

from haic.v1 import events_pb2
from services.core.contracts import CATEGORY_SLUGS
from services.core.qa_checks.oracle import QuestionForm, option_is_true, true_options
from services.core.qa_checks.phrasing import (
    INTERACTION_SIDES,
    TEMPORAL_OPTIONS,
    THROUGHOUT_OPTION,
    action_option,
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
from services.core.qa_checks.validator import rebalance_positions, validate_item

BACKEND = "templates"
DEFAULT_PER_CATEGORY = 3
MAX_CANDIDATES = 8  # distractor candidates tried per draft (combinations of 3 among them)


# Filler vocabularies, used after the caption's own confusables and events run out.
ACTION_VOCABULARY = (
    "raises their left arm",
    "raises their right arm",
    "lowers their left arm",
    "lowers their right arm",
    "waves their left hand",
    "waves their right hand",
    "claps",
    "jumps",
    "kicks with their left leg",
    "kicks with their right leg",
    "squats",
    "bends down",
    "sits down",
    "stands up",
    "turns around",
    "walks to the left",
    "walks to the right",
    "walks towards the camera",
    "walks away from the camera",
)
POSTURE_VOCABULARY = ("sits down", "stands up", "lies down", "sits up", "squats", "bends down", "jumps", "turns around")
# Verbs for local-posture distractors by kind of body part: movements a caption's limb actions do not
# imply (a kick lifts and bends the leg, so neither is a leg distractor); "lowers" stays for arms as the
# raise/lower confusion HAIC and LLaVAction ask for.
LIMB_VERBS = {
    "arm": ("raises", "lowers", "crosses", "swings"),
    "leg": ("stands on", "crosses", "drags", "stamps with"),
    "hand": ("waves", "raises", "lowers", "clenches"),
    "hands": ("raises", "lowers", "rubs", "shakes"),
}
COLOURS = ("red", "blue", "green", "yellow", "black", "white", "grey", "orange", "purple", "pink", "brown")
OBJECTS = ("ball", "chair", "bag", "racket", "bottle", "phone", "rope", "box")
DIRECTIONS = ("left", "right", "towards the camera", "away from the camera")
_OPPOSITE_DIRECTION = {
    "left": "right",
    "right": "left",
    "towards the camera": "away from the camera",
    "away from the camera": "towards the camera",
}
# Confusable verbs (raise and lower, sit and stand, ...), matched at the start of a phrase.
_ANTONYMS = (
    ("raises", "lowers"),
    ("lowers", "raises"),
    ("sits down", "stands up"),
    ("stands up", "sits down"),
    ("lies down", "sits up"),
    ("sits up", "lies down"),
    ("bends down", "stands up"),
    ("squats", "jumps"),
    ("jumps", "squats"),
    ("walks", "runs"),
    ("runs", "walks"),
)
_CONFUSABLE_INTERACTION = {
    "Gets closer to them": "Moves away from them",
    "Moves away from them": "Gets closer to them",
    "Touches them": "Is touched by them",
    "Is touched by them": "Touches them",
    "Follows them": "Is followed by them",
    "Is followed by them": "Follows them",
    "Faces them": "Gets closer to them",
}


@dataclass(frozen=True)
class _Draft:
    category: int
    question: str
    correct: str
    candidates: tuple[str, ...]  # distractor candidates, hardest first
    facts: tuple[str, ...]


# ---------------------------------------------------------------------------------------- phrases


def _mirror(phrase: str) -> str:
    """Left for right and right for left: the confusable side."""
    swap = {"left": "right", "right": "left"}
    return " ".join(swap.get(word, word) for word in phrase.split(" "))


def _antonym(phrase: str) -> str:
    for head, other in _ANTONYMS:
        if phrase == head or phrase.startswith(head + " "):
            return other + phrase[len(head) :]
    return phrase


def _flip_depth(phrase: str) -> str:
    """Towards the camera for away from it, and back."""
    for direction in ("towards the camera", "away from the camera"):
        if phrase.endswith(direction):
            return phrase[: -len(direction)] + _OPPOSITE_DIRECTION[direction]
    return phrase


def _confusables(phrase: str) -> list[str]:
    """Hard distractors for an action phrase: its mirror, its opposite, both, and the other depth."""
    base = strip_count(phrase)
    found = (_mirror(base), _antonym(base), _mirror(_antonym(base)), _flip_depth(base))
    return [p for p in dict.fromkeys(found) if p != base]


def _as_option(text: str) -> str:
    return text[0].upper() + text[1:] if text else text


# ------------------------------------------------------------------------------------------ facts


def _action_fact(label: str, action: events_pb2.Action) -> str:
    return f"{label} {action.verb_phrase} ({action.start_s:.1f}-{action.end_s:.1f} s)"


def _garment_fact(label: str, garment: events_pb2.Garment) -> str:
    return f"{label} wears {garment_option(garment)[0].lower()}{garment_option(garment)[1:]}"


def _interaction_fact(interaction: events_pb2.Interaction) -> str:
    return (
        f"{interaction.subject_label} {interaction.kind} {interaction.object_label} "
        f"({interaction.start_s:.1f}-{interaction.end_s:.1f} s)"
    )


# ----------------------------------------------------------------------------------------- drafts


def _other_events(caption: events_pb2.Caption, subject: events_pb2.Subject) -> list[str]:
    """Other people's actions in the clip, as options."""
    return [
        action_option(a.verb_phrase) for s in caption.subjects if s.label != subject.label for a in ordered_actions(s)
    ]


def _interaction_drafts(caption: events_pb2.Caption) -> Iterator[_Draft]:
    for interaction in caption.interactions:
        for label, other in (
            (interaction.subject_label, interaction.object_label),
            (interaction.object_label, interaction.subject_label),
        ):
            correct = interaction_option(interaction, label)
            if correct is None or not label or not other:
                continue
            sides = [side for pair in INTERACTION_SIDES.values() for side in pair]
            hard = _CONFUSABLE_INTERACTION.get(correct)
            yield _Draft(
                events_pb2.QA_CATEGORY_INTERACTION,
                QuestionForm.INTERACTION.format(subject=label, other=other),
                correct,
                tuple(([hard] if hard else []) + sides),
                (_interaction_fact(interaction),),
            )


def _details_drafts(caption: events_pb2.Caption) -> Iterator[_Draft]:
    for subject in caption.subjects:
        for action in ordered_actions(subject):
            yield _Draft(
                events_pb2.QA_CATEGORY_ACTION_DETAILS,
                QuestionForm.DETAILS.format(subject=subject.label),
                action_option(action.verb_phrase),
                tuple(
                    [_as_option(p) for p in _confusables(action.verb_phrase)]
                    + _other_events(caption, subject)
                    + [_as_option(p) for p in ACTION_VOCABULARY]
                ),
                (_action_fact(subject.label, action),),
            )


def _sequence_drafts(caption: events_pb2.Caption) -> Iterator[_Draft]:
    for subject in caption.subjects:
        actions = ordered_actions(subject)
        for index, anchor in enumerate(actions):
            for form, step in ((QuestionForm.AFTER, 1), (QuestionForm.BEFORE, -1)):
                neighbour_index = index + step
                if not 0 <= neighbour_index < len(actions):
                    continue
                neighbour = actions[neighbour_index]
                # Two actions starting together leave "immediately after/just before" ambiguous.
                if any(a is not neighbour and a is not anchor and a.start_s == neighbour.start_s for a in actions) or (
                    anchor.start_s == neighbour.start_s
                ):
                    continue
                own_events = [action_option(a.verb_phrase) for a in actions if a is not neighbour]
                yield _Draft(
                    events_pb2.QA_CATEGORY_ACTION_SEQUENCE,
                    form.format(subject=subject.label, action=base_form(strip_count(anchor.verb_phrase))),
                    action_option(neighbour.verb_phrase),
                    tuple(
                        own_events
                        + [_as_option(p) for p in _confusables(neighbour.verb_phrase)]
                        + _other_events(caption, subject)
                        + [_as_option(p) for p in ACTION_VOCABULARY]
                    ),
                    tuple(_action_fact(subject.label, a) for a in sorted((anchor, neighbour), key=lambda a: a.start_s)),
                )


def _count_drafts(caption: events_pb2.Caption) -> Iterator[_Draft]:
    for subject in caption.subjects:
        by_phrase: dict[str, list[events_pb2.Action]] = {}
        for action in ordered_actions(subject):
            by_phrase.setdefault(strip_count(action.verb_phrase), []).append(action)
        for phrase, actions in by_phrase.items():
            if any(a.repetitions <= 0 for a in actions):
                continue  # repetitions 0 means the caption did not count it
            n = sum(a.repetitions for a in actions)
            near = [n + 1, n - 1, n + 2, n - 2, n + 3, n + 4]
            yield _Draft(
                events_pb2.QA_CATEGORY_COUNT,
                QuestionForm.COUNT.format(subject=subject.label, action=base_form(phrase)),
                count_option(n),
                tuple(count_option(k) for k in near if k >= 1),
                tuple(_action_fact(subject.label, a) for a in actions),
            )


def _attribute_drafts(caption: events_pb2.Caption) -> Iterator[_Draft]:
    doers = Counter(
        normalize_option(phrase) for s in caption.subjects for phrase in {strip_count(a.verb_phrase) for a in s.actions}
    )
    for subject in caption.subjects:
        garments = [g for g in subject.attributes.clothing if g.item]
        for action in ordered_actions(subject):
            phrase = strip_count(action.verb_phrase)
            if doers[normalize_option(phrase)] != 1:
                continue  # the action must single the person out
            for garment in garments:
                others = [
                    garment_option(g)
                    for s in caption.subjects
                    if s.label != subject.label
                    for g in sorted(s.attributes.clothing, key=lambda g: g.item != garment.item)
                    if g.item
                ]
                recoloured = [garment_option(events_pb2.Garment(item=garment.item, color=c)) for c in COLOURS]
                swapped = [
                    garment_option(events_pb2.Garment(item=g.item, color=garment.color))
                    for g in garments
                    if g.item != garment.item
                ]
                yield _Draft(
                    events_pb2.QA_CATEGORY_ATTRIBUTE,
                    QuestionForm.ATTRIBUTE.format(act=phrase),
                    garment_option(garment),
                    tuple(others + swapped + recoloured),
                    (_action_fact(subject.label, action), _garment_fact(subject.label, garment)),
                )


def _direction_drafts(caption: events_pb2.Caption) -> Iterator[_Draft]:
    for subject in caption.subjects:
        for action in ordered_actions(subject):
            if action.direction not in _OPPOSITE_DIRECTION:
                continue
            motion = base_form(action.verb_phrase).split(" ")[0]
            opposite = _OPPOSITE_DIRECTION[action.direction]
            yield _Draft(
                events_pb2.QA_CATEGORY_MOVING_DIRECTION,
                QuestionForm.DIRECTION.format(subject=subject.label, motion=motion),
                direction_option(action.direction),
                tuple(direction_option(d) for d in (opposite, *DIRECTIONS) if d != action.direction),
                (_action_fact(subject.label, action),),
            )


def _when_drafts(caption: events_pb2.Caption) -> Iterator[_Draft]:
    window = clip_window(caption)
    if window[1] <= window[0]:
        return
    for subject in caption.subjects:
        phrases = Counter(strip_count(a.verb_phrase) for a in subject.actions)
        for action in ordered_actions(subject):
            phrase = strip_count(action.verb_phrase)
            if phrases[phrase] != 1:
                continue  # a repeated action happens at more than one time
            yield _Draft(
                events_pb2.QA_CATEGORY_TEMPORAL_LOCALIZATION,
                QuestionForm.WHEN.format(subject=subject.label, action=base_form(phrase)),
                temporal_option(action, window),
                (*TEMPORAL_OPTIONS, THROUGHOUT_OPTION),
                (_action_fact(subject.label, action),),
            )


def _local_posture_drafts(caption: events_pb2.Caption) -> Iterator[_Draft]:
    for subject in caption.subjects:
        for action in ordered_actions(subject):
            part = action.body_part
            if not part or part in ("whole body", "torso", "legs"):
                continue  # local posture is about one limb (or the hands)
            yield _Draft(
                events_pb2.QA_CATEGORY_LOCAL_POSTURE,
                QuestionForm.LOCAL_POSTURE.format(subject=subject.label, body_part=part),
                action_option(action.verb_phrase),
                tuple(_as_option(f"{verb} their {part}") for verb in LIMB_VERBS.get(part.split(" ")[-1], ())),
                (_action_fact(subject.label, action),),
            )


def _global_posture_drafts(caption: events_pb2.Caption) -> Iterator[_Draft]:
    for subject in caption.subjects:
        for action in ordered_actions(subject):
            phrase = strip_count(action.verb_phrase)
            if phrase not in POSTURE_VOCABULARY:
                continue
            yield _Draft(
                events_pb2.QA_CATEGORY_GLOBAL_POSTURE,
                QuestionForm.GLOBAL_POSTURE.format(subject=subject.label),
                _as_option(phrase),
                tuple(_as_option(p) for p in (_antonym(phrase), *POSTURE_VOCABULARY)),
                (_action_fact(subject.label, action),),
            )


def _object_drafts(caption: events_pb2.Caption) -> Iterator[_Draft]:
    labels = [s.label for s in caption.subjects]
    for subject in caption.subjects:
        other_objects = [t for s in caption.subjects if s.label != subject.label for t in object_targets(s, labels)]
        for action in ordered_actions(subject):
            if action.target not in object_targets(subject, labels):
                continue
            yield _Draft(
                events_pb2.QA_CATEGORY_HUMAN_OBJECT_INTERACTION,
                QuestionForm.OBJECT.format(subject=subject.label),
                f"The {action.target}",
                tuple(f"The {t}" for t in (*other_objects, *OBJECTS)),
                (_action_fact(subject.label, action),),
            )


_DRAFTERS = (
    _interaction_drafts,
    _details_drafts,
    _sequence_drafts,
    _count_drafts,
    _attribute_drafts,
    _direction_drafts,
    _when_drafts,
    _local_posture_drafts,
    _global_posture_drafts,
    _object_drafts,
)


# ------------------------------------------------------------------------------------------ items


def _realize(draft: _Draft, caption: events_pb2.Caption, rng: random.Random) -> events_pb2.QAItem | None:
    """The first item built from the draft's candidates that passes the validator, or None."""
    truth = true_options(draft.question, caption) or frozenset()
    if normalize_option(draft.correct) not in truth:
        return None  # the template and the caption disagree: never ask it
    seen = {normalize_option(draft.correct)}
    hard: list[str] = []
    for candidate in draft.candidates:
        key = normalize_option(candidate)
        if key and key not in seen and not option_is_true(candidate, truth):
            seen.add(key)
            hard.append(candidate)
    # Keep the hardest two in front; shuffle the rest so fillers vary with the seed.
    head, tail = hard[:2], hard[2:]
    rng.shuffle(tail)
    candidates = (head + tail)[:MAX_CANDIDATES]
    for distractors in itertools.combinations(candidates, 3):
        item = events_pb2.QAItem(
            category=draft.category,  # type: ignore[arg-type]
            question=draft.question,
            options=[draft.correct, *distractors],
            answer_index=0,
            facts=list(draft.facts),
        )
        if validate_item(item, caption).ok:
            return item
    return None


def caption_key(caption: events_pb2.Caption) -> str:
    return caption.span.clip_id or caption.video_id or "caption"


def generate_items(
    caption: events_pb2.Caption,
    seed: int | str = 0,
    per_category: int = DEFAULT_PER_CATEGORY,
    categories: Sequence[int] | None = None,
) -> list[events_pb2.QAItem]:
    """Up to `per_category` items in each category the caption supports, answer letters balanced.

    The same caption and seed give the same items (ids `<clip id>-<category>-<index>`); every item
    passes `validate_item` against the caption.
    """
    key = caption_key(caption)
    wanted = set(categories) if categories is not None else set(CATEGORY_SLUGS)
    by_category: dict[int, list[_Draft]] = {}
    for drafter in _DRAFTERS:
        for draft in drafter(caption):
            if draft.category in wanted:
                by_category.setdefault(draft.category, []).append(draft)
    items: list[events_pb2.QAItem] = []
    asked: set[str] = set()
    for category in sorted(by_category):
        slug = CATEGORY_SLUGS[category]
        rng = random.Random(f"{seed}:{key}:{slug}")
        drafts = by_category[category]
        rng.shuffle(drafts)
        index = 0
        for draft in drafts:
            if index >= per_category:
                break
            if draft.question in asked:
                continue  # one item per question, so a set never asks the same thing twice
            item = _realize(draft, caption, rng)
            if item is None:
                continue
            item.item_id = f"{key}-{slug}-{index}"
            asked.add(draft.question)
            items.append(item)
            index += 1
    return rebalance_positions(items, seed=f"{seed}:{key}")


def generate_qa_set(
    caption: events_pb2.Caption, seed: int | str = 0, per_category: int = DEFAULT_PER_CATEGORY
) -> events_pb2.QASet:
    """The caption's items as the haic.qa.v1 message."""
    return events_pb2.QASet(
        video_id=caption.video_id,
        span=caption.span,
        items=generate_items(caption, seed=seed, per_category=per_category),
        backend=BACKEND,
    )
