"""The pose stage: human-existence and human-action filters of one candidate clip, for Kafka and gRPC alike.

`ClipAnalyzer.analyze` is the whole operation:
1. plan the sampled frames (16 uniform for existence, 1 fps for action, 4 fps dense for accepted clips);
2. decode the existence and action frames in one seeking pass, each frame once;
3. detect people on them (Triton ``person_detector``) and apply the existence rule;
4. estimate keypoints on the action frames (Triton ``pose_estimator``), link tracklets, apply the
   motion rules;
5. for an accepted clip, decode the remaining dense frames and build the captioner's dense tracks,
   each with the gender and age group its face shows (face_attributes; empty when it cannot tell).
A rejected clip stops at the first rule it fails, so most clips cost only detection on 26 frames; and
with existence_early_stop (the default) a clip with an existence frame where the models offer fewer than
min_people candidates stops there, in the decoding pass, with the full check's verdict (empty footage, the
bulk of a crawl, then costs one frame's detection: bench/rejection_cost.py). Such a clip is rejected even
where frames after that one would not decode (the full check reported it unreadable).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from pathlib import Path

import av.error
import grpc
import numpy as np

from haic.v1 import events_pb2, pose_pb2, pose_pb2_grpc
from services.core import metrics, topics, topology
from services.core.bus import Handler, Output, now_timestamp
from services.core.grpc_server import InvalidRequestError, maps_errors
from services.core.service import stage_handler
from services.core.settings import PoseServiceSettings
from services.core.storage import Storage, StorageError
from services.core.video import VideoInfo, VideoReader, VideoUnreadableError
from services.pose.errors import InvalidClipEventError
from services.pose.estimator import FrameCandidates, PoseEstimator
from services.pose.face_attributes import FaceAttributeEstimator, FaceSettings, PersonAttributes
from services.pose.filters import (
    EXISTENCE_STAGE,
    FilterResult,
    existence_reason_code,
    human_action,
    human_existence,
)
from services.pose.sampling import SamplePlan, plan_samples
from services.pose.tracking import (
    DoubtRules,
    Observation,
    StitchRules,
    Track,
    build_tracks,
    bytetrack_tracklets,
    stitch_tracks,
    torso_appearance,
    without_doubtful_tracks,
)

log = logging.getLogger(__name__)

STAGE = topology.stage("pose")


class ClipAnalyzer:
    """Runs the pose stage on candidate clips with one estimator (backed by Triton in the service)."""

    def __init__(self, settings: PoseServiceSettings, storage: Storage, estimator: PoseEstimator) -> None:
        self.settings = settings
        self.storage = storage
        self.estimator = estimator
        self.faces = (
            FaceAttributeEstimator(estimator.backend, FaceSettings.from_settings(settings))
            if settings.face_attributes
            else None
        )
        self.analysed = 0
        self.accepted = 0

    def analyze(self, candidate: events_pb2.ClipCandidate) -> events_pb2.ClipVerdict:
        _require_fields(candidate)
        clip_id = candidate.span.clip_id
        try:
            with self.storage.local_path(candidate.storage_uri) as path:
                verdict = self._analyze_local(candidate, path)
        except (StorageError, FileNotFoundError) as exc:
            # S3 throttling, credentials or outage stay botocore errors: worth the bus's retries
            raise VideoUnreadableError(VideoUnreadableError.NOT_FOUND, str(exc), clip_id=clip_id) from exc
        except av.error.FFmpegError as exc:
            raise VideoUnreadableError("decode_failed", str(exc), clip_id=clip_id) from exc
        self._record(verdict)
        return verdict

    # --- the stages ---
    def _analyze_local(self, candidate: events_pb2.ClipCandidate, path: Path) -> events_pb2.ClipVerdict:
        s = self.settings
        span, info = candidate.span, VideoInfo.from_proto(candidate.info)
        plan = plan_samples(span.start_s, span.end_s, info.fps, s.existence_frames, s.action_fps, s.dense_track_fps)
        with VideoReader(path, info) as reader:
            # One pass for every frame any rule or the dense tracks may need: a second pass would decode
            # the clip's GOPs again, which costs more than converting the extra frames up front.
            frames, found, empty = self._decode_and_screen(reader, plan, span.clip_id)
            if empty is not None:
                return self._certainly_empty(candidate, plan, empty, found[empty], reader.frames_decoded)
            detections = dict(
                zip(
                    plan.curation,
                    self.estimator.detect([frames[t] for t in plan.curation], [found.get(t) for t in plan.curation]),
                    strict=True,
                )
            )
            existence = human_existence(
                [_boxes(detections[t], self._scale(frames[t], info)) for t in plan.existence],
                info.width,
                info.height,
                min_people=s.min_people,
                max_people=s.max_people,
                min_area_ratio=s.min_person_area_ratio,
            )
            values = {**existence.values, "sampled_frames": float(len(plan.curation))}
            metrics.PEOPLE_PER_CLIP.labels(STAGE.name).observe(existence.values["people_max"])
            counted = [
                events_pb2.FramePeople(t_s=t, people=people, coverage=coverage)
                for t, (people, coverage) in zip(plan.existence, existence.per_frame, strict=True)
            ]
            if not existence.passed:
                return self._verdict(candidate, existence, values, reader.frames_decoded, counted)

            people = self._people(plan.action, frames, detections, info)
            tracks = build_tracks([people[t] for t in plan.action], s.track_min_iou)
            action = human_action(
                tracks,
                info.width,
                info.height,
                min_keypoint_l1=s.min_keypoint_l1,
                min_affine_residual=s.min_affine_residual,
                min_keypoint_score=s.min_keypoint_score,
            )
            values.update(action.values)
            if not action.passed:
                return self._verdict(candidate, action, values, reader.frames_decoded, counted)

            # Accepted: the captioner gets denser tracks. Only accepted clips pay for their inference.
            dense_only = self.estimator.detect([frames[t] for t in plan.dense_only])
            detections.update(zip(plan.dense_only, dense_only, strict=True))
            people.update(self._people([t for t in plan.dense if t not in people], frames, detections, info))
            # a box seen in one sample only is a false detection or a passer-by: no track to caption
            dense_tracks = [t for t in self._dense_tracks(plan.dense, people, frames, info) if len(t.samples) > 1]
            values["dense_frames"] = float(len(plan.dense))
            faces = self._face_attributes(frames, dense_tracks, info)
            return self._verdict(candidate, action, values, reader.frames_decoded, counted, tracks, dense_tracks, faces)

    def _face_attributes(
        self, frames: dict[float, np.ndarray], tracks: Sequence[Track], info: VideoInfo
    ) -> dict[int, PersonAttributes]:
        """Gender and age group of each dense track from its face (keypoints are in source pixels)."""
        if self.faces is None:
            return {}
        return self.faces.attributes(frames, tracks, (info.width, info.height))

    def _dense_tracks(
        self,
        times: Sequence[float],
        people: dict[float, list[Observation]],
        frames: dict[float, np.ndarray],
        info: VideoInfo,
    ) -> list[Track]:
        """The captioner's tracks, one per person: ByteTrack tracklets stitched across gaps by position and
        torso appearance, less the tracks that are no person (never sure, rigid: services/pose/tracking.py)."""
        s = self.settings
        tracklets = bytetrack_tracklets(
            times, [people[t] for t in times], min_iou=s.track_min_iou, max_lost_s=s.dense_track_max_gap_s
        )
        appearance = torso_appearance(frames, tracklets, (info.width, info.height), s.min_keypoint_score)
        rules = StitchRules.from_settings(s)
        doubt = DoubtRules(s.min_person_score, s.doubtful_track_min_residual, s.min_keypoint_score)
        return without_doubtful_tracks(stitch_tracks(tracklets, appearance, rules), doubt, (info.width, info.height))

    def _decode_and_screen(
        self, reader: VideoReader, plan: SamplePlan, clip_id: str
    ) -> tuple[dict[float, np.ndarray], dict[float, FrameCandidates], float | None]:
        """Every frame of the plan, in one pass; each existence frame's detector and multipose outputs as it
        is decoded (`detect` reuses them, so an accepted clip pays for nothing twice).

        With existence_early_stop the pass stops at the first existence frame whose candidates are fewer
        than min_people: no rule after can count more people there than the models offered, so that frame
        fails the existence rule whatever the others hold, and "too few people" is the rule's first
        reason. The clip is then rejected with the verdict the full check gives, having decoded only the
        frames up to there: at a crawl's yield most clips are empty footage that stops at the first one.
        Returns the frames, the screened candidates, and the time of the certainly empty frame (or None).
        """
        s = self.settings
        screen = s.existence_early_stop and s.min_people > 0
        existence = set(plan.existence)
        frames: dict[float, np.ndarray] = {}
        found: dict[float, FrameCandidates] = {}
        for t, frame in reader.frames_at(plan.all, width=self._decode_width(reader.info)):
            frames[t] = frame
            if screen and t in existence:
                found[t] = self.estimator.candidates([frame])[0]
                if found[t].most_people < s.min_people:
                    return frames, found, t
        if len(frames) != len(plan.all):
            missing = sorted(set(plan.all) - set(frames))
            raise VideoUnreadableError("truncated", f"no frame at {missing[:3]} s", clip_id=clip_id)
        return frames, found, None

    def _certainly_empty(
        self,
        candidate: events_pb2.ClipCandidate,
        plan: SamplePlan,
        t: float,
        found: FrameCandidates,
        frames_decoded: int,
    ) -> events_pb2.ClipVerdict:
        """The existence rejection of a clip whose existence frame at t holds too few people for certain.

        Verdict, stage and reason code are the full check's; the values cover what was examined (the
        people of the other frames were never counted, so people_max and coverage are not claimed).
        """
        s = self.settings
        examined = sorted(x for x in plan.existence if x <= t)
        result = FilterResult(
            False,
            EXISTENCE_STAGE,
            reason_code=existence_reason_code(s.min_people),
            reason=(
                f"the sampled frame at {t:.2f} s has fewer than {s.min_people} person(s): the check stopped "
                f"there, {len(examined)} of {len(plan.existence)} frames examined"
            ),
        )
        values = {
            "existence_frames": float(len(plan.existence)),
            "existence_frames_examined": float(len(examined)),
            "min_people": float(s.min_people),
            "max_people": float(s.max_people),
            "min_person_area_ratio": s.min_person_area_ratio,
            "sampled_frames": float(len(examined)),
        }
        counted = []
        if found.most_people == 0:
            # nobody at all there: the lowest count and coverage of the full check, exactly
            values.update(people_min=0.0, coverage_min=0.0)
            counted.append(events_pb2.FramePeople(t_s=t, people=0, coverage=0.0))
        return self._verdict(candidate, result, values, frames_decoded, counted)

    def _decode_width(self, info: VideoInfo) -> int | None:
        """Large sources are decoded downscaled (FFmpeg's scaler); results are mapped back to source pixels."""
        return self.settings.pose_decode_width if info.width > self.settings.pose_decode_width else None

    @staticmethod
    def _scale(frame: np.ndarray, info: VideoInfo) -> np.ndarray:
        return np.array([info.width / frame.shape[1], info.height / frame.shape[0]], dtype=np.float64)

    def _people(
        self,
        times: Sequence[float],
        frames: dict[float, np.ndarray],
        detections: dict[float, list],
        info: VideoInfo,
    ) -> dict[float, list[Observation]]:
        """Keypoints for the people detected at each time, in the source video's pixels."""
        estimated = self.estimator.estimate([frames[t] for t in times], [detections[t] for t in times])
        people: dict[float, list[Observation]] = {}
        for t, persons in zip(times, estimated, strict=True):
            scale = self._scale(frames[t], info)
            people[t] = [
                Observation(
                    t,
                    np.asarray(p.box, dtype=np.float64) * np.tile(scale, 2),
                    float(p.score),
                    np.hstack([np.asarray(p.keypoints)[:, :2] * scale, np.asarray(p.keypoints)[:, 2:3]]),
                )
                for p in persons
            ]
        return people

    def _verdict(
        self,
        candidate: events_pb2.ClipCandidate,
        result: FilterResult,
        values: dict[str, float],
        frames_decoded: int,
        existence_frames: Sequence[events_pb2.FramePeople],
        tracks: Sequence[Track] = (),
        dense_tracks: Sequence[Track] = (),
        faces: Mapping[int, PersonAttributes] | None = None,
    ) -> events_pb2.ClipVerdict:
        metrics.FRAMES_DECODED.labels(STAGE.name).observe(frames_decoded)
        values = {**values, "frames_decoded": float(frames_decoded)}
        return events_pb2.ClipVerdict(
            video_id=candidate.video_id,
            span=candidate.span,
            verdict=events_pb2.VERDICT_ACCEPTED if result.passed else events_pb2.VERDICT_REJECTED,
            stage=result.stage,
            reason_code=result.reason_code,
            reason=result.reason or "a person acts: keypoints move beyond any camera motion",
            values=values,
            storage_uri=candidate.storage_uri,
            info=candidate.info,
            description=candidate.description,
            # a box seen in one sample only is a false detection or a passer-by: no track to caption
            tracks=[_track_proto(t) for t in tracks if len(t.samples) > 1],
            dense_tracks=[_track_proto(t, (faces or {}).get(t.track_id)) for t in dense_tracks],
            produced_at=now_timestamp(),
            existence_frames=existence_frames,
        )

    def _record(self, verdict: events_pb2.ClipVerdict) -> None:
        accepted = verdict.verdict == events_pb2.VERDICT_ACCEPTED
        self.analysed += 1
        self.accepted += accepted
        metrics.CLIP_VERDICTS.labels(
            STAGE.name, verdict.stage, "accepted" if accepted else "rejected", verdict.reason_code or "passed"
        ).inc()
        metrics.ACCEPTED_RATIO.labels(STAGE.name).set(self.accepted / self.analysed)
        log.info(
            "clip %s %s at %s %s (%d track(s), %d frames decoded)",
            verdict.span.clip_id,
            "accepted" if accepted else "rejected",
            verdict.stage,
            verdict.reason_code,
            len(verdict.tracks),
            int(verdict.values.get("frames_decoded", 0)),
        )


def _require_fields(candidate: events_pb2.ClipCandidate) -> None:
    clip_id = candidate.span.clip_id
    if not candidate.video_id or not clip_id:
        raise InvalidClipEventError(clip_id, "the event has no video_id or span.clip_id")
    if not candidate.storage_uri:
        raise InvalidClipEventError(clip_id, "the event has no storage_uri")
    if candidate.span.end_s <= candidate.span.start_s:
        raise InvalidClipEventError(clip_id, f"empty span [{candidate.span.start_s}, {candidate.span.end_s})")
    info = candidate.info
    if info.width <= 0 or info.height <= 0 or info.fps <= 0:
        raise InvalidClipEventError(clip_id, "the event has no video info (width, height, fps)")


def _boxes(detections: list, scale: np.ndarray) -> np.ndarray:
    if not detections:
        return np.zeros((0, 4))
    return np.array([np.asarray(d.box, dtype=np.float64) for d in detections]) * np.tile(scale, 2)


def _attributes_proto(attributes: PersonAttributes | None) -> events_pb2.PersonAttributes | None:
    if attributes is None:
        return None
    return events_pb2.PersonAttributes(
        gender=attributes.gender,
        gender_confidence=attributes.gender_confidence,
        age_group=attributes.age_group,
        age_group_confidence=attributes.age_group_confidence,
        age_years=attributes.age_years,
        faces_seen=attributes.faces_seen,
        samples_tried=attributes.samples_tried,
        unknown_reason=attributes.reason,
    )


def _track_proto(track: Track, attributes: PersonAttributes | None = None) -> events_pb2.PersonTrack:
    return events_pb2.PersonTrack(
        track_id=track.track_id,
        attributes=_attributes_proto(attributes),
        samples=[
            events_pb2.PoseSample(
                t_s=o.t_s,
                box=events_pb2.Box(
                    x1=float(o.box[0]), y1=float(o.box[1]), x2=float(o.box[2]), y2=float(o.box[3]), score=o.score
                ),
                keypoints=[events_pb2.Keypoint(x=float(x), y=float(y), score=float(c)) for x, y, c in o.keypoints],
            )
            for o in track.samples
        ],
    )


def make_handler(analyzer: ClipAnalyzer) -> Handler:
    """The Kafka handler for haic.clips.candidate.v1."""

    def process(candidate: events_pb2.ClipCandidate) -> list[Output]:
        verdict = analyzer.analyze(candidate)
        topic = topics.CLIPS_ACCEPTED if verdict.verdict == events_pb2.VERDICT_ACCEPTED else topics.CLIPS_REJECTED
        return [Output(topic, candidate.video_id, verdict)]

    return stage_handler(STAGE, process)


class PoseServicer(pose_pb2_grpc.PoseServiceServicer):
    """AnalyzeClip over gRPC: the same operation as the Kafka worker, answered synchronously."""

    def __init__(self, analyzer: ClipAnalyzer) -> None:
        self._analyzer = analyzer

    @maps_errors
    def AnalyzeClip(  # the name is fixed by the generated servicer
        self, request: pose_pb2.AnalyzeClipRequest, context: grpc.ServicerContext
    ) -> pose_pb2.AnalyzeClipResponse:
        if not request.HasField("candidate"):
            raise InvalidRequestError("AnalyzeClipRequest.candidate is required")
        verdict = self._analyzer.analyze(request.candidate)
        return pose_pb2.AnalyzeClipResponse(verdict=verdict)
