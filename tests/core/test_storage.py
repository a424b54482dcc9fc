"""Core's video storage: a local directory and an S3-compatible store (a real moto server)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import boto3
import pytest

from services.core.settings import Settings
from services.core.storage import LocalStorage, ObjectNotFoundError, S3Storage, StorageError, open_storage


def test_local_storage_round_trip(tmp_path: Path) -> None:
    store = LocalStorage(tmp_path / "store")
    spooled = store.spool_dir() / "upload.part"
    spooled.write_bytes(b"video bytes")
    uri = store.put_file(spooled, "videos/vid_1/source.mp4")
    assert not spooled.exists()  # moved, not copied
    assert uri == (tmp_path / "store" / "videos" / "vid_1" / "source.mp4").as_uri()
    assert store.exists("videos/vid_1/source.mp4") and not store.exists("videos/vid_2/source.mp4")
    with store.local_path(uri) as path:
        assert path.read_bytes() == b"video bytes"
    with pytest.raises(StorageError, match="escapes"):
        store.put_file(spooled, "../outside.mp4")
    with pytest.raises(StorageError), store.local_path((tmp_path / "elsewhere.mp4").as_uri()):
        pass


def test_s3_storage_round_trip(s3_endpoint: str, tmp_path: Path) -> None:
    store = S3Storage("videos", "/haic/", s3_endpoint, tmp_path / "cache")
    spooled = store.spool_dir() / "upload.part"
    spooled.write_bytes(b"\x00\x01video" * 1000)
    uri = store.put_file(spooled, "videos/vid_1/source.mp4")
    assert uri == "s3://videos/haic/videos/vid_1/source.mp4"
    assert not spooled.exists()
    assert store.exists("videos/vid_1/source.mp4") and not store.exists("videos/vid_2/source.mp4")
    stored = boto3.client("s3", endpoint_url=s3_endpoint).get_object(
        Bucket="videos", Key="haic/videos/vid_1/source.mp4"
    )
    assert stored["Body"].read() == b"\x00\x01video" * 1000
    with store.local_path(uri) as path:
        assert path.read_bytes() == b"\x00\x01video" * 1000
        assert path.is_relative_to(tmp_path / "cache")
    assert not path.exists()  # the downloaded copy is removed after the block
    with pytest.raises(StorageError, match="bucket"), store.local_path("s3://other-bucket/x.mp4"):
        pass


def test_open_storage_picks_the_store_from_the_url(
    s3_endpoint: str, make_settings: Callable[..., Settings], tmp_path: Path
) -> None:
    assert isinstance(open_storage(make_settings()), LocalStorage)
    assert isinstance(open_storage(make_settings(storage_url=f"file://{tmp_path}/v")), LocalStorage)
    s3 = open_storage(make_settings(storage_url="s3://videos/prefix", s3_endpoint_url=s3_endpoint))
    assert isinstance(s3, S3Storage) and s3.uri("k") == "s3://videos/prefix/k"
    with pytest.raises(StorageError, match="unsupported"):
        open_storage(make_settings(storage_url="ftp://host/dir"))


def test_a_missing_object_is_object_not_found_in_either_store(s3_endpoint: str, tmp_path: Path) -> None:
    s3 = S3Storage("videos", "haic", s3_endpoint, tmp_path / "cache")
    with pytest.raises(ObjectNotFoundError), s3.local_path("s3://videos/haic/videos/none/source.mp4"):
        pass
    local = LocalStorage(tmp_path / "store")
    with pytest.raises(ObjectNotFoundError), local.local_path((tmp_path / "store" / "none.mp4").as_uri()):
        pass
