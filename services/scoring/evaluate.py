"""Scoring an answerer on QA sets, as HAIC section 4.1 does: accuracy per category and HAIC's average (the
mean of the category accuracies), with a 95% bootstrap interval over items and the chance level.

Answerers reply in free text; `parse_answer` reads the reply as lmms-eval does. A refusal (HAIC's caption
setting tells the answerer to refuse when the caption lacks the information) and an unreadable reply
both count as wrong, and are counted apart.

Built-in answerers, so scoring runs offline:
- ``caption-lexical`` (caption setting): finds the caption clauses that share most words with the
  question, then picks the option whose words they cover best; refuses below a coverage threshold or on
  a tie. Deterministic.
- ``random``: a letter drawn per item from a seeded generator.
- ``majority-letter``: always the letter most often correct in the evaluated sets.
- ``mllm``: the HAIC_MLLM_* endpoint, in the standard setting (frames + question) or the caption
  setting (caption + question, told to refuse when the caption does not say).
"""

from __future__ import annotations

import random
import re
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from haic.v1 import events_pb2
from services.core.bus import now_timestamp
from services.core.contracts import CATEGORY_SLUGS
from services.core.llm import ChatEndpoint, clip_frames, frame_parts
from services.core.settings import ScoringServiceSettings
from services.scoring.answers import REFUSED, letter, parse_answer

CAPTION_SETTING = "caption"
STANDARD_SETTING = "standard"
_MLLM_MAX_TOKENS = 64  # a letter, or a short refusal

_WORD = re.compile(r"[a-z]+")
_CLAUSE = re.compile(r"[.;,]|\b(?:then|finally|initially)\b", re.IGNORECASE)
_SEQUENCE = re.compile(r"(?:immediately|just) (after|before) they\b", re.IGNORECASE)
REFUSAL_REPLY = "Cannot be determined from the caption."
_STOP = frozenset(
    [
        "a",
        "an",
        "the",
        "and",
        "or",
        "of",
        "to",
        "in",
        "on",
        "at",
        "with",
        "their",
        "they",
        "them",
        "his",
        "her",
        "he",
        "she",
        "its",
        "it",
        "is",
        "are",
        "does",
        "do",
        "did",
        "what",
        "which",
        "who",
        "how",
        "when",
        "where",
        "person",
        "people",
        "clip",
        "this",
        "that",
        "these",
        "those",
        "from",
        "by",
        "for",
        "as",
        "into",
        "onto",
    ]
)


class Answerer(Protocol):
    name: str
    setting: str

    def answer(self, item: events_pb2.QAItem, qa: events_pb2.QASet) -> str:
        """The model's reply to one item, as text."""
        ...


def _words(text: str) -> set[str]:
    # A crude stem (plural/third-person -s, -es) so "kicks" meets "kick".
    out = set()
    for word in _WORD.findall(text.lower()):
        if word in _STOP:
            continue
        if len(word) > 4 and word.endswith("es"):
            word = word[:-2]
        elif len(word) > 3 and word.endswith("s"):
            word = word[:-1]
        out.add(word)
    return out


class CaptionLexicalAnswerer:
    """Answers from the caption text alone by word overlap (HAIC's caption setting, no model)."""

    setting = CAPTION_SETTING

    def __init__(self, refusal_threshold: float, name: str = "caption-lexical") -> None:
        self.name = name
        self.refusal_threshold = refusal_threshold

    def answer(self, item: events_pb2.QAItem, qa: events_pb2.QASet) -> str:
        clauses = [_words(c) for c in _CLAUSE.split(qa.caption.text) if c.strip()]
        if not clauses:
            return REFUSAL_REPLY
        question = _words(item.question)
        sequence = _SEQUENCE.search(item.question)
        if sequence is not None:
            # "immediately after / just before they <action>": the neighbouring clause tells the answer.
            action = _words(item.question[sequence.end() :])
            anchor = max(range(len(clauses)), key=lambda i: len(clauses[i] & action))
            neighbour = anchor + (1 if sequence.group(1).lower() == "after" else -1)
            clauses = [clauses[neighbour]] if 0 <= neighbour < len(clauses) else []
            question = set()
        scores = [_option_score(_words(option), question, clauses) for option in item.options]
        order = sorted(range(len(scores)), key=lambda i: scores[i], reverse=True)
        best = order[0]
        if scores[best] < self.refusal_threshold or scores[order[1]] == scores[best]:
            return REFUSAL_REPLY
        return letter(best)


def _option_score(option: set[str], question: set[str], clauses: Sequence[set[str]]) -> float:
    """How well the best clause covers the option, weighted by how much of the question it is about."""
    if not option:
        return 0.0
    best = 0.0
    for clause in clauses:
        about = len(question & clause) / len(question) if question else 1.0
        best = max(best, len(option & clause) / len(option) * (0.5 + 0.5 * about))
    return best


class RandomAnswerer:
    setting = CAPTION_SETTING  # it reads nothing; reported beside the caption-setting answerers

    def __init__(self, seed: int, name: str = "random") -> None:
        self.name = name
        self.seed = seed

    def answer(self, item: events_pb2.QAItem, qa: events_pb2.QASet) -> str:
        return letter(random.Random(f"{self.seed}:{item.item_id}").randrange(len(item.options)))


class MajorityLetterAnswerer:
    setting = CAPTION_SETTING

    def __init__(self, items: Iterable[events_pb2.QAItem], name: str = "majority-letter") -> None:
        self.name = name
        counts = Counter(item.answer_index for item in items)
        # Ties go to the earliest letter, so the baseline is deterministic.
        self.index = min(counts, key=lambda i: (-counts[i], i)) if counts else 0

    def answer(self, item: events_pb2.QAItem, qa: events_pb2.QASet) -> str:
        return letter(self.index)


class MllmAnswerer:
    """The configured OpenAI-compatible endpoint as an answerer, in either HAIC setting."""

    def __init__(
        self,
        endpoint: ChatEndpoint,
        settings: ScoringServiceSettings,
        setting: str,
        video_of: Callable[[events_pb2.QASet], Any] | None = None,
    ) -> None:
        """`video_of`: a context manager factory giving a QA set's readable video path (standard setting)."""
        if setting not in (CAPTION_SETTING, STANDARD_SETTING):
            raise ValueError(f"unknown setting {setting!r}")
        if setting == STANDARD_SETTING and video_of is None:
            raise ValueError("the standard setting needs the clips' videos")
        self.endpoint = endpoint
        self.settings = settings
        self.setting = setting
        self.name = f"mllm:{endpoint.model}"
        self._video_of = video_of
        self._frames: dict[str, list[dict[str, Any]]] = {}

    def answer(self, item: events_pb2.QAItem, qa: events_pb2.QASet) -> str:
        options = "\n".join(f"{letter(i)}. {o}" for i, o in enumerate(item.options))
        question = f"Question: {item.question}\nOptions:\n{options}\nAnswer with the option's letter only."
        if self.setting == CAPTION_SETTING:
            content: Any = (
                f"Caption of a video clip:\n{qa.caption.text}\n\n{question}\n"
                "If the caption does not contain the information needed, answer: Cannot be determined."
            )
        else:
            content = [{"type": "text", "text": "Frames of a video clip follow."}, *self._frame_parts(qa)]
            content.append({"type": "text", "text": question})
        messages = [{"role": "user", "content": content}]
        return self.endpoint.complete(qa.span.clip_id, messages, "", None, _MLLM_MAX_TOKENS)

    def _frame_parts(self, qa: events_pb2.QASet) -> list[dict[str, Any]]:
        key = qa.span.clip_id
        if key not in self._frames:
            assert self._video_of is not None
            clip = events_pb2.ClipVerdict(video_id=qa.video_id, span=qa.span, storage_uri=qa.storage_uri)
            with self._video_of(qa) as path:
                frames = clip_frames(clip, Path(path), self.settings.mllm_frames, self.settings.mllm_frame_width)
            self._frames[key] = frame_parts(clip, frames)
        return self._frames[key]


@dataclass
class Evaluation:
    answerer: str
    setting: str
    correct: dict[int, int] = field(default_factory=dict)  # by category
    total: dict[int, int] = field(default_factory=dict)
    refused: int = 0
    unparsed: int = 0
    average: float = 0.0
    ci_low: float = 0.0
    ci_high: float = 0.0
    chance: float = 0.0

    @property
    def items(self) -> int:
        return sum(self.total.values())

    def accuracy(self, category: int) -> float:
        return self.correct.get(category, 0) / self.total[category] if self.total.get(category) else 0.0

    def as_dict(self) -> dict[str, Any]:
        return {
            "answerer": self.answerer,
            "setting": self.setting,
            "items": self.items,
            "average": round(self.average, 4),
            "ci95": [round(self.ci_low, 4), round(self.ci_high, 4)],
            "chance": round(self.chance, 4),
            "refused": self.refused,
            "unparsed": self.unparsed,
            "categories": {
                CATEGORY_SLUGS[c]: {
                    "correct": self.correct.get(c, 0),
                    "total": n,
                    "accuracy": round(self.accuracy(c), 4),
                }
                for c, n in sorted(self.total.items())
            },
        }

    def to_record(self, video_id: str = "", span: events_pb2.ClipSpan | None = None) -> events_pb2.ScoreRecord:
        return events_pb2.ScoreRecord(
            video_id=video_id,
            span=span,
            answerer=self.answerer,
            setting=self.setting,
            categories=[
                events_pb2.CategoryScore(
                    category=c,  # type: ignore[arg-type]
                    correct=self.correct.get(c, 0),
                    total=n,
                    accuracy=self.accuracy(c),
                )
                for c, n in sorted(self.total.items())
            ],
            average=self.average,
            ci_low=self.ci_low,
            ci_high=self.ci_high,
            chance=self.chance,
            produced_at=now_timestamp(),
            refused=self.refused,
            unparsed=self.unparsed,
        )


def haic_average(categories: np.ndarray, correct: np.ndarray) -> float:
    """The mean over categories of each category's accuracy."""
    present = np.unique(categories)
    return float(np.mean([correct[categories == c].mean() for c in present])) if len(present) else 0.0


def evaluate(
    answerer: Answerer,
    qa_sets: Sequence[events_pb2.QASet],
    bootstrap_samples: int = 1000,
    seed: int = 0,
    on_item: Callable[[], None] | None = None,
) -> Evaluation:
    result = Evaluation(answerer.name, answerer.setting)
    categories: list[int] = []
    outcomes: list[bool] = []
    chances: list[float] = []
    for qa in qa_sets:
        for item in qa.items:
            parsed = parse_answer(answerer.answer(item, qa), list(item.options))
            right = parsed == item.answer_index
            if parsed is REFUSED:
                result.refused += 1
            elif parsed is None:
                result.unparsed += 1
            result.total[item.category] = result.total.get(item.category, 0) + 1
            result.correct[item.category] = result.correct.get(item.category, 0) + int(right)
            categories.append(item.category)
            outcomes.append(right)
            chances.append(1.0 / len(item.options))
            if on_item is not None:
                on_item()
    if not outcomes:
        return result
    cats, hits = np.array(categories), np.array(outcomes, dtype=np.float64)
    result.average = haic_average(cats, hits)
    result.chance = float(np.mean(chances))
    # Percentile bootstrap over items: resample items with replacement, recompute HAIC's average.
    rng = np.random.default_rng(seed)
    draws = rng.integers(0, len(hits), size=(bootstrap_samples, len(hits)))
    averages = [haic_average(cats[d], hits[d]) for d in draws]
    result.ci_low, result.ci_high = (float(v) for v in np.percentile(averages, [2.5, 97.5]))
    return result


def leaderboard_markdown(evaluations: Sequence[Evaluation]) -> str:
    """One row per answerer, best average first; a column per category present in any evaluation."""
    categories = sorted({c for e in evaluations for c in e.total})
    head = ["answerer", "setting", "items", "HAIC average", "95% CI", *[CATEGORY_SLUGS[c] for c in categories]]
    rows = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for e in sorted(evaluations, key=lambda e: -e.average):
        cells = [
            e.answerer,
            e.setting,
            str(e.items),
            f"{100 * e.average:.1f}",
            f"{100 * e.ci_low:.1f} to {100 * e.ci_high:.1f}",
            *[f"{100 * e.accuracy(c):.1f}" if e.total.get(c) else "" for c in categories],
        ]
        rows.append("| " + " | ".join(cells) + " |")
    chance = max((e.chance for e in evaluations), default=0.0)
    refusals = ", ".join(f"{e.answerer} {e.refused}" for e in evaluations if e.refused)
    rows.append("")
    rows.append(f"Chance: {100 * chance:.1f}. Refusals (counted wrong): {refusals or 'none'}.")
    return "\n".join(rows)
