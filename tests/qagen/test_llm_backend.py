"""The LLM QA backend against the real local OpenAI-compatible server (llama-cpp-python serving
SmolLM2-135M): the request carries the caption and the per-category schema, the answer is parsed, and
only items the validator accepts are kept; the rest are dropped with their reasons."""

from __future__ import annotations

import pytest
from prometheus_client import REGISTRY

from haic_tools.local_llm import LocalLlmServer
from services.core.qa_checks.validator import validate_item
from services.core.settings import MllmResponseFormat, QABackend
from services.qagen.llm_backend import items_schema
from services.qagen.service import ClipQAGenerator
from tests.llm_helpers import recorded_endpoint
from tests.qagen import two_people_caption
from tests.qagen.test_service import judged


def test_the_schema_names_the_categories_and_bounds_the_items() -> None:
    schema = items_schema(["count", "attribute"], max_items=4)
    item = schema["$defs"]["ItemOut"]
    assert item["properties"]["category"]["enum"] == ["count", "attribute"]
    assert item["properties"]["options"]["minItems"] == item["properties"]["options"]["maxItems"] == 4
    assert schema["properties"]["items"]["maxItems"] == 4


@pytest.mark.llm
def test_items_from_a_real_llm_go_through_the_validator(local_llm: LocalLlmServer, make_settings) -> None:
    settings = make_settings(
        qa_backend=QABackend.llm,
        mllm_base_url=local_llm.base_url,
        mllm_model=local_llm.model,
        mllm_response_format=MllmResponseFormat.json_object,
        mllm_temperature=0.0,
        mllm_retries=0,
        qa_per_category=1,
        qa_categories=["count", "attribute"],  # SmolLM2 fills every list to its bound: two items
        qa_llm_max_tokens=600,
    )
    endpoint, recorded = recorded_endpoint(settings)
    bodies = recorded.bodies
    generator = ClipQAGenerator(settings, endpoint)
    caption = judged(two_people_caption())
    dropped_before = sum(
        s.value
        for m in REGISTRY.collect()
        if m.name == "haic_qa_items_dropped"
        for s in m.samples
        if "llm" in s.labels.values()
    )
    try:
        qa, dropped = generator.generate(caption)
    finally:
        generator.close()

    assert len(bodies) >= 1
    body = bodies[0]
    assert body["response_format"]["type"] == "json_object"
    assert "the woman in the green dress" in body["messages"][1]["content"]
    assert "How many times does {subject} {action}?" in body["messages"][0]["content"]
    assert qa.backend == f"llm:{local_llm.model}"
    for item in qa.items:  # whatever a 135M model writes, only validated items are kept
        assert validate_item(item, caption).ok, item
    assert len(qa.items) + len(dropped) >= 1  # it proposed something (or said why nothing parsed)
    dropped_after = sum(
        s.value
        for m in REGISTRY.collect()
        if m.name == "haic_qa_items_dropped"
        for s in m.samples
        if "llm" in s.labels.values()
    )
    assert dropped_after - dropped_before >= len(dropped)
