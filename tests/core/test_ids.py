"""Deterministic ids: the same content or the same time range gives the same id, on every delivery."""

from __future__ import annotations

import hashlib

from services.core.ids import clip_id, video_id_from_sha256


def test_a_video_id_is_its_content_hash_prefix() -> None:
    digest = hashlib.sha256(b"video bytes").hexdigest()
    assert video_id_from_sha256(digest) == f"vid_{digest[:24]}"


def test_a_clip_id_depends_on_the_video_and_the_range_in_milliseconds() -> None:
    first = clip_id("vid_a", 1.0, 6.0)
    assert first.startswith("clip_") and len(first) == len("clip_") + 16
    assert clip_id("vid_a", 1.0004, 5.9996) == first  # the same milliseconds after rounding
    assert len({first, clip_id("vid_b", 1.0, 6.0), clip_id("vid_a", 1.0, 6.5), clip_id("vid_a", 1.5, 6.0)}) == 4
