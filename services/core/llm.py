"""The client of OpenAI-compatible chat-completions endpoints, shared by every stage that asks a model:
the MLLM captioner, its LLM judge score, the LLM QA generator and the answerers scored by `haic eval`.

Also the frame helpers those requests are built from: a clip's frames sampled at the centres of equal
slices, and each frame as an image content part (a JPEG data URL) after a text part with its time.
"""

from __future__ import annotations

import base64
import logging
import threading
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import cv2
import httpx
import numpy as np
import openai

from haic.v1 import events_pb2
from services.core import metrics
from services.core.bus import ClipPoisonError, DependencyUnavailableError
from services.core.settings import LlmSettings, MllmResponseFormat
from services.core.video import VideoInfo, VideoReader

log = logging.getLogger(__name__)


class MllmUnavailableError(DependencyUnavailableError):
    """The endpoint is unreachable, overloaded or refuses our credentials after the client's retries: the
    clip is fine, so it waits uncommitted until the endpoint is back."""


class MllmRequestRejectedError(ClipPoisonError):
    """The endpoint rejects this clip's request (400/413/422, e.g. too many image tokens): retrying the same
    request cannot help, so the clip goes to the dead-letter topic with the reason."""

    def __init__(self, clip_id: str, message: str) -> None:
        super().__init__(clip_id, f"MLLM rejected the request: {message}")


class ChatEndpoint:
    """One OpenAI-compatible chat-completions endpoint, shared by the MLLM captioner and the LLM judge score:
    timeouts and retries with backoff (the OpenAI client's), a per-process concurrency limit, metrics, and
    the mapping of failures to "wait" (unavailable) or "dead-letter" (rejected)."""

    def __init__(self, settings: LlmSettings, http_client: httpx.Client | None = None) -> None:
        """`http_client` lets a caller add transport settings (proxies, event hooks); the default is the
        OpenAI client's own."""
        self.settings = settings
        self.model = settings.mllm_model
        self._client = openai.OpenAI(
            base_url=settings.mllm_base_url,
            # The client insists on a key; servers without authentication ignore it.
            api_key=settings.mllm_api_key.get_secret_value() or "none",
            timeout=settings.mllm_timeout_s,
            max_retries=settings.mllm_retries,
            # openai 3 takes a legacy httpx.Client too (checked at run time); its annotation names only httpx2
            http_client=http_client,  # type: ignore[arg-type]
        )
        self._slots = threading.BoundedSemaphore(settings.mllm_concurrency)

    def close(self) -> None:
        self._client.close()

    def response_format(self, name: str, schema: dict[str, Any]) -> dict[str, Any] | None:
        match self.settings.mllm_response_format:
            case MllmResponseFormat.json_schema:
                return {"type": "json_schema", "json_schema": {"name": name, "schema": schema, "strict": True}}
            case MllmResponseFormat.json_object:
                return {"type": "json_object", "schema": schema}
        return None

    def complete(
        self,
        clip_id: str,
        messages: list[dict[str, Any]],
        schema_name: str,
        schema: dict[str, Any] | None,
        max_tokens: int,
    ) -> str:
        """The answer's text ("" when the endpoint gave no choice); `schema` None asks for free text."""
        extra: dict[str, Any] = {}
        response_format = self.response_format(schema_name, schema) if schema is not None else None
        if response_format is not None:
            extra["response_format"] = response_format
        started = time.perf_counter()
        with self._slots:
            metrics.MLLM_IN_FLIGHT.labels(self.model).inc()
            try:
                response = self._client.chat.completions.create(
                    model=self.model,
                    messages=messages,  # type: ignore[arg-type]  # plain dicts in the API's shape
                    max_tokens=max_tokens,
                    temperature=self.settings.mllm_temperature,
                    **extra,
                )
            except (openai.APIConnectionError, openai.RateLimitError, openai.InternalServerError) as exc:
                metrics.MLLM_REQUESTS.labels(self.model, "unavailable").inc()
                raise MllmUnavailableError(f"clip {clip_id}: MLLM endpoint unavailable: {exc}") from exc
            except (openai.AuthenticationError, openai.PermissionDeniedError, openai.NotFoundError) as exc:
                # A wrong key, URL or model name: a configuration fault, not the clip's.
                metrics.MLLM_REQUESTS.labels(self.model, "unavailable").inc()
                raise MllmUnavailableError(f"clip {clip_id}: MLLM endpoint refuses us: {exc}") from exc
            except openai.APIStatusError as exc:
                metrics.MLLM_REQUESTS.labels(self.model, "rejected").inc()
                raise MllmRequestRejectedError(clip_id, str(exc)) from exc
            finally:
                metrics.MLLM_IN_FLIGHT.labels(self.model).dec()
        metrics.MLLM_REQUEST_SECONDS.labels(self.model).observe(time.perf_counter() - started)
        metrics.MLLM_REQUESTS.labels(self.model, "answered").inc()
        if response.usage is not None:
            metrics.MLLM_TOKENS.labels(self.model, "prompt").inc(response.usage.prompt_tokens)
            metrics.MLLM_TOKENS.labels(self.model, "completion").inc(response.usage.completion_tokens)
        choice = response.choices[0] if response.choices else None
        if choice is None:
            return ""
        if choice.finish_reason == "length":
            log.warning("clip %s: the MLLM's answer was cut at %d tokens", clip_id, max_tokens)
        return choice.message.content or ""


# --- frames as request parts ---


def clip_frames(clip: events_pb2.ClipVerdict, video: Path, count: int, width: int) -> list[tuple[float, np.ndarray]]:
    """`count` frames at the centres of equal slices of the clip, RGB, `width` pixels wide."""
    start, end = clip.span.start_s, clip.span.end_s
    times = [start + (end - start) * (i + 0.5) / count for i in range(count)]
    # Without the probe the event carried (e.g. a QA set's clip), the reader probes the file itself.
    info = VideoInfo.from_proto(clip.info) if clip.info.fps > 0 else None
    with VideoReader(video, info) as reader:
        return list(reader.frames_at(times, width=width))


def frame_parts(clip: events_pb2.ClipVerdict, frames: Sequence[tuple[float, np.ndarray]]) -> list[dict[str, Any]]:
    """Each frame as an image content part after a text part with its time."""
    parts: list[dict[str, Any]] = []
    for t, rgb in frames:
        parts.append({"type": "text", "text": f"Frame at {t - clip.span.start_s:.1f} s:"})
        parts.append({"type": "image_url", "image_url": {"url": jpeg_data_url(rgb)}})
    return parts


def jpeg_data_url(rgb: np.ndarray, quality: int = 85) -> str:
    ok, encoded = cv2.imencode(".jpg", cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, quality])
    if not ok:
        raise ValueError("JPEG encoding failed")
    return "data:image/jpeg;base64," + base64.b64encode(encoded.tobytes()).decode("ascii")
