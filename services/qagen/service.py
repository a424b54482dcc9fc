"""The QA generator: one judge-passed caption in, one validated QA set out, for Kafka and gRPC alike."""

from __future__ import annotations

import logging

import grpc

from haic.v1 import events_pb2, qagen_pb2, qagen_pb2_grpc
from services.core import metrics, topics, topology
from services.core.bus import ClipPoisonError, Handler, Output, now_timestamp
from services.core.contracts import CATEGORY_BY_SLUG, category_slug
from services.core.grpc_server import PreconditionError, maps_errors
from services.core.llm import ChatEndpoint
from services.core.service import stage_handler
from services.core.settings import QABackend, QAServiceSettings
from services.qagen import templates
from services.qagen.llm_backend import BACKEND as BACKEND_LLM
from services.qagen.llm_backend import LlmQABackend

log = logging.getLogger(__name__)

STAGE = topology.stage("qagen")


class CaptionNotUsableError(ClipPoisonError):
    """The event is not a caption the generator can use (no clip id, no subjects)."""


class ClipQAGenerator:
    def __init__(self, settings: QAServiceSettings, endpoint: ChatEndpoint | None = None) -> None:
        self.settings = settings
        self.endpoint = None
        self.llm = None
        unknown = [slug for slug in settings.qa_categories if slug not in CATEGORY_BY_SLUG]
        if unknown:
            raise ValueError(f"unknown QA categories {unknown}; known: {', '.join(CATEGORY_BY_SLUG)}")
        self._categories = [CATEGORY_BY_SLUG[slug] for slug in settings.qa_categories]
        if settings.qa_backend == QABackend.llm:
            self.endpoint = endpoint or ChatEndpoint(settings)
            self.llm = LlmQABackend(settings, self.endpoint)
        self.backend = templates.BACKEND if self.llm is None else f"{BACKEND_LLM}:{settings.mllm_model}"
        for slug in settings.qa_categories:  # from zero, so rate() sees each category's first items
            metrics.QA_ITEMS.labels(slug, self.backend)

    def close(self) -> None:
        if self.endpoint is not None:
            self.endpoint.close()

    def generate(self, caption: events_pb2.Caption, per_category: int = 0) -> tuple[events_pb2.QASet, list[str]]:
        """The QA set of a judge-passed caption, and the items the validator dropped (LLM backend)."""
        clip_id = caption.span.clip_id
        if not clip_id or not caption.subjects:
            raise CaptionNotUsableError(clip_id, "a caption with a clip id and subjects is needed")
        per_category = per_category or self.settings.qa_per_category
        if self.llm is None:
            items = templates.generate_items(
                caption, seed=self.settings.qa_seed, per_category=per_category, categories=self._categories
            )
            dropped: list[str] = []
        else:
            items, dropped = self.llm.generate(caption, per_category)
        for item in items:
            metrics.QA_ITEMS.labels(category_slug(item.category), self.backend).inc()
        qa = events_pb2.QASet(
            video_id=caption.video_id,
            span=caption.span,
            items=items,
            backend=self.backend,
            produced_at=now_timestamp(),
            caption=caption,
            storage_uri=caption.storage_uri,
        )
        log.info("clip %s: %d QA items (%s), %d dropped", clip_id, len(items), self.backend, len(dropped))
        return qa, dropped


def make_handler(generator: ClipQAGenerator) -> Handler:
    def process(caption: events_pb2.Caption) -> list[Output]:
        if not caption.judgement.passed:
            return []  # failed captions stay on their topic for inspection; no QA rests on them
        qa, _ = generator.generate(caption)
        return [Output(topics.QA, caption.video_id, qa)]

    return stage_handler(STAGE, process)


class QAGeneratorServicer(qagen_pb2_grpc.QAGeneratorServiceServicer):
    def __init__(self, generator: ClipQAGenerator) -> None:
        self._generator = generator

    @maps_errors
    def Generate(  # the name is fixed by the generated servicer
        self, request: qagen_pb2.GenerateRequest, context: grpc.ServicerContext
    ) -> qagen_pb2.GenerateResponse:
        if not request.caption.judgement.passed:
            raise PreconditionError("the caption did not pass the judge")
        qa, dropped = self._generator.generate(request.caption, request.per_category)
        return qagen_pb2.GenerateResponse(qa=qa, dropped=dropped)
