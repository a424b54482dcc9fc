"""Registration by reference: a video that already sits in a directory, a bucket or behind a URL is read
by the gateway itself (a server-side copy into the store), never sent through the client.

Only what HAIC_REFERENCE_ROOTS allows is read: a local path must lie inside an allowed directory once its
symlinks are resolved, an s3:// key inside an allowed bucket/prefix, a URL must start with an allowed
prefix. A URL's host must resolve to public addresses only (no loopback, private, link-local or reserved
range, unless HAIC_REFERENCE_PRIVATE_NETWORKS names it), and every redirect is checked the same way, so a
client cannot make the gateway reach into the network it runs in. The bytes are hashed while being copied
into the store's spool directory; the caller then probes, stores and announces them like an upload.
"""

from __future__ import annotations

import hashlib
import ipaddress
import socket
import tempfile
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO
from urllib.parse import urljoin, urlparse

import httpx

from services.core.settings import GatewayServiceSettings
from services.gateway.errors import UploadRejectedError

COPY_BLOCK_BYTES = 1 << 20
MAX_REDIRECTS = 5
IpNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network


@dataclass(frozen=True)
class FetchedReference:
    path: Path
    sha256: str
    size_bytes: int


def _refused(code: str, message: str, status_code: int = 403) -> UploadRejectedError:
    return UploadRejectedError(code, message, status_code=status_code)


class ReferenceFetcher:
    """Copies an allowed reference into `spool_dir`, hashing it; raises UploadRejectedError with a reason."""

    def __init__(self, settings: GatewayServiceSettings, spool_dir: Path, max_bytes: int) -> None:
        self.spool_dir = spool_dir
        self.max_bytes = max_bytes
        self.timeout_s = settings.reference_timeout_s
        self.s3_endpoint_url = settings.s3_endpoint_url or None
        self.local_roots: list[Path] = []
        self.s3_roots: list[tuple[str, str]] = []
        self.url_roots: list[str] = []
        for root in settings.reference_roots:
            parsed = urlparse(root)
            if parsed.scheme in {"http", "https"}:
                self.url_roots.append(root)
            elif parsed.scheme == "s3" and parsed.netloc:
                self.s3_roots.append((parsed.netloc, parsed.path.strip("/")))
            elif parsed.scheme in {"", "file"}:
                self.local_roots.append(Path(parsed.path if parsed.scheme else root).resolve())
            else:
                raise ValueError(f"HAIC_REFERENCE_ROOTS: {root!r} is not a directory, s3:// or http(s):// root")
        self.private_networks: list[IpNetwork] = [
            ipaddress.ip_network(n, strict=False) for n in settings.reference_private_networks
        ]

    def fetch(self, reference: str) -> FetchedReference:
        parsed = urlparse(reference)
        if parsed.scheme in {"http", "https"}:
            return self._fetch_url(reference)
        if parsed.scheme == "s3":
            return self._fetch_s3(parsed.netloc, parsed.path.lstrip("/"), reference)
        if parsed.scheme == "file" or (not parsed.scheme and reference.startswith("/")):
            return self._fetch_local(Path(parsed.path if parsed.scheme else reference), reference)
        raise _refused(
            "unsupported_reference",
            "a reference is an absolute path, file://, s3:// or http(s):// URI",
            status_code=422,
        )

    # --- local directories ---

    def _fetch_local(self, path: Path, reference: str) -> FetchedReference:
        resolved = path.resolve()  # symlinks and `..` resolved before the check: no way out of a root
        if not any(resolved.is_relative_to(root) for root in self.local_roots):
            raise _refused("reference_not_allowed", f"{reference} is not inside an allowed root (HAIC_REFERENCE_ROOTS)")
        if not resolved.is_file():
            raise _refused("reference_not_found", f"{reference} does not exist or is not a file", status_code=422)
        with resolved.open("rb") as source:
            return self._copy(iter(lambda: source.read(COPY_BLOCK_BYTES), b""))

    # --- S3-compatible buckets ---

    def _fetch_s3(self, bucket: str, key: str, reference: str) -> FetchedReference:
        allowed = any(
            bucket == root_bucket and (not prefix or key == prefix or key.startswith(prefix + "/"))
            for root_bucket, prefix in self.s3_roots
        )
        if not bucket or not key or not allowed:
            raise _refused(
                "reference_not_allowed", f"{reference} is not inside an allowed bucket (HAIC_REFERENCE_ROOTS)"
            )
        import boto3
        from botocore.exceptions import BotoCoreError, ClientError

        client = boto3.client("s3", endpoint_url=self.s3_endpoint_url)
        try:
            head = client.head_object(Bucket=bucket, Key=key)
            if int(head.get("ContentLength", 0)) > self.max_bytes:
                raise self._too_large()
            body = client.get_object(Bucket=bucket, Key=key)["Body"]
            return self._copy(body.iter_chunks(COPY_BLOCK_BYTES))
        except ClientError as exc:
            code = exc.response.get("Error", {}).get("Code", "")
            if code in {"404", "NoSuchKey", "NotFound"}:
                raise _refused("reference_not_found", f"{reference} does not exist", status_code=422) from exc
            raise _refused("reference_unreachable", f"{reference} could not be read: {code}", 502) from exc
        except BotoCoreError as exc:
            raise _refused("reference_unreachable", f"{reference} could not be read: {exc}", 502) from exc

    # --- URLs ---

    def _fetch_url(self, url: str) -> FetchedReference:
        with httpx.Client(timeout=self.timeout_s, follow_redirects=False, trust_env=False) as client:
            for _ in range(MAX_REDIRECTS + 1):
                self._check_url(url)
                try:
                    with client.stream("GET", url) as response:
                        if response.is_redirect and "location" in response.headers:
                            url = urljoin(url, response.headers["location"])
                            continue
                        if response.status_code in {404, 410}:
                            raise _refused("reference_not_found", f"{url} answered {response.status_code}", 422)
                        if not response.is_success:
                            raise _refused("reference_unreachable", f"{url} answered {response.status_code}", 502)
                        declared = response.headers.get("content-length", "")
                        if declared.isdigit() and int(declared) > self.max_bytes:
                            raise self._too_large()
                        return self._copy(response.iter_bytes(COPY_BLOCK_BYTES))
                except httpx.HTTPError as exc:
                    raise _refused("reference_unreachable", f"{url} could not be read: {exc}", 502) from exc
        raise _refused("reference_unreachable", f"more than {MAX_REDIRECTS} redirects", status_code=502)

    def _check_url(self, url: str) -> None:
        parsed = urlparse(url)
        if parsed.scheme not in {"http", "https"} or not parsed.hostname:
            raise _refused("unsupported_reference", f"{url} is not an http(s) URL", status_code=422)
        if not any(url.startswith(root) for root in self.url_roots):
            raise _refused("reference_not_allowed", f"{url} is not under an allowed prefix (HAIC_REFERENCE_ROOTS)")
        for address in self._addresses(parsed.hostname, parsed.port or (443 if parsed.scheme == "https" else 80)):
            if not address.is_global and not any(address in network for network in self.private_networks):
                raise _refused("private_address", f"{parsed.hostname} resolves to {address}, a non-public address")

    @staticmethod
    def _addresses(host: str, port: int) -> Iterable[ipaddress.IPv4Address | ipaddress.IPv6Address]:
        try:
            infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
        except socket.gaierror as exc:
            raise _refused("reference_unreachable", f"{host} does not resolve: {exc}", status_code=502) from exc
        for info in infos:
            address = ipaddress.ip_address(str(info[4][0]).split("%")[0])
            # An IPv4 address mapped into IPv6 (::ffff:127.0.0.1) is judged as the IPv4 address it is.
            if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
                address = address.ipv4_mapped
            yield address

    # --- copying ---

    def _too_large(self) -> UploadRejectedError:
        return _refused("too_large", f"the reference exceeds the limit of {self.max_bytes} bytes", status_code=413)

    def _copy(self, chunks: Iterator[bytes]) -> FetchedReference:
        digest = hashlib.sha256()
        size = 0
        spool: IO[bytes] = tempfile.NamedTemporaryFile(  # noqa: SIM115 - removed below on any failure
            dir=self.spool_dir, prefix="reference-", suffix=".part", delete=False
        )
        path = Path(spool.name)
        try:
            with spool:
                for chunk in chunks:
                    size += len(chunk)
                    if size > self.max_bytes:
                        raise self._too_large()
                    digest.update(chunk)
                    spool.write(chunk)
        except BaseException:
            path.unlink(missing_ok=True)
            raise
        return FetchedReference(path, digest.hexdigest(), size)
