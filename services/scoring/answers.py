"""Parsing a model's free-text answer to a multiple-choice question, as lmms-eval does it.

lmms-eval (e.g. its Video-MME and MVBench tasks) strips answer prefixes such as "The answer is" and
"Answer:", then takes the option letter; models that answer with the option's text are matched
against the options. On top of that, HAIC's caption setting tells the answerer to refuse when the
caption lacks the information, so refusals are recognised and returned as `REFUSED` (scored as wrong,
but counted apart from unparseable output, which is None).

The order matters: an explicit letter ("B", "(B)", "The answer is B") wins; then a refusal; then the
option text; then a lone letter in a short reply. The article "A" before a lowercase word ("A red
top") is never read as option A.
"""

from __future__ import annotations

import re
import string
from collections.abc import Sequence
from enum import Enum

from services.core.contracts import OPTION_LETTERS

# HAIC's items have four options, lettered OPTION_LETTERS. The parser, like lmms-eval's, also reads items
# with more options (up to MAX_OPTIONS, lettered on in the alphabet), so that the same answerers score
# other multiple-choice sets; a letter past an item's own options is never read as an answer.
MAX_OPTIONS = 8
LETTERS = OPTION_LETTERS + string.ascii_uppercase[len(OPTION_LETTERS) : MAX_OPTIONS]
MAX_WORDS_FOR_LONE_LETTER = 10  # lmms-eval's rule: a long reply without a clear letter is not guessed at


class Refusal(Enum):
    REFUSED = "refused"


REFUSED = Refusal.REFUSED
ParsedAnswer = int | Refusal | None  # option index, a refusal, or unparseable

_MARKUP = re.compile(r"[*_`#>]+")
_PREFIXES = re.compile(
    r"^(?:(?:so|thus|therefore|hence),?\s+)?(?:i think|i believe|my answer is|final answer:?|"
    r"the (?:best |correct |right |final )?(?:answer|option|choice)(?: is| would be|:)?|"
    r"(?:best |correct )?(?:answer|option|choice)\s*[:=-]?|answer is)\s*",
    re.IGNORECASE,
)
_REFUSALS = re.compile(
    r"\b(?:cannot|can ?not|can't|unable to|impossible to) (?:be )?(?:determine|determined|tell|answer|say|know)"
    r"|\bnot (?:enough|sufficient) (?:information|info|context|detail)|\binsufficient (?:information|detail)"
    r"|\b(?:does not|doesn't|do not|don't) (?:provide|give|contain|include|have) (?:enough|sufficient|any)"
    r"|\bi (?:do not|don't) know\b|\bno (?:information|mention)\b|\bdoes not (?:mention|say|specify|contain)"
    r"|\bdoesn't (?:mention|say|specify)|\bnot (?:mentioned|specified|stated)\b|\bunknown\b|\bnone of the above\b",
    re.IGNORECASE,
)


# "A" followed by a lowercase word is the article ("A red top"), unless the word joins letters ("A or B").
_ARTICLE_FOLLOWER = re.compile(r"\s+(?!(?:or|and|nor|vs|is|was|seems|looks|because|since)\b)[a-z]")


def _letters(option_count: int) -> str:
    """The letters of an item with that many options; without options, HAIC's."""
    return LETTERS[:option_count] if option_count else OPTION_LETTERS


def _clean(text: str) -> str:
    return " ".join(_MARKUP.sub(" ", text).split())


def _bare_letter(text: str, letters: str) -> int | None:
    """'B', '(b)', '[B]', 'B.', 'B)', 'B:' and the like, alone."""
    m = re.fullmatch(rf"[\(\[]?\s*([{letters}])\s*[\)\]]?\s*[.:)]?", text, re.IGNORECASE)
    return letters.index(m.group(1).upper()) if m else None


def _explicit_letter(text: str, letters: str) -> int | None:
    """A letter after an answer prefix, or leading the reply ('B. Raises ...', '(B) ...')."""
    stripped = _PREFIXES.sub("", text, count=1).strip()
    if stripped != text:
        bare = _bare_letter(stripped, letters)
        if bare is not None:
            return bare
        # "The answer is B because ..." / "Answer: b) raises ...": the letter must stand alone. An
        # uppercase letter followed by a space is enough; a lowercase one needs punctuation after it,
        # so "the answer is a red top" is left to option-text matching.
        m = re.match(rf"[\(\[]?([{letters}])(?:[\)\]:.,]|$)|[\(\[]?([{letters.upper()}])\s", stripped, re.IGNORECASE)
        if m:
            letter = m.group(1) or m.group(2)
            article = letter == "A" and _ARTICLE_FOLLOWER.match(stripped[m.end() - 1 :])
            if m.group(2) is None or (letter.isupper() and not article):
                return letters.index(letter.upper())
    m = re.match(rf"[\(\[]([{letters}])[\)\]]|([{letters}])[.):]\s", text)
    if m:
        return letters.index((m.group(1) or m.group(2)).upper())
    return None


def _option_text(text: str, options: Sequence[str]) -> int | None:
    """The option whose text is the reply, or the only option whose text the reply contains."""

    def norm(s: str) -> str:
        return " ".join(re.sub(r"[^a-z0-9]+", " ", s.lower()).split())

    reply = norm(text)
    keys = [norm(o) for o in options]
    for index, key in enumerate(keys):
        if key and key == reply:
            return index
    found = [i for i, key in enumerate(keys) if key and re.search(rf"\b{re.escape(key)}\b", reply)]
    # An option inside a longer matched option ("jumps" in "jumps twice") is not a second match.
    found = [i for i in found if not any(j != i and keys[i] in keys[j] for j in found)]
    return found[0] if len(found) == 1 else None


def _lone_letter(text: str, letters: str) -> int | None:
    """One distinct uppercase option letter standing alone in a short reply ('I would go with C')."""
    if len(text.split()) > MAX_WORDS_FOR_LONE_LETTER:
        return None
    hits = {
        m.group(1)
        for m in re.finditer(rf"(?<![A-Za-z'])([{letters}])(?![A-Za-z'])", text)
        if not (m.group(1) == "A" and _ARTICLE_FOLLOWER.match(text[m.end() :]))
    }
    return letters.index(hits.pop()) if len(hits) == 1 else None


def parse_answer(reply: str | None, options: Sequence[str] = ()) -> ParsedAnswer:
    """The option index a reply picks, `REFUSED` for a refusal, or None when it cannot be read."""
    if not reply:
        return None
    text = _clean(reply)
    if not text:
        return None
    letters = _letters(len(options))
    for parse in (_bare_letter, _explicit_letter):
        index = parse(text, letters)
        if index is not None:
            return index
    if _REFUSALS.search(text):
        return REFUSED
    if options:
        index = _option_text(text, options)
        if index is not None:
            return index
    return _lone_letter(text, letters)


def letter(index: int) -> str:
    return LETTERS[index]
