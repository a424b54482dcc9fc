"""JSON logs that carry the video_id and clip_id of the message being processed."""

from __future__ import annotations

import contextlib
import contextvars
import logging
import sys
from collections.abc import Iterator

from pythonjsonlogger.json import JsonFormatter

_video_id: contextvars.ContextVar[str] = contextvars.ContextVar("video_id", default="")
_clip_id: contextvars.ContextVar[str] = contextvars.ContextVar("clip_id", default="")


class _ContextFilter(logging.Filter):
    def __init__(self, service: str) -> None:
        super().__init__()
        self.service = service

    def filter(self, record: logging.LogRecord) -> bool:
        record.service = self.service
        record.video_id = getattr(record, "video_id", None) or _video_id.get()
        record.clip_id = getattr(record, "clip_id", None) or _clip_id.get()
        return True


def configure_logging(service: str, level: str = "INFO") -> None:
    """Every record becomes one JSON line on stderr with service, video_id and clip_id."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(
        JsonFormatter(
            "%(asctime)s %(levelname)s %(name)s %(message)s %(service)s %(video_id)s %(clip_id)s",
            rename_fields={"asctime": "ts", "levelname": "level", "name": "logger"},
        )
    )
    handler.addFilter(_ContextFilter(service))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    # kafka-python logs every connection step at INFO.
    logging.getLogger("kafka").setLevel(logging.WARNING)


@contextlib.contextmanager
def log_context(video_id: str = "", clip_id: str = "") -> Iterator[None]:
    """Tags every log record inside the block with the ids."""
    tokens = [_video_id.set(video_id), _clip_id.set(clip_id)]
    try:
        yield
    finally:
        _clip_id.reset(tokens[1])
        _video_id.reset(tokens[0])
