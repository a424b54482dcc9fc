"""The filter stage: metadata filter and scene split of one uploaded video, for Kafka and gRPC alike.

`split_video` is the whole operation. The Kafka handler maps its result to outputs on
haic.clips.candidate.v1 and haic.clips.rejected.v1 keyed by video id; `FilterServicer` returns it
over gRPC. A video that cannot be read raises VideoUnreadableError, a PoisonMessageError, so the bus
dead-letters it at once instead of retrying.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path

import av.error
import grpc

from haic.v1 import events_pb2, filter_pb2, filter_pb2_grpc
from services.core import metrics, topics, topology
from services.core.bus import Handler, Output, now_timestamp
from services.core.grpc_server import InvalidRequestError, maps_errors
from services.core.service import stage_handler
from services.core.settings import FilterServiceSettings
from services.core.storage import Storage, StorageError, open_storage
from services.core.video import VideoInfo, VideoProbeError, VideoReader, VideoUnreadableError
from services.filter import scenes
from services.filter.errors import InvalidVideoEventError
from services.filter.metadata import check_metadata

log = logging.getLogger(__name__)

STAGE = topology.stage("filter")


@dataclass
class SplitResult:
    """What the filter concluded for one video: candidate clips and every rejection."""

    candidates: list[events_pb2.ClipCandidate] = field(default_factory=list)
    rejections: list[events_pb2.ClipVerdict] = field(default_factory=list)

    def outputs(self, video_id: str) -> list[Output]:
        return [
            *(Output(topics.CLIPS_CANDIDATE, video_id, candidate) for candidate in self.candidates),
            *(Output(topics.CLIPS_REJECTED, video_id, rejection) for rejection in self.rejections),
        ]


def _require_fields(uploaded: events_pb2.VideoUploaded) -> None:
    if not uploaded.video_id:
        raise InvalidVideoEventError("", "the event has no video_id")
    if not uploaded.storage_uri:
        raise InvalidVideoEventError(uploaded.video_id, "the event has no storage_uri")


def _has_dimensions(uploaded: events_pb2.VideoUploaded) -> bool:
    return uploaded.HasField("info") and uploaded.info.width > 0 and uploaded.info.height > 0


def _candidate(
    uploaded: events_pb2.VideoUploaded,
    info: events_pb2.VideoInfo,
    plan: scenes.ClipPlan,
    settings: FilterServiceSettings,
) -> events_pb2.ClipCandidate:
    return events_pb2.ClipCandidate(
        video_id=uploaded.video_id,
        span=plan.span(),
        storage_uri=uploaded.storage_uri,
        info=info,
        description=uploaded.description,
        values={
            "duration_s": plan.duration_s,
            "scene_duration_s": plan.scene.duration_s,
            "window_count": float(plan.window_count),
            "min_clip_s": settings.min_clip_s,
            "max_clip_s": settings.max_clip_s,
        },
        produced_at=now_timestamp(),
    )


def _scene_rejection(
    uploaded: events_pb2.VideoUploaded,
    info: events_pb2.VideoInfo,
    plan: scenes.ClipPlan,
    settings: FilterServiceSettings,
) -> events_pb2.ClipVerdict:
    what = f"scene {plan.scene.index}" if plan.window_count == 1 else f"a window of scene {plan.scene.index}"
    if plan.decision is scenes.ClipDecision.scene_too_short:
        reason = f"{what} lasts {plan.duration_s:.2f} s, shorter than the {settings.min_clip_s:g} s minimum"
    else:
        reason = (
            f"{what} lasts {plan.duration_s:.2f} s, longer than the {settings.max_clip_s:g} s maximum "
            f"(long_scene_policy={settings.long_scene_policy.value})"
        )
    return events_pb2.ClipVerdict(
        video_id=uploaded.video_id,
        span=plan.span(),
        verdict=events_pb2.VERDICT_REJECTED,
        stage=scenes.STAGE,
        reason_code=plan.decision.value,
        reason=reason,
        values={
            "duration_s": plan.duration_s,
            "min_clip_s": settings.min_clip_s,
            "max_clip_s": settings.max_clip_s,
        },
        storage_uri=uploaded.storage_uri,
        info=info,
        description=uploaded.description,
        produced_at=now_timestamp(),
    )


def _split_local_video(
    uploaded: events_pb2.VideoUploaded, path: Path, settings: FilterServiceSettings, *, metadata_checked: bool
) -> SplitResult:
    video_id = uploaded.video_id
    try:
        # The gateway's probe travels with the event; probing again would decode the first and last second.
        reader = VideoReader(path, VideoInfo.from_proto(uploaded.info) if metadata_checked else None)
    except VideoProbeError as exc:
        raise VideoUnreadableError(exc.code, str(exc), video_id=video_id) from exc
    except av.error.FFmpegError as exc:
        raise VideoUnreadableError("undecodable", str(exc), video_id=video_id) from exc
    with reader:
        info = reader.info.to_proto()
        if not metadata_checked:
            verdict = check_metadata(uploaded, info, settings)
            if verdict is not None:
                return SplitResult(rejections=[verdict])
        try:
            detected = scenes.detect_scenes(reader, settings)
        except av.error.FFmpegError as exc:
            # the probe decoded the first and the last second; something in between is corrupt
            raise VideoUnreadableError("decode_failed", str(exc), video_id=video_id) from exc
    plans = scenes.plan_clips(
        video_id,
        detected,
        min_clip_s=settings.min_clip_s,
        max_clip_s=settings.max_clip_s,
        long_scene_policy=settings.long_scene_policy,
    )
    result = SplitResult()
    for plan in plans:
        if plan.kept:
            result.candidates.append(_candidate(uploaded, info, plan, settings))
        else:
            result.rejections.append(_scene_rejection(uploaded, info, plan, settings))
    log.info(
        "video %s: %d scene(s), %d candidate clip(s), %d dropped",
        video_id,
        len(detected),
        len(result.candidates),
        len(result.rejections),
    )
    return result


def split_video(uploaded: events_pb2.VideoUploaded, settings: FilterServiceSettings, storage: Storage) -> SplitResult:
    """Applies the metadata filter, then splits the video into scenes and plans its clips.

    Raises InvalidVideoEventError for an event without id or URI, and VideoUnreadableError when the
    store has no such video or it does not decode.
    """
    _require_fields(uploaded)
    # The gateway probed the upload: with its dimensions the metadata rules run before the video is
    # fetched (a download from S3); without them the filter probes the file itself first.
    metadata_checked = _has_dimensions(uploaded)
    if metadata_checked:
        verdict = check_metadata(uploaded, uploaded.info, settings)
        if verdict is not None:
            return SplitResult(rejections=[verdict])
    try:
        with storage.local_path(uploaded.storage_uri) as path:
            return _split_local_video(uploaded, path, settings, metadata_checked=metadata_checked)
    except (StorageError, FileNotFoundError) as exc:
        # S3 throttling, credentials or outage stay botocore errors: worth the bus's retries
        raise VideoUnreadableError(VideoUnreadableError.NOT_FOUND, str(exc), video_id=uploaded.video_id) from exc


def _record_verdicts(result: SplitResult) -> None:
    for candidate in result.candidates:
        metrics.CLIP_VERDICTS.labels(STAGE.name, scenes.STAGE, "candidate", "passed").inc()
        log.debug("candidate %s", candidate.span.clip_id)
    for rejection in result.rejections:
        metrics.CLIP_VERDICTS.labels(STAGE.name, rejection.stage, "rejected", rejection.reason_code).inc()


def make_handler(settings: FilterServiceSettings, storage: Storage | None = None) -> Handler:
    """The Kafka handler for haic.videos.v1; checks the scene settings now rather than per message."""
    scenes.validate_settings(settings)
    store = storage if storage is not None else open_storage(settings)

    def process(uploaded: events_pb2.VideoUploaded) -> list[Output]:
        result = split_video(uploaded, settings, store)
        _record_verdicts(result)
        return result.outputs(uploaded.video_id)

    return stage_handler(STAGE, process)


class FilterServicer(filter_pb2_grpc.FilterServiceServicer):
    """SplitVideo over gRPC: the same operation as the Kafka worker, answered synchronously."""

    def __init__(self, settings: FilterServiceSettings, storage: Storage | None = None) -> None:
        scenes.validate_settings(settings)
        self._settings = settings
        self._storage = storage if storage is not None else open_storage(settings)

    @maps_errors
    def SplitVideo(  # the name is fixed by the generated servicer
        self, request: filter_pb2.SplitVideoRequest, context: grpc.ServicerContext
    ) -> filter_pb2.SplitVideoResponse:
        if not request.HasField("video"):
            raise InvalidRequestError("SplitVideoRequest.video is required")
        result = split_video(request.video, self._settings, self._storage)
        return filter_pb2.SplitVideoResponse(candidates=result.candidates, rejections=result.rejections)
