"""The LLM QA backend: an OpenAI-compatible LLM (the HAIC_MLLM_* endpoint) writes multiple-choice items
from the structured caption, with HAIC-style instructions and a JSON-schema answer; the same validator
as the templates' decides which items are kept.

The instructions give the question wordings the validator can check against the caption
(`QuestionForm`): an item in another wording can only be checked for format, so it is kept only with
the validator's ``unverified`` warning, and an item whose answer the caption does not support, or with
a second true option, is dropped with its reason.
"""

from __future__ import annotations

import json
import logging
from typing import Any

from google.protobuf.json_format import MessageToDict
from pydantic import BaseModel, Field, ValidationError

from haic.v1 import events_pb2
from services.core import metrics
from services.core.contracts import CATEGORY_BY_SLUG
from services.core.llm import ChatEndpoint
from services.core.qa_checks.oracle import QuestionForm
from services.core.qa_checks.validator import Severity, rebalance_positions, validate_item
from services.core.settings import QAServiceSettings
from services.qagen.templates import caption_key

log = logging.getLogger(__name__)

BACKEND = "llm"

SYSTEM_PROMPT = """\
You write multiple-choice questions about the people in a video clip, for a benchmark of human action
understanding (HAIC). You are given the clip's structured caption as JSON: each subject with a label
(how the person is named), clothing, and actions in time order; interactions between subjects.
Write questions in these categories: {categories}.
Rules:
- Name people only by their label from the caption, never by number.
- Sequence questions ask what a person does immediately after or just before an action.
- Count questions begin "How many times".
- Exactly 4 options, exactly one correct according to the caption, each option at most 15 words.
- Distractors must be plausible and hard: the confusable action (left for right, raise for lower),
  the count plus or minus one, another person's clothing, another event of the same clip.
- The correct option must not stand out by length or by repeating the question's words.
- List the caption facts (sentences) each question rests on.
Use these question wordings, filling the braces from the caption:
{forms}
Answer with JSON only."""


class ItemOut(BaseModel):
    category: str
    question: str
    options: list[str] = Field(min_length=4, max_length=4)
    answer_index: int = Field(ge=0, le=3)
    facts: list[str] = []


class ItemsOut(BaseModel):
    items: list[ItemOut]


def items_schema(categories: list[str], max_items: int) -> dict[str, Any]:
    schema = ItemsOut.model_json_schema()
    item = schema["$defs"]["ItemOut"]
    item["properties"]["category"] = {"type": "string", "enum": categories}
    item["properties"]["options"]["items"] = {"type": "string"}
    schema["properties"]["items"]["minItems"] = 1  # an empty list would be valid JSON and say nothing
    schema["properties"]["items"]["maxItems"] = max_items
    for definition in [schema, *schema["$defs"].values()]:
        definition["required"] = list(definition["properties"])
        definition["additionalProperties"] = False
    return schema


def build_messages(caption: events_pb2.Caption, categories: list[str]) -> list[dict[str, Any]]:
    structure = MessageToDict(caption, preserving_proto_field_name=True)
    for key in ("judgement", "storage_uri", "produced_at", "backend"):
        structure.pop(key, None)
    system = SYSTEM_PROMPT.format(
        categories=", ".join(categories), forms="\n".join(f"- {form.value}" for form in QuestionForm)
    )
    user = "Structured caption:\n" + json.dumps(structure, indent=1, sort_keys=True)
    return [{"role": "system", "content": system}, {"role": "user", "content": user}]


class LlmQABackend:
    def __init__(self, settings: QAServiceSettings, endpoint: ChatEndpoint) -> None:
        self.settings = settings
        self.endpoint = endpoint

    def generate(self, caption: events_pb2.Caption, per_category: int) -> tuple[list[events_pb2.QAItem], list[str]]:
        """The validated items (answer positions rebalanced) and the dropped ones as "reason: question"."""
        slugs = [slug for slug in self.settings.qa_categories if slug in CATEGORY_BY_SLUG]
        messages = build_messages(caption, slugs)
        schema = items_schema(slugs, per_category * len(slugs))
        clip_id = caption.span.clip_id
        answer: ItemsOut | None = None
        for attempt in range(1, self.settings.mllm_output_attempts + 1):
            raw = self.endpoint.complete(clip_id, messages, "haic_qa", schema, self.settings.qa_llm_max_tokens)
            try:
                answer = ItemsOut.model_validate_json(raw)
                break
            except ValidationError as exc:
                metrics.MLLM_MALFORMED.labels(self.endpoint.model).inc()
                log.warning("clip %s: LLM QA answer %d does not parse: %s", clip_id, attempt, exc.error_count())
        if answer is None:
            metrics.QA_ITEMS_DROPPED.labels(BACKEND, "malformed_output").inc()
            return [], ["malformed_output: the LLM's answer never parsed"]
        kept: list[events_pb2.QAItem] = []
        dropped: list[str] = []
        per_slug: dict[str, int] = {}
        for proposed in answer.items:
            index = per_slug.get(proposed.category, 0)
            if index >= per_category:
                continue
            item = events_pb2.QAItem(
                item_id=f"{caption_key(caption)}-llm-{proposed.category}-{index}",
                category=CATEGORY_BY_SLUG[proposed.category],  # type: ignore[arg-type]
                question=proposed.question.strip(),
                options=[o.strip() for o in proposed.options],
                answer_index=proposed.answer_index,
                facts=proposed.facts,
            )
            report = validate_item(item, caption)
            if not report.ok:
                reasons = sorted({f.issue.value for f in report.findings if f.severity is Severity.ERROR})
                for reason in reasons:
                    metrics.QA_ITEMS_DROPPED.labels(BACKEND, reason).inc()
                dropped.append(f"{','.join(reasons)}: {item.question}")
                continue
            per_slug[proposed.category] = index + 1
            kept.append(item)
        return rebalance_positions(kept, seed=f"{self.settings.qa_seed}:{caption_key(caption)}"), dropped
