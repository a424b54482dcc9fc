"""How the quality benchmark compares what the pipeline states with what a person labelled.

Labels are free text written by a person ("juggles a football with his feet and knees", "light blue",
"none (shirtless)"); the pipeline states verb phrases from its action vocabulary and colour names from
its colour vocabulary. The rules here decide when the two mean the same thing. They are deliberately
coarse and written down in one place, so a figure the benchmark prints can be checked by hand.

- Actions: a labelled action is reduced to its main verbs (spaCy lemmas, the filter's English model),
  each mapped to a family of verbs a reader takes as the same action ("juggle" a ball with the feet is
  kicking it; "hop" is a small jump). "raise"/"lift" are split by body part (arm vs leg); "reach up"
  is also an arm raise. A labelled remark in parentheses ("stands still (a photo moved by the camera)")
  is not an action. A labelled action is recalled when any action stated for the subject falls in one
  of its families.
- Colours: a labelled colour is accepted as any of the names in its family ("light blue" is blue or
  teal, "khaki" is beige, brown or olive); "none (shirtless)" is matched by a stated bare torso.
- Subjects: labels carry no positions, so stated subjects are matched to labelled ones by the
  assignment that agrees on the most attributes (an optimistic matching, the usual one without boxes).
"""

from __future__ import annotations

import itertools
import re
from collections.abc import Sequence
from functools import cache

# Verb lemma -> action family. Verbs not listed form a family of their own.
ACTION_FAMILIES: dict[str, str] = {
    "juggle": "kick",
    "kick": "kick",
    "jump": "jump",
    "hop": "jump",
    "leap": "jump",
    "land": "crouch",
    "crouch": "crouch",
    "squat": "crouch",
    "bend": "crouch",
    "walk": "walk",
    "step": "walk",
    "approach": "walk",
    "run": "run",
    "jog": "run",
    "dance": "dance",
    "sign": "gesture",
    "gesture": "gesture",
    "talk": "gesture",
    "wave": "gesture",
    "swing": "swing_arms",
    "balance": "balance",
    "turn": "turn",
    "sit": "sit",
    "stand": "stand",
    "stay": "stand",
    "reach": "reach",
    "hug": "hug",
    "embrace": "hug",
    "clasp": "clasp",
    "lower": "lower_arm",
    "clap": "clap",
    "watch": "stand",
}
LEG_WORDS = {"leg", "legs", "knee", "knees", "foot", "feet"}
RAISE_VERBS = {"raise", "lift"}

# Labelled colour -> names the pipeline may state for it.
COLOUR_FAMILIES: dict[str, set[str]] = {
    "light blue": {"blue", "light blue", "teal"},
    "navy": {"navy", "blue"},
    "blue": {"blue", "navy", "light blue"},
    "khaki": {"khaki", "beige", "brown", "olive"},
    "light": {"white", "beige", "gray", "light"},
    "gray": {"gray"},
    "olive": {"olive", "green", "khaki"},
    "teal": {"teal", "green", "blue"},
    "brown": {"brown", "beige"},
    "pink": {"pink", "red", "purple"},
    "orange": {"orange"},
    "black": {"black"},
    "white": {"white"},
    "shirtless": {"shirtless", "bare", "none", "skin"},
}


@cache
def _nlp():  # spaCy's Language, loaded once: the filter's English model
    import spacy

    from services.filter.metadata import VERB_MODEL

    return spacy.load(VERB_MODEL)


def canonical_colour(label: str) -> str | None:
    """The colour family key of a labelled colour; None for 'unknown' or an empty label."""
    text = label.strip().lower()
    if not text or text == "unknown":
        return None
    if text.startswith("none") or "shirtless" in text:
        return "shirtless"
    base = re.sub(r"\s*\(.*\)$", "", text).strip()  # "black (a vest over white long sleeves)" -> "black"
    return base


def colour_matches(label: str, stated: str) -> bool:
    key = canonical_colour(label)
    if key is None:
        return False
    stated = stated.strip().lower()
    return stated in COLOUR_FAMILIES.get(key, {key})


def action_families(phrase: str) -> set[str]:
    """The action families a phrase names (labelled or stated)."""
    doc = _nlp()(re.sub(r"\(.*?\)", "", phrase.lower()))
    words = {t.text for t in doc}
    families = set()
    for token in doc:
        lemma = token.lemma_
        if token.pos_ not in {"VERB", "AUX"} and lemma not in ACTION_FAMILIES and lemma not in RAISE_VERBS:
            continue
        if lemma in RAISE_VERBS:
            families.add("raise_leg" if words & LEG_WORDS else "raise_arm")
        elif lemma in ACTION_FAMILIES:
            families.add(ACTION_FAMILIES[lemma])
            if lemma == "reach" and "up" in words:
                families.add("raise_arm")
        elif token.pos_ == "VERB":
            families.add(lemma)
    return families


def action_recalled(label_action: str, stated: Sequence[str]) -> bool:
    wanted = action_families(label_action)
    if not wanted:
        return False
    return any(wanted & action_families(phrase) for phrase in stated)


def best_assignment(labelled: int, stated: int, agreement) -> list[tuple[int, int]]:
    """Pairs (labelled index, stated index) maximising the summed agreement(i, j); brute force (few people)."""
    if labelled == 0 or stated == 0:
        return []
    best: list[tuple[int, int]] = []
    best_score = -1.0
    if labelled <= stated:
        for chosen in itertools.permutations(range(stated), labelled):
            pairs = list(zip(range(labelled), chosen, strict=True))
            score = sum(agreement(i, j) for i, j in pairs)
            if score > best_score:
                best, best_score = pairs, score
    else:
        for chosen in itertools.permutations(range(labelled), stated):
            pairs = list(zip(chosen, range(stated), strict=True))
            score = sum(agreement(i, j) for i, j in pairs)
            if score > best_score:
                best, best_score = pairs, score
    return sorted(best)
