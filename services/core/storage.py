"""Video storage behind one interface: a local directory by default, an S3-compatible store by URL.

Keys are chosen by the services (never from client file names). Readers get a local path, because
PyAV seeks far better in a local file than over HTTP; S3 objects are downloaded to a cache first.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Protocol
from urllib.parse import urlparse

from services.core.settings import StorageSettings


def file_sha256(path: Path) -> str:
    """The sha256 of a file's bytes, read in 1 MiB blocks."""
    digest = hashlib.sha256()
    with path.open("rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


class StorageError(RuntimeError):
    """A store operation failed or a URI does not belong to this store."""


class ObjectNotFoundError(StorageError):
    """The store has no object at that URI: retrying cannot help."""


# What S3-compatible stores answer for a missing object (HEAD gives 404, GET NoSuchKey).
_S3_MISSING_CODES = frozenset({"404", "NoSuchKey", "NotFound"})


class Storage(Protocol):
    def put_file(self, local_path: Path, key: str) -> str:
        """Moves or uploads a local file under key and returns its URI."""
        ...

    def exists(self, key: str) -> bool: ...

    def uri(self, key: str) -> str: ...

    def local_path(self, uri: str) -> contextlib.AbstractContextManager[Path]:
        """A readable local file for the URI, for the duration of the block."""
        ...

    def spool_dir(self) -> Path:
        """A directory for partial uploads on the same file system as the store when it is local."""
        ...


class LocalStorage:
    def __init__(self, root: Path) -> None:
        self.root = root.resolve()
        self.root.mkdir(parents=True, exist_ok=True)

    def _path(self, key: str) -> Path:
        path = (self.root / key).resolve()
        if not path.is_relative_to(self.root):
            raise StorageError(f"key {key!r} escapes the store")
        return path

    def uri(self, key: str) -> str:
        return self._path(key).as_uri()

    def put_file(self, local_path: Path, key: str) -> str:
        target = self._path(key)
        target.parent.mkdir(parents=True, exist_ok=True)
        os.replace(local_path, target)  # atomic on one file system: readers never see half a file
        return target.as_uri()

    def exists(self, key: str) -> bool:
        return self._path(key).is_file()

    @contextlib.contextmanager
    def local_path(self, uri: str) -> Iterator[Path]:
        parsed = urlparse(uri)
        if parsed.scheme != "file":
            raise StorageError(f"{uri!r} is not a file:// URI")
        path = Path(parsed.path).resolve()
        if not path.is_relative_to(self.root):
            raise StorageError(f"{uri!r} is outside the store {self.root}")
        if not path.is_file():
            raise ObjectNotFoundError(f"{uri!r} does not exist")
        yield path

    def spool_dir(self) -> Path:
        path = self.root / ".incoming"
        path.mkdir(parents=True, exist_ok=True)
        return path


class S3Storage:
    """Any S3-compatible store (AWS S3, MinIO, Ceph) through boto3."""

    def __init__(self, bucket: str, prefix: str, endpoint_url: str | None, cache_dir: Path) -> None:
        import boto3

        self.bucket = bucket
        self.prefix = prefix.strip("/")
        self.client = boto3.client("s3", endpoint_url=endpoint_url or None)
        self.cache_dir = cache_dir
        self.cache_dir.mkdir(parents=True, exist_ok=True)

    def _key(self, key: str) -> str:
        return f"{self.prefix}/{key}" if self.prefix else key

    def uri(self, key: str) -> str:
        return f"s3://{self.bucket}/{self._key(key)}"

    def put_file(self, local_path: Path, key: str) -> str:
        self.client.upload_file(str(local_path), self.bucket, self._key(key))
        local_path.unlink(missing_ok=True)
        return self.uri(key)

    def exists(self, key: str) -> bool:
        from botocore.exceptions import ClientError

        try:
            self.client.head_object(Bucket=self.bucket, Key=self._key(key))
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") in _S3_MISSING_CODES:
                return False
            raise
        return True

    @contextlib.contextmanager
    def local_path(self, uri: str) -> Iterator[Path]:
        """Raises ObjectNotFoundError for a missing object; other S3 errors (throttling, credentials,
        outage) pass through as botocore's ClientError, worth a retry."""
        from botocore.exceptions import ClientError

        parsed = urlparse(uri)
        if parsed.scheme != "s3" or parsed.netloc != self.bucket:
            raise StorageError(f"{uri!r} is not in bucket {self.bucket}")
        key = parsed.path.lstrip("/")
        with tempfile.TemporaryDirectory(dir=self.cache_dir) as tmp:
            path = Path(tmp) / Path(key).name
            try:
                self.client.download_file(self.bucket, key, str(path))
            except ClientError as exc:
                if exc.response.get("Error", {}).get("Code") in _S3_MISSING_CODES:
                    raise ObjectNotFoundError(f"{uri!r} does not exist") from exc
                raise
            yield path

    def spool_dir(self) -> Path:
        return self.cache_dir


def open_storage(settings: StorageSettings) -> Storage:
    """The store named by HAIC_STORAGE_URL: s3://bucket/prefix, file:///dir or a plain directory."""
    url = settings.resolved_storage_url
    parsed = urlparse(url)
    if parsed.scheme == "s3":
        cache = settings.data_dir / "cache"
        return S3Storage(parsed.netloc, parsed.path, settings.s3_endpoint_url or None, cache)
    if parsed.scheme in {"", "file"}:
        return LocalStorage(Path(parsed.path if parsed.scheme else url))
    raise StorageError(f"unsupported storage URL {url!r}: use a directory, file:// or s3://")
