"""Response bodies of the gateway's HTTP API, built from catalog rows."""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping
from datetime import datetime
from typing import Any

from pydantic import BaseModel, Field

from haic.v1 import events_pb2
from services.core.contracts import pydantic_model_of
from services.gateway.catalog import VideoView
from services.gateway.catalog_schema import utc, video_info
from services.gateway.status import ClipStatus, VideoStatus


def status_url(video_id: str) -> str:
    return f"/v1/videos/{video_id}"


class ErrorDetail(BaseModel):
    code: str = Field(description="Machine-readable reason, e.g. not_a_video, truncated, too_large")
    message: str
    video_id: str | None = None


class ErrorBody(BaseModel):
    detail: ErrorDetail


class ValidationIssue(BaseModel):
    loc: list[str | int]
    msg: str
    type: str


class ValidationErrorBody(BaseModel):
    """FastAPI's answer to a request that does not match the document (422)."""

    detail: list[ValidationIssue]


class MalformedBody(BaseModel):
    """FastAPI's answer to a body that cannot be parsed at all (400)."""

    detail: str


class UploadAccepted(BaseModel):
    video_id: str
    status: VideoStatus
    status_url: str
    duplicate: bool = Field(description="True when identical content was uploaded before")
    reannounced: bool = Field(
        False,
        description="True when the video was known but unsettled and silent, so it was announced again "
        "(the pipeline is idempotent: a clip that was done is not done twice in the results)",
    )


# A batch names the videos of one ingestion run, for the yield report (GET /v1/report?batch=).
BATCH_PATTERN = r"^[A-Za-z0-9_.:-]{1,128}$"
MAX_EXTERNAL_ID_CHARS = 512
MAX_DESCRIPTION_CHARS = 16 * 1024


class ReferenceRegistration(BaseModel):
    """A video read in place by the gateway (server-side copy): nothing is sent but its reference."""

    uri: str = Field(
        min_length=1,
        max_length=4096,
        description="An absolute path or file:// URI inside an allowed root, s3://bucket/key in an allowed bucket, "
        "or an http(s) URL under an allowed prefix (HAIC_REFERENCE_ROOTS)",
    )
    description: str = Field("", max_length=MAX_DESCRIPTION_CHARS, description="What happens in the video")
    source_url: str = Field("", max_length=4096, description="Where the video comes from (http/https)")
    external_id: str = Field(
        "",
        max_length=MAX_EXTERNAL_ID_CHARS,
        description="The caller's id of the video (a manifest row's id): registering it again answers 200 "
        "with the same video without reading the reference",
    )
    batch: str = Field("", pattern=r"^$|" + BATCH_PATTERN, description="The batch (ingestion run) it belongs to")


# The probed properties as the API shows them: haic.v1.VideoInfo's fields, derived, so they cannot drift.
VideoInfoOut = pydantic_model_of(events_pb2.VideoInfo)


class Rejection(BaseModel):
    stage: str
    reason_code: str
    reason: str
    values: dict[str, float]


class ClipOut(BaseModel):
    clip_id: str
    clip_index: int
    scene_index: int
    start_s: float
    end_s: float
    verdict: ClipStatus
    stage: str = Field(description="Rejecting stage, or the furthest stage the clip passed")
    reason_code: str
    reason: str
    values: dict[str, float]

    @classmethod
    def from_row(cls, row: Mapping[Any, Any]) -> ClipOut:
        return cls(
            clip_id=row["clip_id"],
            clip_index=row["clip_index"] or 0,
            scene_index=row["scene_index"] or 0,
            start_s=row["start_s"] or 0.0,
            end_s=row["end_s"] or 0.0,
            verdict=ClipStatus(row["verdict"]),
            stage=row["stage"],
            reason_code=row["reason_code"],
            reason=row["reason"],
            values=row["measured_values"] or {},
        )


class ClipDetail(ClipOut):
    video_id: str
    clip_count: int
    caption_text: str | None = None
    caption_judge_passed: bool | None = None
    qa_item_count: int | None = None
    score_average: float | None = None

    @classmethod
    def from_row(cls, row: Mapping[Any, Any]) -> ClipDetail:
        base = ClipOut.from_row(row).model_dump()
        return cls(
            **base,
            video_id=row["video_id"],
            clip_count=row["clip_count"] or 0,
            caption_text=row["caption_text"],
            caption_judge_passed=row["caption_judge_passed"],
            qa_item_count=row["qa_item_count"],
            score_average=row["score_average"],
        )


class DeadLetterOut(BaseModel):
    topic: str
    error: str
    error_type: str
    attempts: int
    service: str


class VideoSummary(BaseModel):
    video_id: str
    status: VideoStatus
    settled: bool
    description: str | None
    source_url: str | None
    sha256: str | None
    size_bytes: int | None
    clip_count: int | None
    created_at: datetime
    updated_at: datetime

    @classmethod
    def from_row(cls, row: Mapping[Any, Any]) -> VideoSummary:
        return cls(
            video_id=row["video_id"],
            status=VideoStatus(row["status"]),
            settled=bool(row["settled"]),
            description=row["description"] or None,
            source_url=row["source_url"] or None,
            sha256=row["sha256"],
            size_bytes=row["size_bytes"],
            clip_count=row["clip_count"],
            created_at=utc(row["created_at"]),
            updated_at=utc(row["updated_at"]),
        )


class VideoDetail(VideoSummary):
    info: VideoInfoOut | None = Field(  # type: ignore[valid-type]  # a model made from the proto
        description="Probed properties; null until the upload is known"
    )
    rejection: Rejection | None
    clips: list[ClipOut]
    dead_letters: list[DeadLetterOut]

    @classmethod
    def from_view(cls, view: VideoView) -> VideoDetail:
        row = view.video
        info = None
        if row["sha256"] is not None:
            probed = video_info(row)
            info = VideoInfoOut(**{name: getattr(probed, name) for name in VideoInfoOut.model_fields})
        clips = [ClipOut.from_row(clip) for clip in view.clips]
        return cls(
            **VideoSummary.from_row(row).model_dump(),
            info=info,
            rejection=_rejection(row, clips),
            clips=clips,
            dead_letters=[
                DeadLetterOut(
                    topic=letter["original_topic"],
                    error=letter["error"],
                    error_type=letter["error_type"],
                    attempts=letter["attempts"],
                    service=letter["service"],
                )
                for letter in view.dead_letters
            ],
        )


def _rejection(row: Mapping[Any, Any], clips: list[ClipOut]) -> Rejection | None:
    """The video-level rejection, or a summary when the video is rejected because every clip was."""
    if row["rejection_stage"] is not None:
        return Rejection(
            stage=row["rejection_stage"],
            reason_code=row["rejection_reason_code"] or "",
            reason=row["rejection_reason"] or "",
            values=row["rejection_values"] or {},
        )
    if row["status"] != VideoStatus.rejected or not clips:
        return None
    by_reason = Counter(clip.reason_code or "unspecified" for clip in clips)
    stages = sorted({clip.stage for clip in clips})
    return Rejection(
        stage=",".join(stages),
        reason_code="all_clips_rejected",
        reason="every clip was rejected: " + ", ".join(f"{n} {code}" for code, n in by_reason.most_common()),
        values={code: float(n) for code, n in by_reason.items()},
    )


class VideoPage(BaseModel):
    items: list[VideoSummary]
    total: int
    limit: int
    offset: int


class Backlog(BaseModel):
    """How far the pipeline is behind: what `haic ingest` watches to hold back instead of flooding it."""

    stages: dict[str, int] = Field(description="Messages each stage's consumer group has yet to process")
    total: int = Field(description="The sum over the stages")
    unsettled_videos: int = Field(description="Videos in the catalog not settled yet")
