"""Registration by reference: the gateway reads an allowed directory, bucket or URL itself, and nothing else.

Real servers throughout: the Apache Kafka broker, an S3-compatible HTTP server (moto), and a local HTTP
server for URLs (which only a configured private network lets the gateway reach).
"""

from __future__ import annotations

import http.server
import shutil
import threading
from collections.abc import Callable, Iterator
from pathlib import Path

import boto3
import pytest
from fastapi.testclient import TestClient

from services.core.broker import EmbeddedBroker
from services.core.settings import Settings

from .conftest import API_KEY, AUTH, running_gateway

pytestmark = pytest.mark.kafka

CLIP = "juggle_one_person.mp4"


class _VideoHandler(http.server.SimpleHTTPRequestHandler):
    """Serves a folder; /moved/<x> redirects to the absolute URL in the server's `redirects`."""

    redirects: dict[str, str] = {}

    def do_GET(self) -> None:
        target = self.redirects.get(self.path)
        if target is not None:
            self.send_response(302)
            self.send_header("Location", target)
            self.end_headers()
            return
        super().do_GET()

    def log_message(self, *_args: object) -> None:
        pass


@pytest.fixture
def video_server(tmp_path: Path, shared_videos: Path) -> Iterator[tuple[str, dict[str, str]]]:
    served = tmp_path / "served"
    (served / "videos").mkdir(parents=True)
    shutil.copy(shared_videos / CLIP, served / "videos" / CLIP)
    redirects: dict[str, str] = {}
    handler = type("Handler", (_VideoHandler,), {"redirects": redirects})

    def make(*args: object, **kwargs: object) -> _VideoHandler:
        return handler(*args, directory=str(served), **kwargs)  # type: ignore[arg-type]

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), make)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}", redirects
    server.shutdown()
    server.server_close()
    thread.join()


@pytest.fixture
def roots(tmp_path: Path, shared_videos: Path) -> dict[str, Path]:
    allowed = tmp_path / "allowed"
    (allowed / "sub").mkdir(parents=True)
    outside = tmp_path / "outside"
    outside.mkdir()
    shutil.copy(shared_videos / CLIP, allowed / "sub" / CLIP)
    shutil.copy(shared_videos / CLIP, outside / CLIP)
    (allowed / "notes.txt").write_text("not a video\n")
    (allowed / "escape.mp4").symlink_to(outside / CLIP)
    return {"allowed": allowed, "outside": outside}


def _register(client: TestClient, uri: str, **fields: str):
    return client.post("/v1/videos/by-reference", json={"uri": uri, **fields}, headers=AUTH)


def _settings(make_settings: Callable[..., Settings], broker: EmbeddedBroker, **overrides: object) -> Settings:
    return make_settings(
        kafka_bootstrap_servers=broker.bootstrap_servers,
        api_keys=[API_KEY],
        catalog_final_stage="filter",
        **overrides,
    )


def test_a_local_reference_inside_an_allowed_root_is_copied_probed_and_announced(
    broker: EmbeddedBroker, make_settings: Callable[..., Settings], roots: dict[str, Path]
) -> None:
    settings = _settings(make_settings, broker, reference_roots=[str(roots["allowed"])])
    reference = roots["allowed"] / "sub" / CLIP
    with running_gateway(settings) as client:
        first = _register(client, str(reference), description="A man juggles", external_id="row-1", batch="b1")
        assert first.status_code == 202, first.text
        video_id = first.json()["video_id"]
        assert reference.exists()  # copied, not moved: the caller's file stays where it was
        video = client.get(f"/v1/videos/{video_id}", headers=AUTH).json()
        assert video["info"]["width"] > 0 and video["description"] == "A man juggles"

        # A known external id is answered without reading the reference again: it may even be gone.
        reference.unlink()
        again = _register(client, str(reference), external_id="row-1", batch="b2")
        assert again.status_code == 200 and again.json() == {**first.json(), "duplicate": True, "status": "uploaded"}
        # The same content under another id is a duplicate by content hash.
        by_content = _register(client, (roots["allowed"] / "sub" / CLIP).as_uri(), external_id="row-2")
        assert by_content.status_code == 422 and by_content.json()["detail"]["code"] == "reference_not_found"
        shutil.copy(roots["outside"] / CLIP, reference)
        by_content = _register(client, reference.as_uri(), external_id="row-2", batch="b2")
        assert by_content.status_code == 200 and by_content.json()["video_id"] == video_id

        # Both batches took the video: each batch's report counts it once.
        for batch in ("b1", "b2"):
            report = client.get("/v1/report", params={"batch": batch}, headers=AUTH).json()
            assert report["videos_in"] == 1 and report["batch"] == batch
        assert client.get("/v1/report", params={"batch": "nothing"}, headers=AUTH).json()["videos_in"] == 0


def test_references_outside_the_roots_are_refused_with_403(
    broker: EmbeddedBroker, make_settings: Callable[..., Settings], roots: dict[str, Path]
) -> None:
    settings = _settings(make_settings, broker, reference_roots=[str(roots["allowed"])])
    allowed, outside = roots["allowed"], roots["outside"]
    with running_gateway(settings) as client:
        for uri in (
            str(outside / CLIP),
            f"{allowed}/../outside/{CLIP}",  # `..` resolved before the check
            str(allowed / "escape.mp4"),  # a symlink out of the root
            "/etc/passwd",
            "s3://videos/clip.mp4",  # no bucket allowed
            "https://example.com/clip.mp4",  # URLs not allowed by these roots
        ):
            response = _register(client, uri)
            assert response.status_code == 403, (uri, response.text)
            assert response.json()["detail"]["code"] == "reference_not_allowed"
        assert _register(client, "ftp://example.com/a.mp4").status_code == 422
        assert _register(client, "relative/path.mp4").status_code == 422
        missing = _register(client, str(allowed / "sub" / "missing.mp4"))
        assert missing.status_code == 422 and missing.json()["detail"]["code"] == "reference_not_found"
        text = _register(client, str(allowed / "notes.txt"))
        assert text.status_code == 415 and text.json()["detail"]["code"] == "not_a_video"
        assert client.get("/v1/videos", headers=AUTH).json()["total"] == 0
        assert not list((Path(settings.resolved_storage_url) / ".incoming").iterdir())  # no copy left behind


def test_urls_to_private_addresses_are_refused_before_any_request(
    broker: EmbeddedBroker, make_settings: Callable[..., Settings], video_server: tuple[str, dict[str, str]]
) -> None:
    base, _ = video_server
    port = base.rsplit(":", 1)[1]
    with running_gateway(_settings(make_settings, broker)) as client:  # default roots: every http(s) URL
        for uri in (
            f"{base}/videos/{CLIP}",
            f"http://localhost:{port}/videos/{CLIP}",
            f"http://[::1]:{port}/videos/{CLIP}",
            f"http://[::ffff:127.0.0.1]:{port}/videos/{CLIP}",
            "http://169.254.169.254/latest/meta-data/",  # the cloud metadata service
            "http://10.0.0.1/clip.mp4",
            "http://192.168.1.1/clip.mp4",
            "http://0.0.0.0/clip.mp4",
        ):
            response = _register(client, uri)
            assert response.status_code == 403, (uri, response.text)
            assert response.json()["detail"]["code"] == "private_address"
        unresolvable = _register(client, "https://no-such-host.invalid/clip.mp4")
        assert unresolvable.status_code == 502 and unresolvable.json()["detail"]["code"] == "reference_unreachable"


def test_a_url_under_an_allowed_prefix_is_fetched_and_redirects_are_checked(
    broker: EmbeddedBroker, make_settings: Callable[..., Settings], video_server: tuple[str, dict[str, str]]
) -> None:
    base, redirects = video_server
    settings = _settings(
        make_settings,
        broker,
        reference_roots=[f"{base}/videos/"],
        reference_private_networks=["127.0.0.0/8"],  # the test's own server is on loopback
    )
    redirects["/videos/moved.mp4"] = f"{base}/private/secret.mp4"
    redirects["/videos/moved-ok.mp4"] = f"{base}/videos/{CLIP}"
    with running_gateway(settings) as client:
        fetched = _register(client, f"{base}/videos/{CLIP}", description="A man juggles a football")
        assert fetched.status_code == 202, fetched.text
        video = client.get(f"/v1/videos/{fetched.json()['video_id']}", headers=AUTH).json()
        assert video["source_url"] == f"{base}/videos/{CLIP}"
        escaped = _register(client, f"{base}/videos/moved.mp4")
        assert escaped.status_code == 403 and escaped.json()["detail"]["code"] == "reference_not_allowed"
        followed = _register(client, f"{base}/videos/moved-ok.mp4")
        assert followed.status_code == 200 and followed.json()["video_id"] == fetched.json()["video_id"]
        missing = _register(client, f"{base}/videos/missing.mp4")
        assert missing.status_code == 422 and missing.json()["detail"]["code"] == "reference_not_found"


def test_an_s3_reference_in_an_allowed_bucket_is_copied(
    broker: EmbeddedBroker, make_settings: Callable[..., Settings], s3_endpoint: str, shared_videos: Path
) -> None:
    s3 = boto3.client("s3", endpoint_url=s3_endpoint)
    s3.create_bucket(Bucket="raw")
    s3.upload_file(str(shared_videos / CLIP), "raw", f"webvid/{CLIP}")
    s3.upload_file(str(shared_videos / CLIP), "raw", f"private/{CLIP}")
    settings = _settings(make_settings, broker, reference_roots=["s3://raw/webvid"], s3_endpoint_url=s3_endpoint)
    with running_gateway(settings) as client:
        taken = _register(client, f"s3://raw/webvid/{CLIP}")
        assert taken.status_code == 202, taken.text
        for uri in (f"s3://raw/private/{CLIP}", f"s3://raw/webvid-other/{CLIP}", f"s3://videos/webvid/{CLIP}"):
            refused = _register(client, uri)
            assert refused.status_code == 403 and refused.json()["detail"]["code"] == "reference_not_allowed"
        missing = _register(client, "s3://raw/webvid/missing.mp4")
        assert missing.status_code == 422 and missing.json()["detail"]["code"] == "reference_not_found"
