"""Uploads through the real app and a real broker: accepted, rejected with a reason, deduplicated."""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import sqlalchemy
from fastapi.testclient import TestClient

from haic.v1 import events_pb2
from services.core import topics
from services.core.bus import OutputDeliveryError
from services.core.ids import video_id_from_sha256
from services.core.settings import Settings
from services.core.video import probe
from services.gateway.app import create_app
from services.gateway.catalog_schema import videos
from services.gateway.upload import UNANNOUNCED_GRACE_S
from tests.kafka_helpers import read_topic_to_end, wait_until

from .conftest import AUTH, running_gateway, upload

pytestmark = pytest.mark.kafka


def stored_files(settings: Settings) -> list[Path]:
    root = Path(settings.resolved_storage_url)
    return sorted(p for p in root.rglob("*") if p.is_file())


def test_good_upload_is_stored_catalogued_and_announced(
    gateway: TestClient, gateway_settings: Settings, shared_videos: Path
) -> None:
    source = shared_videos / "juggle_one_person.mp4"
    response = upload(gateway, source, description="a man juggles a football", source_url="https://example.org/juggle")
    assert response.status_code == 202, response.text
    body = response.json()
    video_id = body["video_id"]
    assert body == {
        "video_id": video_id,
        "status": "uploaded",
        "status_url": f"/v1/videos/{video_id}",
        "duplicate": False,
        "reannounced": False,
    }
    assert response.headers["Location"] == body["status_url"]

    stored = Path(gateway_settings.resolved_storage_url) / "videos" / video_id / "source.mp4"
    assert stored.read_bytes() == source.read_bytes()
    assert stored_files(gateway_settings) == [stored]  # the spool file was moved, not copied

    [(key, message)] = read_topic_to_end(gateway_settings, topics.VIDEOS)
    assert key == video_id
    assert isinstance(message, events_pb2.VideoUploaded)
    expected = probe(source)
    assert message.video_id == video_id
    assert message.storage_uri == stored.as_uri()
    assert message.size_bytes == source.stat().st_size
    assert message.description == "a man juggles a football"
    assert message.source_url == "https://example.org/juggle"
    assert message.info == expected.to_proto()
    assert message.uploaded_at.seconds > 0

    detail = gateway.get(body["status_url"], headers=AUTH).json()
    assert detail["sha256"] == message.sha256
    assert detail["info"] == {
        "width": 1280,
        "height": 720,
        "fps": 24.0,
        "duration_s": pytest.approx(10.2917, abs=1e-3),
        "frame_count": 247,
        "codec": "h264",
        "container": "mov,mp4,m4a,3gp,3g2,mj2",
    }
    assert (detail["status"], detail["settled"], detail["clips"], detail["rejection"]) == ("uploaded", False, [], None)


def test_avi_is_stored_with_its_container_extension(
    gateway: TestClient, gateway_settings: Settings, shared_videos: Path
) -> None:
    response = upload(gateway, shared_videos / "pedestrians_small_long.avi", name="video.mp4")
    assert response.status_code == 202, response.text
    video_id = response.json()["video_id"]
    assert (Path(gateway_settings.resolved_storage_url) / "videos" / video_id / "source.avi").is_file()


@pytest.mark.parametrize(
    ("make_file", "status", "code"),
    [
        (lambda videos, tmp: _write(tmp / "notes.mp4", b"these are notes, not a video\n" * 50), 415, "not_a_video"),
        (lambda videos, tmp: _write(tmp / "empty.mp4", b""), 422, "empty_file"),
        (
            lambda videos, tmp: _write(
                tmp / "half.mp4", (data := (videos / "juggle_one_person.mp4").read_bytes())[: len(data) // 2]
            ),
            422,
            "truncated",
        ),
    ],
    ids=["text", "empty", "truncated"],
)
def test_bad_uploads_are_rejected_with_a_reason_and_leave_nothing(
    gateway: TestClient,
    gateway_settings: Settings,
    shared_videos: Path,
    tmp_path: Path,
    make_file: Callable[[Path, Path], Path],
    status: int,
    code: str,
) -> None:
    response = upload(gateway, make_file(shared_videos, tmp_path))
    assert response.status_code == status, response.text
    detail = response.json()["detail"]
    assert detail["code"] == code
    assert detail["message"]
    assert detail["video_id"].startswith("vid_")
    assert stored_files(gateway_settings) == []  # temp file deleted, nothing stored
    assert read_topic_to_end(gateway_settings, topics.VIDEOS) == []
    assert gateway.get("/v1/videos", headers=AUTH).json()["total"] == 0
    metrics = gateway.get("/metrics").text
    assert f'haic_gateway_uploads_total{{outcome="{code}"}}' in metrics


def _write(path: Path, data: bytes) -> Path:
    path.write_bytes(data)
    return path


def test_missing_file_field_is_422(gateway: TestClient, gateway_settings: Settings) -> None:
    response = gateway.post(
        "/v1/videos", data={"description": "no file here"}, files={"other": ("x", b"1")}, headers=AUTH
    )
    assert response.status_code == 422
    assert response.json()["detail"]["code"] == "missing_file"
    assert "file" in response.json()["detail"]["message"]
    not_multipart = gateway.post("/v1/videos", json={"file": "x"}, headers=AUTH)
    assert (not_multipart.status_code, not_multipart.json()["detail"]["code"]) == (415, "not_multipart")
    assert read_topic_to_end(gateway_settings, topics.VIDEOS) == []


def test_invalid_source_url_is_422(gateway: TestClient, shared_videos: Path) -> None:
    response = upload(gateway, shared_videos / "static_no_person.mp4", source_url="file:///etc/passwd")
    assert (response.status_code, response.json()["detail"]["code"]) == (422, "invalid_source_url")


def test_oversize_upload_is_413(broker, make_settings: Callable[..., Settings], shared_videos: Path) -> None:
    settings = make_settings(kafka_bootstrap_servers=broker.bootstrap_servers, api_keys=["k"], max_upload_bytes=100_000)
    with running_gateway(settings) as client:
        headers = {"Authorization": "Bearer k"}
        with open(shared_videos / "juggle_one_person.mp4", "rb") as f:  # Content-Length says it all
            declared = client.post("/v1/videos", files={"file": ("v.mp4", f)}, headers=headers)
        assert (declared.status_code, declared.json()["detail"]["code"]) == (413, "too_large")

        # no Content-Length (chunked): the streaming parser stops at the limit
        data = (shared_videos / "juggle_one_person.mp4").read_bytes()
        boundary = "b0undary"
        body = (
            f'--{boundary}\r\nContent-Disposition: form-data; name="file"; filename="v.mp4"\r\n\r\n'.encode()
            + data
            + f"\r\n--{boundary}--\r\n".encode()
        )
        streamed = client.post(
            "/v1/videos",
            content=(body[i : i + 65536] for i in range(0, len(body), 65536)),
            headers={**headers, "Content-Type": f"multipart/form-data; boundary={boundary}"},
        )
        assert "content-length" not in {k.lower() for k in streamed.request.headers}
        assert (streamed.status_code, streamed.json()["detail"]["code"]) == (413, "too_large")
        assert stored_files(settings) == []
        assert list(Path(settings.resolved_storage_url, ".incoming").iterdir()) == []
        assert read_topic_to_end(settings, topics.VIDEOS) == []


def test_duplicate_upload_returns_the_same_video_without_re_emitting(
    gateway: TestClient, gateway_settings: Settings, shared_videos: Path
) -> None:
    source = shared_videos / "static_no_person.mp4"
    first = upload(gateway, source)
    assert first.status_code == 202
    video_id = first.json()["video_id"]
    second = upload(gateway, source, name="renamed.mp4", description="other description")
    assert second.status_code == 200
    assert second.json() == {
        "video_id": video_id,
        "status": "uploaded",
        "status_url": f"/v1/videos/{video_id}",
        "duplicate": True,
        "reannounced": False,  # heard of a moment ago: a second upload is no reason to announce it again
    }
    assert [key for key, _ in read_topic_to_end(gateway_settings, topics.VIDEOS)] == [video_id]
    # the first upload's (absent) description stays
    assert gateway.get(f"/v1/videos/{video_id}", headers=AUTH).json()["description"] is None
    assert len(list(Path(gateway_settings.resolved_storage_url).rglob("source.*"))) == 1


def test_client_file_name_is_never_used_as_a_path(
    gateway: TestClient, gateway_settings: Settings, shared_videos: Path, tmp_path: Path
) -> None:
    response = upload(gateway, shared_videos / "static_no_person.mp4", name="../../etc/passwd")
    assert response.status_code == 202
    video_id = response.json()["video_id"]
    root = Path(gateway_settings.resolved_storage_url)
    assert stored_files(gateway_settings) == [root / "videos" / video_id / "source.mp4"]
    assert not any("passwd" in str(p) for p in tmp_path.rglob("*"))
    [(_, message)] = read_topic_to_end(gateway_settings, topics.VIDEOS)
    assert "passwd" not in message.storage_uri


def test_readyz_once_the_catalog_consumer_has_its_partitions(gateway_settings: Settings, tmp_path: Path) -> None:
    with TestClient(create_app(gateway_settings)) as client:
        first = client.get("/readyz")  # right after start the group join (a few seconds) is still running
        if first.status_code == 503:
            assert "catalog consumer" in first.json()["detail"]["message"]
        wait_until(lambda: client.get("/readyz").status_code == 200, what="readiness")
        assert client.get("/readyz").json() == {"ready": True}
        assert client.get("/healthz").json() == {"status": "ok"}

        # an unreachable catalog database makes the gateway unready, with the reason
        runtime = client.app.state.runtime
        working_engine = runtime.catalog.engine
        runtime.catalog.engine = sqlalchemy.create_engine(f"sqlite:///{tmp_path}/missing/dir/catalog.db")
        try:
            unready = client.get("/readyz")
        finally:
            runtime.catalog.engine = working_engine
        assert unready.status_code == 503
        assert "catalog database unreachable" in unready.json()["detail"]["message"]
        assert client.get("/readyz").status_code == 200
    assert client.app.state.runtime is None  # the lifespan shutdown ran


def test_concurrent_identical_uploads_announce_once(
    gateway: TestClient, gateway_settings: Settings, shared_videos: Path
) -> None:
    source = shared_videos / "slideshow_three_stills.mp4"
    with ThreadPoolExecutor(max_workers=4) as pool:
        responses = list(pool.map(lambda _: upload(gateway, source), range(4)))
    assert sorted(r.status_code for r in responses) == [200, 200, 200, 202]
    assert len({r.json()["video_id"] for r in responses}) == 1
    assert len(read_topic_to_end(gateway_settings, topics.VIDEOS)) == 1


def test_upload_that_cannot_be_announced_is_503_and_can_be_retried(
    gateway: TestClient, gateway_settings: Settings, shared_videos: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    producer = gateway.app.state.runtime.producer

    def broker_down(outputs: object, timeout_s: float = 30.0) -> None:
        raise OutputDeliveryError("haic.videos.v1: broker unreachable")

    with monkeypatch.context() as patched:
        patched.setattr(producer, "deliver", broker_down)
        failed = upload(gateway, shared_videos / "static_no_person.mp4")
    assert failed.status_code == 503
    assert failed.json()["detail"]["code"] == "bus_unavailable"
    video_id = failed.json()["detail"]["video_id"]
    assert gateway.get(f"/v1/videos/{video_id}", headers=AUTH).status_code == 404  # registration undone
    retried = upload(gateway, shared_videos / "static_no_person.mp4")
    assert (retried.status_code, retried.json()["video_id"]) == (202, video_id)
    assert [key for key, _ in read_topic_to_end(gateway_settings, topics.VIDEOS)] == [video_id]


def test_registration_never_announced_is_announced_by_a_later_identical_upload(
    gateway: TestClient, gateway_settings: Settings, shared_videos: Path
) -> None:
    source = shared_videos / "test_card_no_person.mp4"
    sha256 = hashlib.sha256(source.read_bytes()).hexdigest()
    video_id = video_id_from_sha256(sha256)
    catalog = gateway.app.state.runtime.catalog
    # what a gateway that stopped between registering and announcing leaves behind
    assert catalog.register_upload(events_pb2.VideoUploaded(video_id=video_id, sha256=sha256, size_bytes=1))

    recent = upload(gateway, source)  # within the grace period: an announcement may still be on its way
    assert (recent.status_code, recent.json()["duplicate"]) == (200, True)
    assert read_topic_to_end(gateway_settings, topics.VIDEOS) == []

    with catalog.engine.begin() as conn:
        conn.execute(
            sqlalchemy.update(videos)
            .where(videos.c.video_id == video_id)
            .values(created_at=datetime.now(UTC) - timedelta(seconds=UNANNOUNCED_GRACE_S + 60))
        )
    late = upload(gateway, source)
    assert (late.status_code, late.json()["video_id"], late.json()["duplicate"]) == (202, video_id, False)
    [(key, message)] = read_topic_to_end(gateway_settings, topics.VIDEOS)
    assert (key, message.size_bytes, message.info.width) == (video_id, source.stat().st_size, 640)
    announced = wait_until(
        lambda: (body := gateway.get(f"/v1/videos/{video_id}", headers=AUTH).json())["size_bytes"] > 1 and body,
        what="the catalog to consume the announcement",
    )
    assert announced["info"]["width"] == 640
    again = upload(gateway, source)
    assert (again.status_code, again.json()["duplicate"]) == (200, True)
    assert len(read_topic_to_end(gateway_settings, topics.VIDEOS)) == 1
