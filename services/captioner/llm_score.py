"""The judge's optional LLM score (HAIC section 3.2 has an MLLM judge the captions): the caption, the
clip's frames and its pose evidence go to the OpenAI-compatible endpoint, which rates the caption from
1 (wrong or unsupported) to 5 (accurate and complete). The score joins the rule judge's verdict: below
`HAIC_JUDGE_LLM_MIN_SCORE` the caption fails with ``llm_score_below_minimum``; an answer that never
parses fails it with ``llm_score_malformed`` (the score was asked for and could not be had).
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import numpy as np
from pydantic import BaseModel, Field, ValidationError

from haic.v1 import events_pb2
from services.captioner.mllm import evidence_lines
from services.core.llm import ChatEndpoint, clip_frames, frame_parts
from services.core.settings import CaptionerServiceSettings

log = logging.getLogger(__name__)

LLM_SCORE = "llm_score"
BELOW_MINIMUM = "llm_score_below_minimum"
MALFORMED = "llm_score_malformed"
_MAX_TOKENS = 200  # a score and one sentence

SYSTEM_PROMPT = """\
You judge captions of human actions in video clips. Check the caption against the frames and the motion
facts measured from the people's poses: is every tracked person described and told apart by attributes,
are their actions, directions, counts and order right, and is anything stated that the frames and facts do
not support? Rate the caption from 1 (wrong or unsupported) to 5 (accurate and complete), with one sentence
of reason. Answer with JSON only."""


class ScoreOut(BaseModel):
    score: int = Field(ge=1, le=5)
    reason: str


SCHEMA = {
    "type": "object",
    "properties": {"score": {"type": "integer", "enum": [1, 2, 3, 4, 5]}, "reason": {"type": "string"}},
    "required": ["score", "reason"],
    "additionalProperties": False,
}


def score_caption(
    endpoint: ChatEndpoint,
    settings: CaptionerServiceSettings,
    clip: events_pb2.ClipVerdict,
    video: Path,
    caption: events_pb2.Caption,
    grounding: events_pb2.Caption,
    judgement: events_pb2.Judgement,
    frames: list[tuple[float, np.ndarray]] | None = None,
) -> None:
    """Adds the score (and a failing reason when there is one) to `judgement`. `frames`: the clip's
    frames when the caller decoded them already (the MLLM backend's), else they are decoded here."""
    lines = evidence_lines(clip, grounding)
    lines += ["", "Caption to judge:", caption.text or "(empty)"]
    if frames is None:
        frames = clip_frames(clip, video, settings.mllm_frames, settings.mllm_frame_width)
    content = [{"type": "text", "text": "\n".join(lines)}, *frame_parts(clip, frames)]
    messages: list[dict[str, Any]] = [
        {"role": "system", "content": SYSTEM_PROMPT},
        {"role": "user", "content": content},
    ]
    for attempt in range(1, settings.mllm_output_attempts + 1):
        raw = endpoint.complete(clip.span.clip_id, messages, "caption_score", SCHEMA, _MAX_TOKENS)
        try:
            answer = ScoreOut.model_validate_json(raw)
        except ValidationError as exc:
            log.warning("clip %s: LLM score attempt %d does not parse: %s", clip.span.clip_id, attempt, exc)
            continue
        judgement.scores[LLM_SCORE] = float(answer.score)
        if answer.score < settings.judge_llm_min_score:
            judgement.passed = False
            judgement.reasons.append(BELOW_MINIMUM)
            judgement.reasons.append(f"llm: {answer.reason.strip()[:300]}")
        return
    judgement.passed = False
    judgement.reasons.append(MALFORMED)
