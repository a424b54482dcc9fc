"""POST /v1/videos: stream a multipart upload to disk, probe it, store it, register it, announce it.

The body is never held in memory: request chunks go through python-multipart's streaming parser, and
the `file` part is written to a temp file in the store's spool directory while being hashed. The
upload is aborted with 413 as soon as more than HAIC_MAX_UPLOAD_BYTES arrive (or at once when
Content-Length already says so). The client's file name is never used: the stored key is derived
from the content hash and the probed container.
"""

from __future__ import annotations

import hashlib
import logging
import re
import tempfile
import time
from collections.abc import Awaitable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import IO
from urllib.parse import urlparse

from python_multipart.exceptions import MultipartParseError
from python_multipart.multipart import MultipartParser, parse_options_header
from starlette.concurrency import run_in_threadpool
from starlette.requests import ClientDisconnect, Request

from haic.v1 import events_pb2
from services.core import topics
from services.core.bus import EventProducer, Output, OutputDeliveryError, now_timestamp
from services.core.ids import video_id_from_sha256
from services.core.storage import Storage
from services.core.video import VideoInfo, VideoProbeError, probe
from services.gateway import metrics
from services.gateway.catalog import Catalog
from services.gateway.errors import UploadRejectedError
from services.gateway.references import ReferenceFetcher
from services.gateway.schemas import (
    BATCH_PATTERN,
    MAX_EXTERNAL_ID_CHARS,
    ReferenceRegistration,
    UploadAccepted,
    status_url,
)
from services.gateway.status import VideoStatus

log = logging.getLogger(__name__)

FILE_FIELD = "file"
TEXT_FIELDS = ("description", "source_url", "external_id", "batch")
MAX_TEXT_FIELD_BYTES = 16 * 1024
# A registered upload whose VideoUploaded the catalog has not seen after this long was never announced
# (the gateway stopped in between): an identical upload then announces it instead of answering 200.
UNANNOUNCED_GRACE_S = 300
# Room for the multipart framing and the text fields on top of the file itself.
FORM_OVERHEAD_BYTES = 64 * 1024

# Probe codes: the file is not a video at all (415) or a video we cannot use (422).
PROBE_STATUS = {
    "not_a_video": 415,
    "no_video_stream": 415,
    "empty_file": 422,
    "zero_duration": 422,
    "undecodable": 422,
    "truncated": 422,
}

# Stored file extension by FFmpeg demuxer name; other demuxers use their first name.
CONTAINER_EXTENSIONS = {
    "mov,mp4,m4a,3gp,3g2,mj2": ".mp4",
    "matroska,webm": ".mkv",
    "avi": ".avi",
    "ogg": ".ogv",
    "flv": ".flv",
    "mpeg": ".mpg",
    "mpegts": ".ts",
}

UPLOAD_OPENAPI = {
    "requestBody": {
        "required": True,
        "content": {
            "multipart/form-data": {
                "schema": {
                    "type": "object",
                    "required": [FILE_FIELD],
                    "properties": {
                        FILE_FIELD: {"type": "string", "format": "binary", "description": "The video"},
                        "description": {"type": "string", "description": "What happens in the video"},
                        "source_url": {"type": "string", "description": "Where the video comes from (http/https)"},
                        "external_id": {
                            "type": "string",
                            "maxLength": MAX_EXTERNAL_ID_CHARS,
                            "description": "The caller's id of the video; a known one answers 200 with its video",
                        },
                        "batch": {
                            "type": "string",
                            "pattern": BATCH_PATTERN,
                            "description": "The batch (ingestion run) the video belongs to, for the yield report",
                        },
                    },
                }
            }
        },
    }
}


def stored_extension(container: str) -> str:
    if container in CONTAINER_EXTENSIONS:
        return CONTAINER_EXTENSIONS[container]
    first = "".join(ch for ch in container.split(",")[0].lower() if ch.isalnum())
    return f".{first}" if first else ".video"


def _too_large(limit: int) -> UploadRejectedError:
    return UploadRejectedError("too_large", f"the upload exceeds the limit of {limit} bytes", status_code=413)


@dataclass
class SpooledUpload:
    """The parsed form: the file part in a spool file (or none), its hash and size, the text fields."""

    path: Path | None
    sha256: str
    size_bytes: int
    fields: dict[str, str] = field(default_factory=dict)

    def discard(self) -> None:
        if self.path is not None:
            self.path.unlink(missing_ok=True)
            self.path = None


class MultipartSpooler:
    """Feeds body chunks through python-multipart's streaming parser.

    The `file` part goes to a temp file in `spool_dir` while being hashed; text fields are kept (up to
    MAX_TEXT_FIELD_BYTES each); other fields are ignored. Raises UploadRejectedError as soon as the
    body or the file exceeds its limit.
    """

    def __init__(self, boundary: bytes, spool_dir: Path, max_file_bytes: int) -> None:
        self.spool_dir = spool_dir
        self.max_file_bytes = max_file_bytes
        self.max_body_bytes = max_file_bytes + FORM_OVERHEAD_BYTES
        self.body_bytes = 0
        self._parser = MultipartParser(
            boundary,
            callbacks={
                "on_part_begin": self._on_part_begin,
                "on_header_field": self._on_header_field,
                "on_header_value": self._on_header_value,
                "on_header_end": self._on_header_end,
                "on_headers_finished": self._on_headers_finished,
                "on_part_data": self._on_part_data,
                "on_part_end": self._on_part_end,
                "on_end": self._on_end,
            },
        )
        self._headers: dict[bytes, bytes] = {}
        self._header_field = bytearray()
        self._header_value = bytearray()
        self._part_name = ""
        self._part_text = bytearray()
        self._file: IO[bytes] | None = None
        self._file_path: Path | None = None
        self._file_seen = False
        self._file_bytes = 0
        self._hasher = hashlib.sha256()
        self._fields: dict[str, str] = {}
        self._ended = False

    # --- feeding ---
    def write(self, chunk: bytes) -> None:
        self.body_bytes += len(chunk)
        if self.body_bytes > self.max_body_bytes:
            raise _too_large(self.max_file_bytes)
        try:
            self._parser.write(chunk)
        except MultipartParseError as exc:
            raise UploadRejectedError(
                "malformed_multipart", f"the multipart body is malformed: {exc}", status_code=400
            ) from exc

    def finish(self) -> SpooledUpload:
        """Ends parsing; the caller owns (and must discard or store) the returned spool file."""
        self._parser.finalize()
        if not self._ended:
            raise UploadRejectedError(
                "malformed_multipart", "the multipart body ended before its closing boundary", status_code=400
            )
        if self._file is not None:
            self._file.close()
            self._file = None
        upload = SpooledUpload(self._file_path, self._hasher.hexdigest(), self._file_bytes, dict(self._fields))
        self._file_path = None  # handed over
        return upload

    def discard(self) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None
        if self._file_path is not None:
            self._file_path.unlink(missing_ok=True)
            self._file_path = None

    # --- parser callbacks ---
    def _on_part_begin(self) -> None:
        self._headers = {}
        self._part_name = ""
        self._part_text = bytearray()

    def _on_header_field(self, data: bytes, start: int, end: int) -> None:
        self._header_field += data[start:end]

    def _on_header_value(self, data: bytes, start: int, end: int) -> None:
        self._header_value += data[start:end]

    def _on_header_end(self) -> None:
        self._headers[bytes(self._header_field).lower()] = bytes(self._header_value)
        self._header_field = bytearray()
        self._header_value = bytearray()

    def _on_headers_finished(self) -> None:
        _, params = parse_options_header(self._headers.get(b"content-disposition", b""))
        # Only the field name is read; the part's filename parameter is deliberately ignored.
        self._part_name = params.get(b"name", b"").decode("utf-8", errors="replace")
        if self._part_name != FILE_FIELD:
            return
        if self._file_seen:
            raise UploadRejectedError("multiple_files", "send exactly one `file` part", status_code=422)
        self._file_seen = True
        spool = tempfile.NamedTemporaryFile(dir=self.spool_dir, prefix="upload-", suffix=".part", delete=False)  # noqa: SIM115 - closed in finish/discard
        self._file = spool
        self._file_path = Path(spool.name)

    def _on_part_data(self, data: bytes, start: int, end: int) -> None:
        if self._part_name == FILE_FIELD:
            assert self._file is not None
            self._file_bytes += end - start
            if self._file_bytes > self.max_file_bytes:
                raise _too_large(self.max_file_bytes)
            chunk = memoryview(data)[start:end]
            self._hasher.update(chunk)
            self._file.write(chunk)
        elif self._part_name in TEXT_FIELDS:
            self._part_text += data[start:end]
            if len(self._part_text) > MAX_TEXT_FIELD_BYTES:
                raise UploadRejectedError(
                    "field_too_large", f"`{self._part_name}` exceeds {MAX_TEXT_FIELD_BYTES} bytes", status_code=413
                )

    def _on_part_end(self) -> None:
        if self._part_name in TEXT_FIELDS:
            try:
                self._fields[self._part_name] = self._part_text.decode("utf-8").strip()
            except UnicodeDecodeError as exc:
                raise UploadRejectedError(
                    "invalid_field", f"`{self._part_name}` is not UTF-8 text", status_code=422
                ) from exc

    def _on_end(self) -> None:
        self._ended = True


def _validate_fields(fields: dict[str, str]) -> None:
    source_url = fields.get("source_url", "")
    if source_url:
        parsed = urlparse(source_url)
        if parsed.scheme not in {"http", "https"} or not parsed.netloc:
            raise UploadRejectedError("invalid_source_url", "source_url must be an http or https URL", status_code=422)
    external_id = fields.get("external_id", "")
    if len(external_id) > MAX_EXTERNAL_ID_CHARS or not external_id.isprintable():
        raise UploadRejectedError(
            "invalid_external_id",
            f"external_id must be printable text of at most {MAX_EXTERNAL_ID_CHARS} characters",
            status_code=422,
        )
    batch = fields.get("batch", "")
    if batch and not re.fullmatch(BATCH_PATTERN, batch):
        raise UploadRejectedError("invalid_batch", f"batch must match {BATCH_PATTERN}", status_code=422)


class Uploader:
    """Runs one upload from request to announcement; the blocking steps run in the thread pool."""

    def __init__(
        self,
        storage: Storage,
        catalog: Catalog,
        producer: EventProducer,
        max_upload_bytes: int,
        reannounce_after_s: float = 300.0,
        references: ReferenceFetcher | None = None,
    ) -> None:
        self.storage = storage
        self.catalog = catalog
        self.producer = producer
        self.max_upload_bytes = max_upload_bytes
        self.reannounce_after_s = reannounce_after_s
        self.references = references

    async def receive(self, request: Request) -> SpooledUpload:
        """Streams the multipart body into a spool file; raises UploadRejectedError."""
        media_type, params = parse_options_header(request.headers.get("content-type", ""))
        if media_type != b"multipart/form-data":
            raise UploadRejectedError("not_multipart", "send the video as multipart/form-data", status_code=415)
        boundary = params.get(b"boundary")
        if not boundary:
            raise UploadRejectedError("malformed_multipart", "the Content-Type has no boundary", status_code=400)
        declared = request.headers.get("content-length")
        if declared is not None and declared.isdigit() and int(declared) > self.max_upload_bytes + FORM_OVERHEAD_BYTES:
            raise _too_large(self.max_upload_bytes)  # refused before reading any of the body
        spooler = MultipartSpooler(boundary, self.storage.spool_dir(), self.max_upload_bytes)
        try:
            async for chunk in request.stream():
                spooler.write(chunk)
            upload = spooler.finish()
        except ClientDisconnect as exc:
            spooler.discard()
            raise UploadRejectedError(
                "incomplete_upload", "the client disconnected during the upload", status_code=400
            ) from exc
        except BaseException:
            spooler.discard()
            raise
        finally:
            metrics.UPLOAD_BYTES.inc(spooler.body_bytes)
        return upload

    async def handle(self, request: Request) -> tuple[int, UploadAccepted]:
        """Returns (HTTP status, body): 202 for a new video, 200 for content uploaded before."""
        return await self._counted(self._handle(request))

    async def register_reference(self, registration: ReferenceRegistration) -> tuple[int, UploadAccepted]:
        """Reads the referenced video server-side, then probes, stores and announces it like an upload."""
        return await self._counted(self._register_reference(registration))

    @staticmethod
    async def _counted(outcome: Awaitable[tuple[int, UploadAccepted]]) -> tuple[int, UploadAccepted]:
        try:
            status_code, accepted = await outcome
        except UploadRejectedError as exc:
            metrics.UPLOADS.labels(exc.code).inc()
            raise
        metrics.UPLOADS.labels("duplicate" if accepted.duplicate else "accepted").inc()
        return status_code, accepted

    async def _handle(self, request: Request) -> tuple[int, UploadAccepted]:
        started = time.perf_counter()
        upload = await self.receive(request)
        metrics.UPLOAD_STAGE_SECONDS.labels("receive").observe(time.perf_counter() - started)
        try:
            if upload.path is None:
                raise UploadRejectedError("missing_file", f"the form has no `{FILE_FIELD}` field", status_code=422)
            _validate_fields(upload.fields)
            return await self._accept(upload)
        finally:
            upload.discard()

    async def _register_reference(self, registration: ReferenceRegistration) -> tuple[int, UploadAccepted]:
        if self.references is None:
            raise UploadRejectedError("reference_not_allowed", "registration by reference is off", status_code=403)
        fields = {
            "description": registration.description.strip(),
            "source_url": registration.source_url.strip()
            or (registration.uri if registration.uri.startswith(("http://", "https://")) else ""),
            "external_id": registration.external_id,
            "batch": registration.batch,
        }
        _validate_fields(fields)
        known = await self._known_external_id(fields)
        if known is not None:
            return known
        started = time.perf_counter()
        try:
            fetched = await run_in_threadpool(self.references.fetch, registration.uri)
        finally:
            metrics.UPLOAD_STAGE_SECONDS.labels("fetch").observe(time.perf_counter() - started)
        upload = SpooledUpload(fetched.path, fetched.sha256, fetched.size_bytes, fields)
        try:
            return await self._accept(upload)
        finally:
            upload.discard()

    async def _known_external_id(self, fields: dict[str, str]) -> tuple[int, UploadAccepted] | None:
        """The answer for an external id registered before: the same video, nothing read or announced."""
        external_id = fields.get("external_id", "")
        if not external_id:
            return None
        video_id = await run_in_threadpool(self.catalog.video_for_external_id, external_id)
        state = await run_in_threadpool(self.catalog.video_state, video_id) if video_id else None
        if video_id is None or state is None:
            return None
        await run_in_threadpool(self.catalog.record_source, video_id, "", fields.get("batch", ""))
        return 200, UploadAccepted(
            video_id=video_id, status=state.status, status_url=status_url(video_id), duplicate=True
        )

    async def _accept(self, upload: SpooledUpload) -> tuple[int, UploadAccepted]:
        """Dedup by content, probe, store, register and announce a spooled video; the caller discards it."""
        assert upload.path is not None
        known = await self._known_external_id(upload.fields)
        if known is not None:
            return known
        status_code, accepted = await self._accept_content(upload)
        await run_in_threadpool(
            self.catalog.record_source,
            accepted.video_id,
            upload.fields.get("external_id", ""),
            upload.fields.get("batch", ""),
        )
        return status_code, accepted

    async def _accept_content(self, upload: SpooledUpload) -> tuple[int, UploadAccepted]:
        assert upload.path is not None
        video_id = video_id_from_sha256(upload.sha256)
        existing = await run_in_threadpool(self.catalog.video_state, video_id)
        reannounce = False
        if existing is not None:
            stale_before = datetime.now(UTC) - timedelta(seconds=UNANNOUNCED_GRACE_S)
            reannounce = await run_in_threadpool(self.catalog.claim_stale_registration, video_id, stale_before)
            if not reannounce:
                reannounced = not existing.settled and await run_in_threadpool(self._reannounce_if_silent, video_id)
                return 200, UploadAccepted(
                    video_id=video_id,
                    status=existing.status,
                    status_url=status_url(video_id),
                    duplicate=True,
                    reannounced=reannounced,
                )
            log.warning("%s was registered but never announced; announcing it now", video_id)
        info = await run_in_threadpool(self._probe, upload.path, video_id)
        return await self._store_and_announce(upload, video_id, info, already_registered=reannounce)

    def _reannounce_if_silent(self, video_id: str) -> bool:
        """An identical upload of a video that is not settled and of which nothing was heard for
        HAIC_REANNOUNCE_AFTER_S announces it again: whatever it waited on (a lost event, a broker that was
        reset) is sent anew. The stages are idempotent, so a video that was merely slow loses nothing."""
        last = self.catalog.last_activity(video_id)
        if last is not None and datetime.now(UTC) - last < timedelta(seconds=self.reannounce_after_s):
            return False
        return self.reannounce(self.catalog.uploads([video_id])) > 0

    def reannounce(self, uploads: list[events_pb2.VideoUploaded]) -> int:
        """Produces the videos' VideoUploaded again (same ids, same content); returns how many."""
        if uploads:
            self.producer.deliver([Output(topics.VIDEOS, upload.video_id, upload) for upload in uploads])
            metrics.REANNOUNCED.inc(len(uploads))
            log.warning("announced %d video(s) again: %s", len(uploads), ", ".join(u.video_id for u in uploads[:10]))
        return len(uploads)

    @staticmethod
    def _probe(path: Path, video_id: str) -> VideoInfo:
        started = time.perf_counter()
        try:
            return probe(path)
        except VideoProbeError as exc:
            raise UploadRejectedError(
                exc.code, str(exc), video_id=video_id, status_code=PROBE_STATUS.get(exc.code, 422)
            ) from exc
        finally:
            metrics.UPLOAD_STAGE_SECONDS.labels("probe").observe(time.perf_counter() - started)

    async def _store_and_announce(
        self, upload: SpooledUpload, video_id: str, info: VideoInfo, already_registered: bool = False
    ) -> tuple[int, UploadAccepted]:
        assert upload.path is not None
        started = time.perf_counter()
        key = f"videos/{video_id}/source{stored_extension(info.container)}"
        uri = await run_in_threadpool(self.storage.put_file, upload.path, key)
        upload.path = None  # moved into the store
        metrics.UPLOAD_STAGE_SECONDS.labels("store").observe(time.perf_counter() - started)

        message = events_pb2.VideoUploaded(
            video_id=video_id,
            sha256=upload.sha256,
            storage_uri=uri,
            size_bytes=upload.size_bytes,
            description=upload.fields.get("description", ""),
            source_url=upload.fields.get("source_url", ""),
            info=info.to_proto(),
            uploaded_at=now_timestamp(),
        )
        # The insert decides between concurrent identical uploads: only its winner announces.
        if not already_registered and not await run_in_threadpool(self.catalog.register_upload, message):
            state = await run_in_threadpool(self.catalog.video_state, video_id)
            current = state.status if state is not None else VideoStatus.uploaded
            return 200, UploadAccepted(
                video_id=video_id, status=current, status_url=status_url(video_id), duplicate=True
            )
        started = time.perf_counter()
        try:
            await run_in_threadpool(self.producer.deliver, [Output(topics.VIDEOS, video_id, message)])
        except OutputDeliveryError as exc:
            await run_in_threadpool(self.catalog.forget_upload, video_id)
            raise UploadRejectedError(
                "bus_unavailable",
                f"the video could not be announced, retry later: {exc}",
                video_id=video_id,
                status_code=503,
            ) from exc
        finally:
            metrics.UPLOAD_STAGE_SECONDS.labels("announce").observe(time.perf_counter() - started)
        log.info("accepted %s: %d bytes, %s", video_id, upload.size_bytes, info)
        return 202, UploadAccepted(
            video_id=video_id, status=VideoStatus.uploaded, status_url=status_url(video_id), duplicate=False
        )
