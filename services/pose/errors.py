"""Typed errors of the pose stage; each carries the clip it concerns."""

from __future__ import annotations

from services.core.bus import ClipPoisonError, PoisonMessageError


class InvalidClipEventError(ClipPoisonError):
    """The ClipCandidate lacks what the pose stage needs (ids, span, storage URI, video info)."""


class ClipUnreadableError(PoisonMessageError):
    """The clip's video is missing from the store or does not decode; retrying cannot help."""

    NOT_FOUND = "not_found"

    def __init__(self, clip_id: str, code: str, message: str) -> None:
        super().__init__(f"clip {clip_id}: {code}: {message}")
        self.clip_id = clip_id
        self.code = code

    @property
    def not_found(self) -> bool:
        return self.code == self.NOT_FOUND
