"""The review desk's clip video (issue 15): GET /v1/review/clips/{clip_id}/video on a real gateway, for the sample
clip the real stages made (tests/gateway/review_data.py): one H.264 cut of the clip's span, cut once however many
ask at once, served with range requests; typed errors for a clip that is unknown, whose source is gone, or whose
span holds no frame. And the frame size the overlay relies on: the cut shows the frames the pose stage decoded,
also for a source with a rotation in its container.
"""

from __future__ import annotations

import struct
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import av
import pytest
from fastapi.testclient import TestClient

from services.core.bus import EventProducer, Output
from services.core.clip_cut import cut_clip
from services.core.settings import Settings
from services.core.storage import open_storage
from services.core.video import VideoReader, frame_time
from services.gateway.auth import SESSION_COOKIE
from services.gateway.clip_video import CLIPS_DIR
from tests.kafka_helpers import wait_until

from .conftest import AUTH, candidate, running_gateway, span
from .review_data import SAMPLE, ReviewableClip, publish, reviewable_clip

pytestmark = pytest.mark.kafka

REVIEWER_KEY = "alice-video-key"


@pytest.fixture
def video_settings(gateway_settings: Settings) -> Settings:
    return gateway_settings.model_copy(update={"reviewers": [f"alice:{REVIEWER_KEY}"]})


@pytest.fixture
def published(video_settings: Settings, producer: EventProducer) -> Iterator[tuple[TestClient, ReviewableClip]]:
    clip = reviewable_clip(video_settings)
    with running_gateway(video_settings) as client:
        publish(producer, clip)
        wait_until(lambda: client.get(f"/v1/clips/{clip.clip_id}", headers=AUTH).status_code == 200, what="the clip")
        yield client, clip


def _frames_in_span(source: Path, start_s: float, end_s: float) -> int:
    """The source frames shown in [start_s, end_s): each frame belongs to the span its half-frame-late time is in."""
    with av.open(str(source)) as container:
        stream = container.streams.video[0]
        half = 0.5 / float(stream.average_rate)
        return sum(1 for frame in container.decode(stream) if start_s <= frame_time(frame, stream) + half < end_s)


def test_the_cut_is_served_once_with_ranges(published: tuple[TestClient, ReviewableClip], tmp_path: Path) -> None:
    client, clip = published
    url = f"/v1/review/clips/{clip.clip_id}/video"
    assert client.get(url).status_code == 401

    # two first requests at once: both wait for one cut
    with ThreadPoolExecutor(2) as pool:
        first, second = pool.map(lambda _: client.get(url, headers=AUTH), range(2))
    assert first.status_code == second.status_code == 200, first.text
    assert first.content == second.content and first.headers["etag"] == second.headers["etag"]
    full = first.content
    assert first.headers["content-type"] == "video/mp4"
    assert first.headers["accept-ranges"] == "bytes" and first.headers["cache-control"].startswith("private")
    assert int(first.headers["content-length"]) == len(full)
    assert full[4:8] == b"ftyp" and full.find(b"moov") < full.find(b"mdat")  # faststart: the index first
    cached = list((Path(client.app.state.settings.data_dir) / CLIPS_DIR).glob("*.mp4"))  # type: ignore[attr-defined]
    assert [p.name for p in cached] == [f"{clip.clip_id}.mp4"]

    # a decodable H.264 of the span's frames, at the source's frame size (the pose stage's pixels)
    (tmp_path / "cut.mp4").write_bytes(full)
    with av.open(str(tmp_path / "cut.mp4")) as container:
        stream = container.streams.video[0]
        assert stream.codec_context.name == "h264"
        decoded = list(container.decode(stream))
    span_ = clip.verdict.span
    assert len(decoded) == _frames_in_span(SAMPLE, span_.start_s, span_.end_s) == clip.verdict.info.frame_count
    assert (decoded[0].width, decoded[0].height) == (clip.verdict.info.width, clip.verdict.info.height)
    assert frame_time(decoded[0], stream) == 0.0  # the page maps t = currentTime + start_s

    size = len(full)
    ranged = client.get(url, headers={**AUTH, "Range": "bytes=100-1099"})
    assert ranged.status_code == 206 and ranged.content == full[100:1100]
    assert ranged.headers["content-range"] == f"bytes 100-1099/{size}"
    assert ranged.headers["etag"] == first.headers["etag"]
    tail = client.get(url, headers={**AUTH, "Range": "bytes=-500"})
    assert tail.status_code == 206 and tail.content == full[-500:]
    open_ended = client.get(url, headers={**AUTH, "Range": f"bytes={size - 10}-"})
    assert open_ended.status_code == 206 and open_ended.content == full[-10:]
    outside = client.get(url, headers={**AUTH, "Range": f"bytes={size}-{size + 10}"})
    assert outside.status_code == 416 and outside.headers["content-range"] == f"bytes */{size}"
    # If-Range with the current ETag honours the range; a stale one gets the whole file
    assert client.get(url, headers={**AUTH, "Range": "bytes=0-9", "If-Range": first.headers["etag"]}).status_code == 206
    stale = client.get(url, headers={**AUTH, "Range": "bytes=0-9", "If-Range": '"stale"'})
    assert stale.status_code == 200 and stale.content == full

    # the desk's cookie plays it too (a GET: no CSRF token needed), as a reviewer key does
    signed_in = client.post("/desk/session", json={"key": REVIEWER_KEY})
    assert signed_in.status_code == 200
    assert client.get(url).content == full
    client.cookies.delete(SESSION_COOKIE)
    assert client.get(url, headers={"Authorization": f"Bearer {REVIEWER_KEY}"}).content == full


def test_typed_errors(published: tuple[TestClient, ReviewableClip], video_settings: Settings) -> None:
    client, clip = published
    unknown = client.get("/v1/review/clips/clip_0000000000000000/video", headers=AUTH)
    assert unknown.status_code == 404 and unknown.json()["detail"]["code"] == "clip_not_found"
    assert client.get("/v1/review/clips/bad%00id/video", headers=AUTH).status_code == 422

    # a clip whose span lies past the end of its video: nothing to cut
    past_end = span(clip.video_id, 1, 2, 100.0, 106.0)
    message = candidate(clip.video_id, past_end).message
    message.storage_uri = clip.uploaded.storage_uri  # type: ignore[attr-defined]
    producer = EventProducer(video_settings, "test")
    try:
        producer.deliver([Output(candidate(clip.video_id, past_end).topic, clip.video_id, message)])
    finally:
        producer.close()
    wait_until(lambda: client.get(f"/v1/clips/{past_end.clip_id}", headers=AUTH).status_code == 200, what="clip")
    uncuttable = client.get(f"/v1/review/clips/{past_end.clip_id}/video", headers=AUTH)
    assert uncuttable.status_code == 422 and uncuttable.json()["detail"]["code"] == "clip_uncuttable"

    # the stored video is gone before the clip was ever cut
    with open_storage(video_settings).local_path(clip.uploaded.storage_uri) as source:
        source.unlink()
    missing = client.get(f"/v1/review/clips/{clip.clip_id}/video", headers=AUTH)
    assert missing.status_code == 409 and missing.json()["detail"]["code"] == "source_missing"
    assert missing.json()["detail"]["video_id"] == clip.video_id


def _rotate_90(source: Path, target: Path) -> None:
    """A copy of the MP4 whose video track's matrix (tkhd) says: display rotated by 90 degrees, as a phone
    held upright writes it. The coded frames are untouched."""
    data = bytearray(source.read_bytes())
    at = data.find(b"tkhd")
    assert at > 0
    version = data[at + 4]
    matrix = at + 4 + 4 + (32 if version == 1 else 20) + 8 + 8  # version/flags, times/ids/duration, reserved, ...
    data[matrix : matrix + 36] = struct.pack(">9i", 0, 65536, 0, -65536, 0, 0, 0, 0, 1 << 30)
    target.write_bytes(bytes(data))


def test_a_rotated_source_is_cut_as_the_pose_stage_sees_it(tmp_path: Path) -> None:
    rotated = tmp_path / "rotated.mp4"
    _rotate_90(SAMPLE, rotated)
    with av.open(str(rotated)) as container:
        stream = container.streams.video[0]
        frame = next(container.decode(stream))
        # the container says rotate, PyAV decodes the coded frames as they are
        assert frame.rotation in (90, -90, 270) and (frame.width, frame.height) == (1280, 720)
    reader = VideoReader(rotated)
    try:
        (_, pixels), *_ = reader.frames_at([1.0])
        assert (reader.info.width, reader.info.height) == (1280, 720) and pixels.shape[:2] == (720, 1280)
    finally:
        reader.close()
    cut = tmp_path / "cut.mp4"
    cut_clip(rotated, 0.0, 1.0, cut)
    with av.open(str(cut)) as container:
        frame = next(container.decode(container.streams.video[0]))
        # no display matrix in the cut: a browser shows the frames as the pose stage saw them
        assert (frame.width, frame.height) == (1280, 720) and frame.rotation == 0
