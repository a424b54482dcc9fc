"""Typed errors of the filter stage; each carries the id of the video it concerns."""

from __future__ import annotations

from services.core.bus import PoisonMessageError


class InvalidVideoEventError(PoisonMessageError):
    """The VideoUploaded event lacks what the filter needs (video id, storage URI)."""

    def __init__(self, video_id: str, message: str) -> None:
        super().__init__(f"video {video_id or '<no id>'}: {message}")
        self.video_id = video_id
