"""Deterministic ids: a redelivered message yields the same ids, so consumers upsert idempotently."""

from __future__ import annotations

import hashlib


def video_id_from_sha256(sha256_hex: str) -> str:
    """The video id is derived from the content hash: identical uploads share one id."""
    return f"vid_{sha256_hex[:24]}"


def clip_id(video_id: str, start_s: float, end_s: float) -> str:
    """The clip id is derived from the video id and the time range in milliseconds."""
    start_ms, end_ms = round(start_s * 1000), round(end_s * 1000)
    digest = hashlib.sha256(f"{video_id}:{start_ms}:{end_ms}".encode()).hexdigest()[:16]
    return f"clip_{digest}"
