"""Renders a structured caption as text in HAIC's per-person format (paper section 1, figure 1).

    The main characters are two people.

    The first subject is a person wearing a red top and blue trousers. Initially, they raise their
    right arm three times, then walk to the left, finally turn around.

    The second subject is ...

Subjects are introduced by their attributes (never only by number); actions are told in time order
with "Initially ..., then ..., finally ..."; interactions follow, naming both subjects by label.
"""

from __future__ import annotations

from collections.abc import Sequence

from haic.v1 import events_pb2
from services.core.contracts import THROUGHOUT_SHARE, InteractionKind

BARE_TORSO = "bare torso"  # no upper garment: stated as "shirtless", never with a colour

# How a reader names a person of a gender and an age group: (male, female, either).
_AGE_NOUNS = {
    "child": ("boy", "girl", "child"),
    "teenager": ("teenage boy", "teenage girl", "teenager"),
    "young adult": ("young man", "young woman", "young adult"),
    "middle-aged": ("middle-aged man", "middle-aged woman", "middle-aged person"),
    "elderly": ("elderly man", "elderly woman", "elderly person"),
}


def person_noun(gender: str, age_group: str) -> str:
    """'young man', 'teenage girl', 'elderly person', 'woman', 'person': unknown (empty) parts unsaid."""
    nouns = _AGE_NOUNS.get(age_group, ("man", "woman", "person"))
    return nouns[0] if gender == "male" else nouns[1] if gender == "female" else nouns[2]


ORDINALS = ("first", "second", "third", "fourth", "fifth", "sixth", "seventh", "eighth", "ninth", "tenth")
NUMBERS = ("no", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine", "ten")
TIME_MARKERS = ("Initially", "then", "finally")

# Third-person forms whose "they" form the suffix rules get wrong ("lies" is not "ly").
_IRREGULAR_PLURALS = {"lies": "lie", "dies": "die", "ties": "tie", "goes": "go", "does": "do", "has": "have"}
_PRONOUNS = {"male": ("he", "his"), "female": ("she", "her")}


def number_word(n: int) -> str:
    return NUMBERS[n] if 0 <= n < len(NUMBERS) else str(n)


def ordinal(index: int) -> str:
    return ORDINALS[index] if index < len(ORDINALS) else f"{index + 1}th"


def describe_person(attributes: events_pb2.SubjectAttributes) -> str:
    """'a middle-aged man wearing a red top and blue trousers'; 'a person' when nothing is known."""
    head = person_noun(attributes.gender, attributes.age_group)
    if any(g.item == BARE_TORSO for g in attributes.clothing):
        head = f"shirtless {head}"  # no upper garment: said of the person, not worn
    article = _article(head)
    parts = [f"{g.color} {g.item}".strip() for g in attributes.clothing if g.item and g.item != BARE_TORSO]
    text = f"{article} {head}"
    if parts:
        text += " wearing " + _join([p if _is_plural(p) else f"{_article(p)} {p}" for p in parts])
    if attributes.accessories:
        text += " with " + _join(list(attributes.accessories))
    return text


def _article(phrase: str) -> str:
    """'an orange top', 'an elderly man', 'a young woman'."""
    return "an" if phrase[:1] in ("a", "e", "i", "o", "u") else "a"


def _is_plural(garment: str) -> bool:
    """'navy trousers', 'red shorts' take no article; 'a green dress' does."""
    return garment.endswith("s") and not garment.endswith("ss")


def _join(items: Sequence[str]) -> str:
    if len(items) <= 1:
        return "".join(items)
    return ", ".join(items[:-1]) + " and " + items[-1]


def _personal(phrase: str, gender: str) -> str:
    """Verb phrases are stored with 'their'; a subject of known gender reads 'his' or 'her'."""
    pronoun = _PRONOUNS.get(gender)
    return phrase.replace("their ", f"{pronoun[1]} ") if pronoun else phrase


def _plural_verb(phrase: str) -> str:
    """'raises their arm' -> 'raise their arm' for the pronoun 'they'."""
    verb, _, rest = phrase.partition(" ")
    if verb in _IRREGULAR_PLURALS:
        verb = _IRREGULAR_PLURALS[verb]
    elif verb.endswith("ies") and len(verb) > 4:
        verb = verb[:-3] + "y"
    elif verb.endswith(("shes", "ches", "sses", "xes")):
        verb = verb[:-2]
    elif verb.endswith("s") and not verb.endswith("ss"):
        verb = verb[:-1]
    return f"{verb} {rest}".strip()


def render_actions(subject: events_pb2.Subject, clip_s: float = 0.0) -> str:
    gender = subject.attributes.gender
    pronoun = _PRONOUNS.get(gender, ("they", "their"))[0]
    phrases = [_personal(a.verb_phrase, gender) for a in sorted(subject.actions, key=lambda a: a.start_s)]
    if pronoun == "they":
        phrases = [_plural_verb(p) for p in phrases]
    subject_word = pronoun.capitalize()
    if not phrases:
        return f"{subject_word} {'stay' if pronoun == 'they' else 'stays'} still."
    if len(phrases) == 1:
        action = subject.actions[0]
        # one action over most of the clip is the clip's activity; a brief one is an event within it
        lasting = clip_s <= 0 or action.end_s - action.start_s >= THROUGHOUT_SHARE * clip_s
        return f"{'Throughout the clip' if lasting else 'At one point'}, {pronoun} {phrases[0]}."
    middle = "".join(f", then {p}" for p in phrases[1:-1])
    return f"Initially, {pronoun} {phrases[0]}{middle}, finally {phrases[-1]}."


_INTERACTIONS: dict[str, str] = {  # by InteractionKind (a str: the wire value looks it up)
    InteractionKind.APPROACHING: "{a} and {b} approach each other",
    InteractionKind.MOVING_APART: "{a} and {b} move apart",
    InteractionKind.TOUCHING: "{a} touches {b}",
    InteractionKind.HUGGING: "{a} hugs {b}",
    InteractionKind.FACING_EACH_OTHER: "{a} and {b} face each other",
    InteractionKind.FOLLOWING: "{a} follows {b}",
}


def render_interaction(interaction: events_pb2.Interaction) -> str:
    template = _INTERACTIONS.get(interaction.kind, "{a} and {b}: " + interaction.kind)
    text = template.format(a=interaction.subject_label, b=interaction.object_label)
    return text[0].upper() + text[1:] + "."


def render_caption(
    subjects: Sequence[events_pb2.Subject], interactions: Sequence[events_pb2.Interaction], clip_s: float = 0.0
) -> str:
    count = len(subjects)
    if count == 1:
        head = "The main character is one person."
    else:
        head = f"The main characters are {number_word(count)} people."
    paragraphs = [head]
    for index, subject in enumerate(subjects):
        paragraphs.append(
            f"The {ordinal(index)} subject is {describe_person(subject.attributes)}. {render_actions(subject, clip_s)}"
        )
    if interactions:
        paragraphs.append(" ".join(render_interaction(i) for i in sorted(interactions, key=lambda i: i.start_s)))
    return "\n\n".join(paragraphs)
