"""Typed errors of the pose stage; each carries the clip it concerns."""

from __future__ import annotations

from services.core.bus import ClipPoisonError


class InvalidClipEventError(ClipPoisonError):
    """The ClipCandidate lacks what the pose stage needs (ids, span, storage URI, video info)."""
