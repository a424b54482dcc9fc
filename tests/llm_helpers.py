"""Test helpers around the real local OpenAI-compatible server: observing the requests that went out."""

from __future__ import annotations

import json

import httpx

from services.core.llm import ChatEndpoint
from services.core.settings import Settings


class RecordedRequests:
    """httpx request hook: the chat requests that really went out (observed, not mocked)."""

    def __init__(self) -> None:
        self.bodies: list[dict] = []

    def __call__(self, request: httpx.Request) -> None:
        if request.url.path.endswith("/chat/completions"):
            self.bodies.append(json.loads(request.read()))


def recorded_endpoint(settings: Settings) -> tuple[ChatEndpoint, RecordedRequests]:
    """The settings' endpoint with its chat requests recorded."""
    recorded = RecordedRequests()
    return ChatEndpoint(settings, http_client=httpx.Client(event_hooks={"request": [recorded]})), recorded
