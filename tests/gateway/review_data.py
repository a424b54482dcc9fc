"""A reviewable clip made by the real stages: the bundled juggling sample's recorded pose verdict
(tests/captioner/data/juggle_accepted.binpb, the real pose stage's output), captioned by the real
pose-grounded captioner and given QA items by the real template QA generator, in-process.

`reviewable_clip(settings)` stores the sample in the settings' store and returns the messages the pipeline
would have put on its topics for it; `publish(producer, clip)` puts them there, so a gateway's catalog
sees a clip exactly as after `haic up --submit-sample`. The review desk's API and browser tests use it.
"""

from __future__ import annotations

import hashlib
import shutil
from dataclasses import dataclass
from pathlib import Path

from haic.v1 import events_pb2
from services.captioner.service import ClipCaptioner
from services.core import topics
from services.core.bus import EventProducer, Output
from services.core.ids import video_id_from_sha256
from services.core.settings import Settings
from services.core.storage import open_storage
from services.qagen.service import ClipQAGenerator

REPO_ROOT = Path(__file__).resolve().parents[2]
SAMPLE = REPO_ROOT / "samples" / "juggle_one_person.mp4"
SAMPLE_DESCRIPTION = "A man juggles three balls in a park."
POSE_VERDICT = REPO_ROOT / "tests" / "captioner" / "data" / "juggle_accepted.binpb"


@dataclass(frozen=True)
class ReviewableClip:
    uploaded: events_pb2.VideoUploaded
    verdict: events_pb2.ClipVerdict
    caption: events_pb2.Caption
    qa: events_pb2.QASet

    @property
    def video_id(self) -> str:
        return self.uploaded.video_id

    @property
    def clip_id(self) -> str:
        return self.verdict.span.clip_id


def reviewable_clip(settings: Settings, description: str = SAMPLE_DESCRIPTION) -> ReviewableClip:
    """The sample as the pipeline leaves it: uploaded, accepted by pose, captioned (judge-passed) and given QA.

    `description` may be changed (e.g. to carry markup): it is the uploader's text, copied into every stage's
    message as the pipeline copies it."""
    sha256 = hashlib.sha256(SAMPLE.read_bytes()).hexdigest()
    video_id = video_id_from_sha256(sha256)
    storage = open_storage(settings)
    spooled = storage.spool_dir() / f"{video_id}.mp4"
    shutil.copyfile(SAMPLE, spooled)  # put_file moves what it stores
    storage_uri = storage.put_file(spooled, f"videos/{video_id}.mp4")
    uploaded = events_pb2.VideoUploaded(
        video_id=video_id,
        sha256=sha256,
        storage_uri=storage_uri,
        size_bytes=SAMPLE.stat().st_size,
        description=description,
    )
    verdict = events_pb2.ClipVerdict.FromString(POSE_VERDICT.read_bytes())
    verdict.video_id, verdict.storage_uri, verdict.description = video_id, storage_uri, description
    uploaded.info.CopyFrom(verdict.info)
    uploaded.uploaded_at.GetCurrentTime()
    caption = ClipCaptioner(settings, storage).caption(verdict)
    if not caption.judgement.passed:
        raise AssertionError(f"the sample's caption failed its judge: {list(caption.judgement.reasons)}")
    generator = ClipQAGenerator(settings)
    try:
        qa, _dropped = generator.generate(caption)
    finally:
        generator.close()
    return ReviewableClip(uploaded, verdict, caption, qa)


def publish(producer: EventProducer, clip: ReviewableClip) -> None:
    """The clip's messages on the pipeline's topics, in the pipeline's order, keyed by the video id."""
    producer.deliver(
        [
            Output(topics.VIDEOS, clip.video_id, clip.uploaded),
            Output(topics.CLIPS_ACCEPTED, clip.video_id, clip.verdict),
            Output(topics.CAPTIONS, clip.video_id, clip.caption),
            Output(topics.QA, clip.video_id, clip.qa),
        ]
    )
