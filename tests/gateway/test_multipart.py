"""Streaming multipart parsing: the file part is spooled and hashed chunk by chunk, limits abort early."""

from __future__ import annotations

import asyncio
import hashlib
from pathlib import Path

import pytest
from starlette.requests import Request

from services.core.storage import LocalStorage
from services.gateway.errors import UploadRejectedError
from services.gateway.upload import FORM_OVERHEAD_BYTES, MultipartSpooler, Uploader, stored_extension

BOUNDARY = "testboundary7MA4YWxkTrZu0gW"


def multipart_body(parts: list[tuple[str, str | None, bytes]]) -> bytes:
    """A multipart/form-data body; each part is (field name, file name or None, content)."""
    out = bytearray()
    for name, filename, content in parts:
        disposition = f'form-data; name="{name}"' + (f'; filename="{filename}"' if filename else "")
        out += f"--{BOUNDARY}\r\nContent-Disposition: {disposition}\r\n".encode()
        if filename:
            out += b"Content-Type: application/octet-stream\r\n"
        out += b"\r\n" + content + b"\r\n"
    out += f"--{BOUNDARY}--\r\n".encode()
    return bytes(out)


def chunks(data: bytes, size: int) -> list[bytes]:
    return [data[i : i + size] for i in range(0, len(data), size)]


@pytest.mark.parametrize("chunk_size", [1, 7, 4096, 1 << 20])
def test_file_part_is_spooled_and_hashed_whatever_the_chunking(tmp_path: Path, chunk_size: int) -> None:
    content = bytes(range(256)) * 300 + b"\r\n--not-the-boundary\r\n" + b"tail"
    body = multipart_body(
        [("description", None, b"a man juggles"), ("file", "clip.mp4", content), ("other", None, b"ignored")]
    )
    spooler = MultipartSpooler(BOUNDARY.encode(), tmp_path, max_file_bytes=len(content))
    for chunk in chunks(body, chunk_size):
        spooler.write(chunk)
    upload = spooler.finish()
    assert upload.path is not None and upload.path.parent == tmp_path
    assert upload.path.read_bytes() == content
    assert upload.sha256 == hashlib.sha256(content).hexdigest()
    assert upload.size_bytes == len(content)
    assert upload.fields == {"description": "a man juggles"}
    upload.discard()
    assert list(tmp_path.iterdir()) == []


def test_client_file_name_is_never_a_path(tmp_path: Path) -> None:
    spool = tmp_path / "spool"
    spool.mkdir()
    body = multipart_body([("file", "../../etc/passwd", b"data")])
    spooler = MultipartSpooler(BOUNDARY.encode(), spool, max_file_bytes=100)
    spooler.write(body)
    upload = spooler.finish()
    assert upload.path is not None and upload.path.parent == spool
    assert "passwd" not in upload.path.name
    assert not (tmp_path / "etc").exists()
    upload.discard()


def test_limit_aborts_as_soon_as_the_file_exceeds_it(tmp_path: Path) -> None:
    body = multipart_body([("file", "big.mp4", b"x" * 10_000)])
    spooler = MultipartSpooler(BOUNDARY.encode(), tmp_path, max_file_bytes=1000)
    fed = 0
    with pytest.raises(UploadRejectedError) as raised:
        for chunk in chunks(body, 100):
            spooler.write(chunk)
            fed += len(chunk)
    assert raised.value.status_code == 413 and raised.value.code == "too_large"
    assert fed < 1300  # stopped within the chunk that crossed the limit, not at the end of the body
    spooler.discard()
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize(
    ("body", "status", "code"),
    [
        (multipart_body([("file", "a", b"1"), ("file", "b", b"2")]), 422, "multiple_files"),
        (multipart_body([("file", "a", b"123")])[:-10], 400, "malformed_multipart"),
        (multipart_body([("description", None, b"\xff\xfe")]), 422, "invalid_field"),
        (multipart_body([("description", None, b"d" * 20_000)]), 413, "field_too_large"),
    ],
)
def test_malformed_forms_are_rejected(tmp_path: Path, body: bytes, status: int, code: str) -> None:
    spooler = MultipartSpooler(BOUNDARY.encode(), tmp_path, max_file_bytes=100_000)
    with pytest.raises(UploadRejectedError) as raised:
        spooler.write(body)
        spooler.finish()
    spooler.discard()
    assert (raised.value.status_code, raised.value.code) == (status, code)
    assert list(tmp_path.iterdir()) == []


def test_uploader_stops_reading_the_request_at_the_limit(tmp_path: Path) -> None:
    """Through a real ASGI receive channel without Content-Length: the rest of the body is never pulled."""
    store = LocalStorage(tmp_path / "store")
    limit = 50_000
    body = multipart_body([("file", "big.mp4", b"v" * 1_000_000)])
    pieces = chunks(body, 16_384)
    pulled = 0

    async def receive() -> dict:
        nonlocal pulled
        pulled += 1
        return {"type": "http.request", "body": pieces[pulled - 1], "more_body": pulled < len(pieces)}

    scope = {
        "type": "http",
        "method": "POST",
        "path": "/v1/videos",
        "headers": [(b"content-type", f"multipart/form-data; boundary={BOUNDARY}".encode())],
    }
    uploader = Uploader(store, catalog=None, producer=None, max_upload_bytes=limit)  # type: ignore[arg-type]
    with pytest.raises(UploadRejectedError) as raised:
        asyncio.run(uploader.receive(Request(scope, receive)))
    assert raised.value.status_code == 413
    assert pulled <= (limit + FORM_OVERHEAD_BYTES) // 16_384 + 2
    assert pulled < len(pieces)
    assert list(store.spool_dir().iterdir()) == []


def test_declared_content_length_over_the_limit_is_refused_before_reading(tmp_path: Path) -> None:
    async def receive() -> dict:
        raise AssertionError("the body must not be read")

    scope = {
        "type": "http",
        "method": "POST",
        "path": "/v1/videos",
        "headers": [
            (b"content-type", f"multipart/form-data; boundary={BOUNDARY}".encode()),
            (b"content-length", str(10_000_000).encode()),
        ],
    }
    uploader = Uploader(LocalStorage(tmp_path), catalog=None, producer=None, max_upload_bytes=1000)  # type: ignore[arg-type]
    with pytest.raises(UploadRejectedError) as raised:
        asyncio.run(uploader.receive(Request(scope, receive)))
    assert (raised.value.status_code, raised.value.code) == (413, "too_large")


@pytest.mark.parametrize(
    ("container", "extension"),
    [("mov,mp4,m4a,3gp,3g2,mj2", ".mp4"), ("avi", ".avi"), ("matroska,webm", ".mkv"), ("asf", ".asf"), ("", ".video")],
)
def test_stored_extension_comes_from_the_probed_container(container: str, extension: str) -> None:
    assert stored_extension(container) == extension
