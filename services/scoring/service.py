"""The scoring service: each QA set from haic.qa.v1 is answered by the configured answerers and scored;
one ScoreRecord per answerer goes to haic.scores.v1, and running accuracies per category to Prometheus."""

from __future__ import annotations

import contextlib
import logging
import threading
from collections.abc import Iterator, Sequence
from pathlib import Path

import grpc

from haic.v1 import events_pb2, scoring_pb2, scoring_pb2_grpc
from services.core import metrics, topics, topology
from services.core.bus import ClipPoisonError, Handler, Output
from services.core.contracts import CATEGORY_SLUGS
from services.core.grpc_server import InvalidRequestError, maps_errors
from services.core.llm import ChatEndpoint
from services.core.service import stage_handler
from services.core.settings import ScoringServiceSettings
from services.core.storage import Storage
from services.scoring.evaluate import (
    CAPTION_SETTING,
    STANDARD_SETTING,
    Answerer,
    CaptionLexicalAnswerer,
    Evaluation,
    MajorityLetterAnswerer,
    MllmAnswerer,
    RandomAnswerer,
    evaluate,
)

log = logging.getLogger(__name__)

STAGE = topology.stage("scoring")
BUILT_IN = ("caption-lexical", "random", "majority-letter")
MLLM = "mllm"


class UnknownAnswererError(InvalidRequestError):
    """An answerer name that is neither built in nor `mllm`."""


class QASetNotUsableError(ClipPoisonError):
    """The event is not a QA set with a clip id and items."""


class Answerers:
    """Builds answerers by name; `mllm` (the HAIC_MLLM_* endpoint) in the caption or standard setting."""

    def __init__(
        self, settings: ScoringServiceSettings, storage: Storage | None = None, endpoint: ChatEndpoint | None = None
    ):
        self.settings = settings
        self.storage = storage
        self._endpoint = endpoint
        self._owns_endpoint = endpoint is None

    @property
    def endpoint(self) -> ChatEndpoint:
        if self._endpoint is None:
            self._endpoint = ChatEndpoint(self.settings)
        return self._endpoint

    def close(self) -> None:
        if self._endpoint is not None and self._owns_endpoint:
            self._endpoint.close()

    def build(self, name: str, qa_sets: Sequence[events_pb2.QASet], setting: str = "") -> Answerer:
        match name:
            case "caption-lexical":
                return CaptionLexicalAnswerer(self.settings.scoring_refusal_threshold)
            case "random":
                return RandomAnswerer(self.settings.scoring_seed)
            case "majority-letter":
                return MajorityLetterAnswerer(item for qa in qa_sets for item in qa.items)
            case "mllm":
                return MllmAnswerer(self.endpoint, self.settings, setting or CAPTION_SETTING, self._video_of)
        raise UnknownAnswererError(f"unknown answerer {name!r}; built in: {', '.join(BUILT_IN)}, or {MLLM}")

    @contextlib.contextmanager
    def _video_of(self, qa: events_pb2.QASet) -> Iterator[Path]:
        if self.storage is None:
            raise ValueError("no storage to read the clips' videos from")
        with self.storage.local_path(qa.storage_uri) as path:
            yield path


class RunningScores:
    """Accuracy per (answerer, setting, category) since the service started, for the Prometheus gauge."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._counts: dict[tuple[str, str, int], list[int]] = {}

    def add(self, evaluation: Evaluation) -> None:
        with self._lock:
            for category, total in evaluation.total.items():
                counts = self._counts.setdefault((evaluation.answerer, evaluation.setting, category), [0, 0])
                counts[0] += evaluation.correct.get(category, 0)
                counts[1] += total
            per_category = {
                c: counts[0] / counts[1]
                for (a, s, c), counts in self._counts.items()
                if (a, s) == (evaluation.answerer, evaluation.setting)
            }
            for category, accuracy in per_category.items():
                metrics.EVAL_ACCURACY.labels(evaluation.answerer, evaluation.setting, CATEGORY_SLUGS[category]).set(
                    accuracy
                )
            average = sum(per_category.values()) / len(per_category)
            metrics.EVAL_ACCURACY.labels(evaluation.answerer, evaluation.setting, "average").set(average)


def count_outcomes(evaluation: Evaluation) -> None:
    correct = sum(evaluation.correct.values())
    wrong = evaluation.items - correct - evaluation.refused
    metrics.EVAL_ITEMS.labels(evaluation.answerer, "correct").inc(correct)
    metrics.EVAL_ITEMS.labels(evaluation.answerer, "refused").inc(evaluation.refused)
    metrics.EVAL_ITEMS.labels(evaluation.answerer, "wrong").inc(wrong)


class QAScorer:
    def __init__(self, settings: ScoringServiceSettings, answerers: Answerers) -> None:
        self.settings = settings
        self.answerers = answerers
        self.running = RunningScores()
        for name in settings.scoring_answerers:
            answerers.build(name, [])  # an unknown name fails at start, not on the first message

    def score(self, qa: events_pb2.QASet, answerer: str, setting: str = "") -> Evaluation:
        if not qa.span.clip_id or not qa.items:
            raise QASetNotUsableError(qa.span.clip_id, "a QA set with a clip id and items is needed")
        built = self.answerers.build(answerer, [qa], setting)
        evaluation = evaluate(built, [qa], self.settings.scoring_bootstrap_samples, self.settings.scoring_seed)
        count_outcomes(evaluation)
        self.running.add(evaluation)
        return evaluation

    def score_all(self, qa: events_pb2.QASet) -> list[events_pb2.ScoreRecord]:
        return [self.score(qa, name).to_record(qa.video_id, qa.span) for name in self.settings.scoring_answerers]


def make_handler(scorer: QAScorer) -> Handler:
    def process(qa: events_pb2.QASet) -> list[Output]:
        if not qa.items:
            return []  # a caption that supported no item: nothing to score
        return [Output(topics.SCORES, qa.video_id, record) for record in scorer.score_all(qa)]

    return stage_handler(STAGE, process)


class ScoringServicer(scoring_pb2_grpc.ScoringServiceServicer):
    def __init__(self, scorer: QAScorer) -> None:
        self._scorer = scorer

    @maps_errors
    def Evaluate(  # the name is fixed by the generated servicer
        self, request: scoring_pb2.EvaluateRequest, context: grpc.ServicerContext
    ) -> scoring_pb2.EvaluateResponse:
        setting = request.setting or CAPTION_SETTING
        if setting not in (CAPTION_SETTING, STANDARD_SETTING):
            raise InvalidRequestError(f"unknown setting {setting!r}")
        evaluation = self._scorer.score(request.qa, request.answerer or "caption-lexical", setting)
        return scoring_pb2.EvaluateResponse(score=evaluation.to_record(request.qa.video_id, request.qa.span))
