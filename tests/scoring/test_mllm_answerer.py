"""The `mllm` answerer against the real local OpenAI-compatible server (llama-cpp-python serving
SmolLM2-135M) in both HAIC settings: caption + question (told to refuse), and frames + question."""

from __future__ import annotations

import json

import pytest

from haic.v1 import events_pb2
from haic_tools.local_llm import LocalLlmServer
from services.captioner import pose_grounded
from services.core.settings import CaptionerServiceSettings, load
from services.core.storage import LocalStorage
from services.qagen.templates import generate_qa_set
from services.scoring.evaluate import CAPTION_SETTING, STANDARD_SETTING, evaluate
from services.scoring.service import Answerers
from tests.captioner.record_fixture import FIXTURE, SAMPLE
from tests.llm_helpers import recorded_endpoint
from tests.qagen.test_service import judged


@pytest.fixture(scope="module")
def juggler_qa() -> events_pb2.QASet:
    clip = events_pb2.ClipVerdict.FromString(FIXTURE.read_bytes())
    caption = judged(pose_grounded.caption_clip(clip, SAMPLE, 3, load(CaptionerServiceSettings)))
    qa = generate_qa_set(caption, seed=0, per_category=1)
    qa.caption.CopyFrom(caption)
    qa.storage_uri = SAMPLE.as_uri()
    return qa


@pytest.mark.llm
@pytest.mark.parametrize("setting", [CAPTION_SETTING, STANDARD_SETTING])
def test_a_real_model_answers_every_item_in_both_settings(
    local_llm: LocalLlmServer, make_settings, juggler_qa: events_pb2.QASet, setting: str
) -> None:
    settings = make_settings(
        mllm_base_url=local_llm.base_url,
        mllm_model=local_llm.model,
        mllm_frames=2,
        mllm_frame_width=64,
        mllm_temperature=0.0,
        mllm_retries=0,
        scoring_bootstrap_samples=200,
    )
    endpoint, recorded = recorded_endpoint(settings)
    bodies = recorded.bodies
    answerers = Answerers(settings, LocalStorage(SAMPLE.parent), endpoint)
    try:
        answerer = answerers.build("mllm", [juggler_qa], setting)
        result = evaluate(answerer, [juggler_qa], settings.scoring_bootstrap_samples)
    finally:
        endpoint.close()

    assert result.answerer == f"mllm:{local_llm.model}" and result.setting == setting
    assert len(bodies) == result.items == len(juggler_qa.items)
    correct = sum(result.correct.values())
    assert correct + result.refused + result.unparsed <= result.items  # every reply scored, none twice
    first = bodies[0]["messages"][0]["content"]
    if setting == CAPTION_SETTING:
        assert juggler_qa.caption.text in first and "Cannot be determined" in first
    else:
        assert sum(part["type"] == "image_url" for part in first) == 2
        assert juggler_qa.caption.text not in json.dumps(first)  # the standard setting sees frames, not the caption
    assert "response_format" not in bodies[0]  # free text, read as lmms-eval does
