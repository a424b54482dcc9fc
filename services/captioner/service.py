"""The captioner: one accepted clip in, one judged caption in HAIC's format out, for Kafka and gRPC alike."""

from __future__ import annotations

import logging
import time
from pathlib import Path

import av.error
import grpc

from haic.v1 import captioner_pb2, captioner_pb2_grpc, events_pb2
from services.captioner import pose_grounded
from services.captioner.judge import MALFORMED_OUTPUT, judge_caption
from services.captioner.llm_score import score_caption
from services.captioner.mllm import MllmCaptioner
from services.core import metrics, topics, topology
from services.core.bus import ClipPoisonError, Handler, Output
from services.core.grpc_server import maps_errors
from services.core.llm import ChatEndpoint
from services.core.service import stage_handler
from services.core.settings import CaptionerBackend, CaptionerServiceSettings
from services.core.storage import Storage, StorageError
from services.core.video import VideoUnreadableError

log = logging.getLogger(__name__)

STAGE = topology.stage("captioner")


class InvalidClipError(ClipPoisonError):
    """The event is not an accepted clip with tracks and a readable video."""


class ClipCaptioner:
    """Captions with the configured backend, then judges the caption against the clip's pose evidence."""

    def __init__(
        self, settings: CaptionerServiceSettings, storage: Storage, endpoint: ChatEndpoint | None = None
    ) -> None:
        """`endpoint`: the OpenAI-compatible endpoint for the MLLM backend and the LLM score (made from the
        settings when either is on and none is given)."""
        self.settings = settings
        self.storage = storage
        wants_endpoint = settings.captioner_backend == CaptionerBackend.mllm or settings.judge_llm_score
        self.endpoint = (endpoint or ChatEndpoint(settings)) if wants_endpoint else None
        self.mllm = (
            MllmCaptioner(settings, self.endpoint)
            if self.endpoint is not None and settings.captioner_backend == CaptionerBackend.mllm
            else None
        )
        backend = self.mllm.backend if self.mllm is not None else pose_grounded.BACKEND
        for verdict in ("passed", "failed"):  # from zero, so the judge pass rate has both series at once
            metrics.CAPTIONS.labels(backend, verdict)

    def close(self) -> None:
        if self.endpoint is not None:
            self.endpoint.close()

    def caption(self, clip: events_pb2.ClipVerdict) -> events_pb2.Caption:
        clip_id = clip.span.clip_id
        if clip.verdict != events_pb2.VERDICT_ACCEPTED or not clip_id:
            raise InvalidClipError(clip_id, "only accepted clips are captioned")
        tracks = list(clip.dense_tracks) or list(clip.tracks)
        if not tracks or clip.info.width <= 0 or clip.info.height <= 0:
            raise InvalidClipError(clip_id, "the clip has no tracks or no video info")
        started = time.perf_counter()
        try:
            with self.storage.local_path(clip.storage_uri) as path:
                caption = self._caption_and_judge(clip, tracks, path)
        except (StorageError, FileNotFoundError) as exc:
            raise VideoUnreadableError(VideoUnreadableError.NOT_FOUND, str(exc), clip_id=clip_id) from exc
        except av.error.FFmpegError as exc:
            raise VideoUnreadableError("decode_failed", str(exc), clip_id=clip_id) from exc
        metrics.CAPTION_SECONDS.labels(caption.backend).observe(time.perf_counter() - started)
        metrics.CAPTIONS.labels(caption.backend, "passed" if caption.judgement.passed else "failed").inc()
        log.info("clip %s captioned (%s, judge %s)", clip_id, caption.backend, caption.judgement.passed)
        return caption

    def _caption_and_judge(
        self, clip: events_pb2.ClipVerdict, tracks: list[events_pb2.PersonTrack], video: Path
    ) -> events_pb2.Caption:
        reference, attributes, frames = None, None, None
        malformed: tuple[str, ...] = ()
        if self.mllm is None:
            caption = pose_grounded.caption_clip(clip, video, self.settings.appearance_frames, self.settings)
            grounding = caption
        else:
            answer = self.mllm.caption_clip(clip, video)
            caption, grounding, frames = answer.caption, answer.grounding, answer.frames
            # The model's counts are checked against the pose-grounded counts of the same clip.
            reference = {s.track_id: list(s.actions) for s in grounding.subjects}
            attributes = {s.track_id: s.attributes for s in grounding.subjects}
            malformed = answer.errors if answer.malformed else ()
        judgement = judge_caption(
            caption,
            tracks,
            clip.info.width,
            clip.info.height,
            still_l1=self.settings.judge_still_keypoint_l1,
            min_keypoint_score=self.settings.min_keypoint_score,
            count_tolerance=self.settings.judge_count_tolerance,
            reference_actions=reference,
            reference_attributes=attributes,
            clip_values=clip.values,
            split_max_gap_s=self.settings.judge_split_max_gap_s,
        )
        if malformed:
            # Kept with the raw answer as its text, for inspection; never exported for training.
            judgement.passed = False
            judgement.reasons.insert(0, MALFORMED_OUTPUT)
            judgement.reasons.extend(malformed)
        elif self.settings.judge_llm_score and self.endpoint is not None:
            score_caption(self.endpoint, self.settings, clip, video, caption, grounding, judgement, frames)
        caption.judgement.CopyFrom(judgement)
        return caption


def make_handler(captioner: ClipCaptioner) -> Handler:
    def process(clip: events_pb2.ClipVerdict) -> list[Output]:
        return [Output(topics.CAPTIONS, clip.video_id, captioner.caption(clip))]

    return stage_handler(STAGE, process)


class CaptionerServicer(captioner_pb2_grpc.CaptionerServiceServicer):
    def __init__(self, captioner: ClipCaptioner) -> None:
        self._captioner = captioner

    @maps_errors
    def Caption(  # the name is fixed by the generated servicer
        self, request: captioner_pb2.CaptionRequest, context: grpc.ServicerContext
    ) -> captioner_pb2.CaptionResponse:
        return captioner_pb2.CaptionResponse(caption=self._captioner.caption(request.clip))
