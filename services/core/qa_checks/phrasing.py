"""How QA options and caption facts are worded, shared by the QA backends and the validator.

Options are compared normalized (case, spacing, punctuation, a leading article ignored; his/her read as
their); caption verb phrases are turned into options (count stripped, base form after "they"), and a
caption's facts into the option that states them: counts, directions, garments, the part of the clip
an action falls in, and interactions told from either participant's side.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

from haic.v1 import events_pb2
from services.core.contracts import THROUGHOUT_SHARE, InteractionKind

_COUNT_SUFFIX = re.compile(r"\s+(?:once|twice|(?:\w+|\d+) times)$")
_ARTICLE = re.compile(r"^(?:a|an|the)\s+")
_NUMBER_WORDS = ("zero", "once", "twice", "three", "four", "five", "six", "seven", "eight", "nine", "ten")
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
THROUGHOUT_OPTION = "Throughout the clip"  # for actions lasting THROUGHOUT_SHARE of the clip, as the captioner says

# Interactions told from one participant's side; the second entry is the other participant's side.
INTERACTION_SIDES: dict[str, tuple[str, str]] = {
    InteractionKind.APPROACHING: ("Gets closer to them", "Gets closer to them"),
    InteractionKind.MOVING_APART: ("Moves away from them", "Moves away from them"),
    InteractionKind.FACING_EACH_OTHER: ("Faces them", "Faces them"),
    InteractionKind.TOUCHING: ("Touches them", "Is touched by them"),
    InteractionKind.FOLLOWING: ("Follows them", "Is followed by them"),
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
