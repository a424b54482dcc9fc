"""The MLLM captioner (production): a multimodal model behind any OpenAI-compatible chat-completions
endpoint (vLLM serving Qwen2.5-VL, Gemini's compatible endpoint, GPT-4o).

One request per clip: sampled frames as JPEG images, the video's description as context, instructions
for HAIC's format (paper section 1, figure 1), and the pose evidence as grounding: the tracked people,
their garment colours and their motion facts from the pose-grounded captioner. The answer is
constrained by a JSON schema built for the clip (one subject per tracked person, track ids from the
tracks) and parsed into the Caption message. Each action the model states keeps as evidence the
pose-grounded fact it overlaps on the same body part, if any.

Transport: timeouts, retries with exponential backoff on timeouts, 429 and 5xx (the OpenAI client's),
a per-process concurrency limit, and token metrics. Output that does not parse is asked for again, up
to `mllm_output_attempts` requests; then the caption is judged failed (``malformed_output``) and kept
with the raw answer for inspection.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from pydantic import BaseModel, Field, ValidationError

from haic.v1 import events_pb2
from services.captioner import pose_grounded
from services.core import metrics
from services.core.bus import now_timestamp
from services.core.llm import ChatEndpoint, clip_frames, frame_parts
from services.core.settings import CaptionerServiceSettings

log = logging.getLogger(__name__)

BACKEND_PREFIX = "mllm"

SYSTEM_PROMPT = """\
You caption human actions in video clips for a training dataset, in the HAIC format.
Describe every person listed under "Tracked people", one subject per person, with that person's track_id,
in the order given. Tell people apart by their attributes (gender and age group only when clearly visible,
clothing items with colours, accessories), never only by number or position: each subject's label is a
short distinguishing phrase such as "the man in the red shirt".
For each subject list the body actions in time order, each with start_s and end_s in seconds from the
start of the clip, a verb phrase ("raises his right arm"), the body part, the direction (left, right,
towards the camera, away from the camera) and the repetition count when the action repeats, and the
target person or object when there is one. List interactions between subjects (approaching, moving apart,
touching, facing each other, following) with both subjects' labels.
Write "text" in this format:
"The main character is a man. The first subject is a man wearing ... Initially, he ..., then ..., finally ..."
(with several people: "The main characters are two people." and "The second subject is ...").
Use the motion facts measured from the pose as grounding: do not state an action for a person whose facts
say they stay still, keep repetition counts consistent with the measured ones, and state only what you can
see in the frames. Take gender and age group from what the face gave ("from the face"); where it says not
clear, leave them empty unless the frames show them plainly. Answer with JSON only."""


# --- the answer's schema, as pydantic models (parsing) and as the JSON schema sent with the request ---


# List bounds keep a looping model from running to max_tokens inside one list; they are above what a HAIC
# caption holds. Action and interaction lists are bounded per request (mllm_max_events). String lengths
# are not bounded: grammar engines unroll maxLength into rules too deep to compile.
_ITEMS = 6  # garments or accessories of one person


class GarmentOut(BaseModel):
    item: str
    color: str


class ActionOut(BaseModel):
    start_s: float
    end_s: float
    verb_phrase: str
    body_part: str = ""
    direction: str = ""
    repetitions: int = Field(0, ge=0)
    target: str = ""


class SubjectOut(BaseModel):
    track_id: int
    label: str
    gender: str = ""
    age_group: str = ""
    clothing: list[GarmentOut] = Field([], max_length=_ITEMS)
    accessories: list[str] = Field([], max_length=_ITEMS)
    actions: list[ActionOut] = []


class InteractionOut(BaseModel):
    start_s: float
    end_s: float
    kind: str
    subject_label: str
    object_label: str


class CaptionOut(BaseModel):
    subjects: list[SubjectOut]
    interactions: list[InteractionOut] = []
    text: str


def answer_schema(track_ids: Sequence[int], max_events: int) -> dict[str, Any]:
    """CaptionOut's JSON schema narrowed to this clip: exactly one subject per track, ids from the tracks,
    at most `max_events` actions per subject and interactions in the clip."""
    schema = CaptionOut.model_json_schema()
    subject = schema["$defs"]["SubjectOut"]
    subject["properties"]["track_id"] = {"type": "integer", "enum": list(track_ids)}
    subject["properties"]["actions"]["maxItems"] = max_events
    schema["properties"]["interactions"]["maxItems"] = max_events
    subjects = schema["properties"]["subjects"]
    subjects["minItems"] = subjects["maxItems"] = len(track_ids)
    for definition in [schema, *schema["$defs"].values()]:
        # Strict structured output (OpenAI, vLLM) wants every property required and no extra ones.
        definition["required"] = list(definition["properties"])
        definition["additionalProperties"] = False
    return schema


@dataclass(frozen=True)
class MllmAnswer:
    caption: events_pb2.Caption
    grounding: events_pb2.Caption  # the pose-grounded caption the request was grounded on
    frames: list[tuple[float, np.ndarray]]  # the frames sent, for the judge's LLM score to reuse
    malformed: bool  # no attempt parsed: the caption holds the last raw answer and no subjects
    errors: tuple[str, ...] = ()


# --- the backend ---


class MllmCaptioner:
    def __init__(self, settings: CaptionerServiceSettings, endpoint: ChatEndpoint | None = None) -> None:
        self.settings = settings
        self.endpoint = endpoint or ChatEndpoint(settings)
        self.model = self.endpoint.model
        self.backend = f"{BACKEND_PREFIX}:{self.model}"

    def caption_clip(self, clip: events_pb2.ClipVerdict, video: Path) -> MllmAnswer:
        """Grounds on the pose-grounded caption of the same clip, then asks the model."""
        grounding = pose_grounded.caption_clip(clip, video, self.settings.appearance_frames, self.settings)
        frames = clip_frames(clip, video, self.settings.mllm_frames, self.settings.mllm_frame_width)
        tracks = list(clip.dense_tracks) or list(clip.tracks)
        messages = build_messages(clip, grounding, frames, self.settings.mllm_frame_width)
        schema = answer_schema([t.track_id for t in tracks], self.settings.mllm_max_events)
        errors: list[str] = []
        raw = ""
        for attempt in range(1, self.settings.mllm_output_attempts + 1):
            raw = self.endpoint.complete(
                clip.span.clip_id, messages, "haic_caption", schema, self.settings.mllm_max_tokens
            )
            try:
                answer = CaptionOut.model_validate_json(raw)
            except ValidationError as exc:
                error = f"attempt {attempt}: {_short(exc)}"
                errors.append(error)
                metrics.MLLM_MALFORMED.labels(self.model).inc()
                log.warning("clip %s: MLLM answer does not parse (%s)", clip.span.clip_id, error)
                continue
            return MllmAnswer(to_caption(answer, clip, grounding, self.backend), grounding, frames, malformed=False)
        failed = events_pb2.Caption(
            video_id=clip.video_id,
            span=clip.span,
            text=raw,
            backend=self.backend,
            storage_uri=clip.storage_uri,
            produced_at=now_timestamp(),
        )
        return MllmAnswer(failed, grounding, frames, malformed=True, errors=tuple(errors))


# --- request and answer mapping ---


def evidence_lines(clip: events_pb2.ClipVerdict, grounding: events_pb2.Caption) -> list[str]:
    """The description and the pose evidence as prompt lines, times from the clip's start."""
    start = clip.span.start_s
    duration = clip.span.end_s - start
    lines = [
        f"Video description: {clip.description or '(none)'}",
        f"Clip length: {duration:.1f} s. Times below are seconds from the start of the clip.",
        f"Tracked people: {len(grounding.subjects)}",
    ]
    for subject in grounding.subjects:
        lines.append(f"- track_id {subject.track_id}: {subject.label}")
        face = ", ".join(v for v in (subject.attributes.gender, subject.attributes.age_group) if v)
        lines.append(f"  from the face: {face}" if face else "  from the face: gender and age group not clear")
        if not subject.actions:
            lines.append("  motion facts: stays still (no action measured)")
        for action in subject.actions:
            count = f", {action.repetitions} times" if action.repetitions else ""
            when = f"{action.start_s - start:.1f}-{action.end_s - start:.1f} s"
            lines.append(f"  motion fact: {action.verb_phrase} ({when}{count})")
    for interaction in grounding.interactions:
        lines.append(
            f"- interaction: {interaction.subject_label} {interaction.kind} {interaction.object_label} "
            f"({interaction.start_s - start:.1f}-{interaction.end_s - start:.1f} s)"
        )
    return lines


def build_messages(
    clip: events_pb2.ClipVerdict,
    grounding: events_pb2.Caption,
    frames: Sequence[tuple[float, np.ndarray]],
    frame_width: int,
) -> list[dict[str, Any]]:
    lines = evidence_lines(clip, grounding)
    lines.append(f"Frames follow ({len(frames)}, {frame_width} px wide), each after its time.")
    content = [{"type": "text", "text": "\n".join(lines)}, *frame_parts(clip, frames)]
    return [{"role": "system", "content": SYSTEM_PROMPT}, {"role": "user", "content": content}]


def to_caption(
    answer: CaptionOut, clip: events_pb2.ClipVerdict, grounding: events_pb2.Caption, backend: str
) -> events_pb2.Caption:
    """The model's answer as a Caption: times made absolute and clamped to the clip, actions sorted, and
    each action's evidence taken from the overlapping pose-grounded fact on the same body part."""
    start, end = clip.span.start_s, clip.span.end_s
    facts = {s.track_id: list(s.actions) for s in grounding.subjects}

    def absolute(t: float) -> float:
        return min(end, max(start, start + t))

    subjects = []
    for subject in answer.subjects:
        actions = []
        for action in sorted(subject.actions, key=lambda a: a.start_s):
            a0, a1 = absolute(action.start_s), absolute(action.end_s)
            fact = _overlapping_fact(a0, a1, action.body_part, facts.get(subject.track_id, []))
            evidence = events_pb2.Evidence(start_s=a0, end_s=a1)
            if fact is not None:
                evidence.CopyFrom(fact.evidence)
            actions.append(
                events_pb2.Action(
                    start_s=a0,
                    end_s=a1,
                    verb_phrase=action.verb_phrase,
                    body_part=action.body_part,
                    direction=action.direction,
                    repetitions=action.repetitions,
                    target=action.target,
                    evidence=evidence,
                )
            )
        subjects.append(
            events_pb2.Subject(
                track_id=subject.track_id,
                label=subject.label,
                attributes=events_pb2.SubjectAttributes(
                    gender=subject.gender,
                    age_group=subject.age_group,
                    clothing=[events_pb2.Garment(item=g.item, color=g.color) for g in subject.clothing],
                    accessories=subject.accessories,
                ),
                actions=actions,
            )
        )
    interactions = [
        events_pb2.Interaction(
            start_s=absolute(i.start_s),
            end_s=absolute(i.end_s),
            kind=i.kind,
            subject_label=i.subject_label,
            object_label=i.object_label,
            evidence=events_pb2.Evidence(start_s=absolute(i.start_s), end_s=absolute(i.end_s)),
        )
        for i in answer.interactions
    ]
    return events_pb2.Caption(
        video_id=clip.video_id,
        span=clip.span,
        subjects=subjects,
        interactions=interactions,
        text=answer.text.strip(),
        backend=backend,
        storage_uri=clip.storage_uri,
        produced_at=now_timestamp(),
    )


def _overlapping_fact(
    start_s: float, end_s: float, body_part: str, facts: Sequence[events_pb2.Action]
) -> events_pb2.Action | None:
    best, best_overlap = None, 0.0
    for fact in facts:
        if body_part and fact.body_part and fact.body_part != body_part:
            continue
        overlap = min(fact.end_s, end_s) - max(fact.start_s, start_s)
        if overlap > best_overlap:
            best, best_overlap = fact, overlap
    return best


def _short(exc: ValidationError) -> str:
    errors = exc.errors()
    if not errors:
        return "0 errors"
    return f"{exc.error_count()} error(s), first: {errors[0]['type']} at {errors[0]['loc']}"
