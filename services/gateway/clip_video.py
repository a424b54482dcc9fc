"""The review desk's clip video (issue 15): `GET /v1/review/clips/{clip_id}/video`.

The desk plays the clip's own H.264 cut (services/core/clip_cut.py, the same cut `haic export --clips` writes),
not the source video: a cut starts at the clip's start (the page maps `t = currentTime + start_s`), any browser
plays it whatever the source's codec, and it shows exactly the frames the pose stage decoded. The pose stage
decodes with PyAV, which does not apply a rotated video's display matrix, so its coordinates are pixels of the
stored (unrotated) frames; the cut re-encodes those frames and carries no display matrix, so a browser shows them
unrotated too and the boxes line up (the source itself would play rotated). Its frame size is the source's,
rounded down to even numbers (yuv420p).

Each clip is cut once, on its first request, into `<data_dir>/review_clips/<clip_id>.mp4` and served from there
with HTTP range requests (Starlette's FileResponse: 206 with Content-Range, 416 outside the file, ETag, If-Range).
"""

from __future__ import annotations

import contextlib
import logging
import threading
from collections.abc import Iterator
from pathlib import Path as FilePath
from typing import Annotated, Any

from botocore.exceptions import BotoCoreError, ClientError
from fastapi import APIRouter, Depends, Path, Request
from fastapi.responses import FileResponse
from starlette.concurrency import run_in_threadpool

from services.core.clip_cut import PREVIEW_RECIPE, ClipCutError, cut_clip
from services.core.settings import StorageSettings
from services.core.storage import ObjectNotFoundError, Storage, StorageError
from services.gateway.auth import require_caller
from services.gateway.catalog import Catalog
from services.gateway.errors import GatewayError, NotFoundError, NotReadyError
from services.gateway.schemas import ErrorBody, ValidationErrorBody

log = logging.getLogger(__name__)

CLIPS_DIR = "review_clips"
# Cuts at once: each keeps one core busy for about the clip's duration; more requests wait for a turn.
MAX_CONCURRENT_CUTS = 2
ID_PATTERN = r"^[A-Za-z0-9_.:-]{1,128}$"


class ClipVideoError(GatewayError):
    """The clip is known but has no playable cut: `source_missing` (409, the stored video is gone),
    `clip_uncuttable` (422, the source does not decode or holds no frame in the span)."""

    status_code = 422


class ClipVideos:
    """The cuts the desk plays, made once per clip under <data_dir>/review_clips.

    A per-clip lock makes concurrent first requests wait for one cut instead of each making its own; cut_clip
    writes a temporary name and renames, so a reader (this or another gateway process on the same data dir)
    never sees half a file. A file `RECIPE` beside the cuts names the encoder settings they were made with:
    when clip_cut's recipe changes, the old cuts are removed on start and made again on demand.
    """

    def __init__(self, settings: StorageSettings, catalog: Catalog, storage: Storage) -> None:
        self.root = (settings.data_dir / CLIPS_DIR).resolve()
        self.catalog = catalog
        self.storage = storage
        self._locks: dict[str, threading.Lock] = {}
        self._locks_guard = threading.Lock()
        self._turns = threading.BoundedSemaphore(MAX_CONCURRENT_CUTS)
        self.root.mkdir(parents=True, exist_ok=True)
        marker = self.root / "RECIPE"
        if not marker.is_file() or marker.read_text() != PREVIEW_RECIPE.name:
            for old in self.root.glob("*.mp4"):
                old.unlink(missing_ok=True)
            marker.write_text(PREVIEW_RECIPE.name)

    @contextlib.contextmanager
    def _clip_lock(self, clip_id: str) -> Iterator[None]:
        with self._locks_guard:
            lock = self._locks.setdefault(clip_id, threading.Lock())
        with lock:
            yield
        # the lock stays in the map: one small object per clip ever requested from this process

    def path(self, clip_id: str) -> FilePath:
        """The clip's cut, made now if it is not there yet (blocking: call it in a worker thread)."""
        target = self.root / f"{clip_id}.mp4"
        if target.is_file():
            return target
        row = self.catalog.find_clip(clip_id)
        if row is None:
            raise NotFoundError("clip_not_found", f"clip {clip_id} is not in the catalog")
        if not row["storage_uri"] or row["start_s"] is None or row["end_s"] is None:
            raise ClipVideoError(
                "source_missing", f"the catalog knows no stored video or span of clip {clip_id}", status_code=409
            )
        with self._clip_lock(clip_id):
            if target.is_file():  # cut by the request this one waited for
                return target
            with self._turns:
                self._cut(row, target)
        return target

    def _cut(self, row: Any, target: FilePath) -> None:
        clip_id, video_id = row["clip_id"], row["video_id"]
        try:
            with self.storage.local_path(row["storage_uri"]) as source:
                frames = cut_clip(source, float(row["start_s"]), float(row["end_s"]), target, clip_id, PREVIEW_RECIPE)
        except ObjectNotFoundError as exc:
            raise ClipVideoError(
                "source_missing",
                f"the stored video of clip {clip_id} is gone: {exc}",
                video_id=video_id,
                status_code=409,
            ) from exc
        except ClipCutError as exc:
            raise ClipVideoError("clip_uncuttable", str(exc), video_id=video_id) from exc
        except StorageError as exc:  # a URI this store cannot read: the catalog and the store disagree
            raise ClipVideoError("source_missing", str(exc), video_id=video_id, status_code=409) from exc
        except (ClientError, BotoCoreError, OSError) as exc:  # the store did not answer: worth a retry
            raise NotReadyError("store_unavailable", f"the video store could not be read: {exc}") from exc
        log.info("cut clip %s for the review desk: %d frames", clip_id, frames)


_made = threading.Lock()  # one ClipVideos per runtime, or two first requests could cut one clip at once


def _clip_videos(request: Request) -> ClipVideos:
    """The app's ClipVideos for its current runtime (a restarted lifespan has a new catalog and store)."""
    runtime = getattr(request.app.state, "runtime", None)
    if runtime is None or runtime.catalog is None or runtime.storage is None:
        raise NotReadyError("starting", "the gateway is starting or stopping")
    with _made:
        videos: ClipVideos | None = getattr(request.app.state, "clip_videos", None)
        if videos is None or videos.catalog is not runtime.catalog:
            videos = ClipVideos(request.app.state.settings, runtime.catalog, runtime.storage)
            request.app.state.clip_videos = videos
    return videos


_VIDEO_RESPONSES: dict[int | str, dict[str, Any]] = {
    200: {"content": {"video/mp4": {"schema": {"type": "string", "format": "binary"}}}, "description": "The cut"},
    206: {
        "content": {"video/mp4": {"schema": {"type": "string", "format": "binary"}}},
        "description": "The requested byte range of the cut (`Range: bytes=...`), with Content-Range",
    },
    401: {"model": ErrorBody, "description": "No API key or desk session"},
    404: {"model": ErrorBody, "description": "The clip is not in the catalog"},
    409: {"model": ErrorBody, "description": "source_missing: the clip's stored video is gone"},
    416: {"content": {"text/plain": {}}, "description": "The range lies outside the cut"},
    422: {
        "model": ValidationErrorBody | ErrorBody,
        "description": "A malformed clip id; or clip_uncuttable: the source does not decode in the clip's span",
    },
    503: {"model": ErrorBody, "description": "The gateway is starting, or the video store did not answer"},
}

router = APIRouter(prefix="/v1/review", tags=["review"], dependencies=[Depends(require_caller)])


@router.get(
    "/clips/{clip_id}/video",
    response_class=FileResponse,
    responses=_VIDEO_RESPONSES,
)
async def clip_video(
    clip_id: Annotated[str, Path(pattern=ID_PATTERN, description="`clip_` and 16 hex digits")],
    videos: Annotated[ClipVideos, Depends(_clip_videos)],
) -> FileResponse:
    """The clip as an H.264 MP4 from its start to its end (cut once, then cached), with range requests."""
    path = await run_in_threadpool(videos.path, clip_id)
    return FileResponse(
        path,
        media_type="video/mp4",
        # the bytes of a clip id never change while the recipe stays (the ETag changes with the file)
        headers={"cache-control": "private, max-age=3600"},
    )
