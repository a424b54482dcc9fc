"""Typed errors of the filter stage; each carries the id of the video it concerns."""

from __future__ import annotations

from services.core.bus import PoisonMessageError


class InvalidVideoEventError(PoisonMessageError):
    """The VideoUploaded event lacks what the filter needs (video id, storage URI)."""

    def __init__(self, video_id: str, message: str) -> None:
        super().__init__(f"video {video_id or '<no id>'}: {message}")
        self.video_id = video_id


class VideoUnreadableError(PoisonMessageError):
    """The stored video is missing or cannot be decoded; retrying cannot help, so the bus dead-letters it.

    `code` is "not_found" when the store has no such object, otherwise the probe's code (not_a_video,
    truncated, undecodable, ...) or "decode_failed" when decoding broke after a successful probe.
    """

    NOT_FOUND = "not_found"

    def __init__(self, video_id: str, code: str, message: str) -> None:
        super().__init__(f"video {video_id}: {code}: {message}")
        self.video_id = video_id
        self.code = code

    @property
    def not_found(self) -> bool:
        return self.code == self.NOT_FOUND
