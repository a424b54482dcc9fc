"""The topics of the pipeline and the protobuf message each one carries (DESIGN.md, Flow)."""

from __future__ import annotations

from google.protobuf.message import Message

from haic.v1 import events_pb2

VIDEOS = "haic.videos.v1"
CLIPS_CANDIDATE = "haic.clips.candidate.v1"
CLIPS_ACCEPTED = "haic.clips.accepted.v1"
CLIPS_REJECTED = "haic.clips.rejected.v1"
CAPTIONS = "haic.captions.v1"
QA = "haic.qa.v1"
SCORES = "haic.scores.v1"
# People's reviews of captions and QA from the review desk (services/gateway/review): part of the dataset.
REVIEWS = "haic.reviews.v1"
DEADLETTER = "haic.deadletter.v1"

MESSAGE_TYPES: dict[str, type[Message]] = {
    VIDEOS: events_pb2.VideoUploaded,
    CLIPS_CANDIDATE: events_pb2.ClipCandidate,
    CLIPS_ACCEPTED: events_pb2.ClipVerdict,
    CLIPS_REJECTED: events_pb2.ClipVerdict,
    CAPTIONS: events_pb2.Caption,
    QA: events_pb2.QASet,
    SCORES: events_pb2.ScoreRecord,
    REVIEWS: events_pb2.Review,
    DEADLETTER: events_pb2.DeadLetter,
}

ALL_TOPICS: tuple[str, ...] = tuple(MESSAGE_TYPES)

# Retention, chosen per topic. The topics are the dataset: the catalog is rebuilt from them, and `haic eval`
# and `haic export` read them, so nothing the pipeline produced expires. Not compaction: the key is the video
# id (one video's events stay ordered on one partition), and a video has many clips, so compacting by key
# would keep one clip per video. A topic grows by about a kilobyte or two per clip.
KEEP_FOREVER: dict[str, str] = {"retention.ms": "-1", "retention.bytes": "-1"}
DATASET_TOPICS: tuple[str, ...] = (
    VIDEOS,
    CLIPS_CANDIDATE,
    CLIPS_ACCEPTED,
    CLIPS_REJECTED,
    CAPTIONS,
    QA,
    SCORES,
    REVIEWS,
)


def topic_config(topic: str, deadletter_retention_ms: int) -> dict[str, str]:
    """The configuration a pipeline topic is created (and kept) with. Dead letters are diagnostics whose
    input stays on its own topic for good, so they expire after HAIC_DEADLETTER_RETENTION_DAYS."""
    if topic == DEADLETTER:
        return {"retention.ms": str(deadletter_retention_ms), "retention.bytes": "-1"}
    if topic in DATASET_TOPICS:
        return dict(KEEP_FOREVER)
    raise UnknownTopicError(f"no retention is chosen for topic {topic!r}")


def partition_count(topic: str, topic_partitions: int, pose_workers: int) -> int:
    """The partitions a topic is created with: HAIC_TOPIC_PARTITIONS, and for the pose stage's input a multiple of
    HAIC_POSE_WORKERS at least that large. A group gives each partition to one member, so 3 partitions over two
    pose workers split the clips 2:1 and the stage ran at the pace of the busier worker; 4 split them evenly."""
    if topic != CLIPS_CANDIDATE or pose_workers <= 1:
        return topic_partitions
    return -(-topic_partitions // pose_workers) * pose_workers


class UnknownTopicError(KeyError):
    """A topic outside the pipeline's contract."""


def message_type(topic: str) -> type[Message]:
    try:
        return MESSAGE_TYPES[topic]
    except KeyError:
        raise UnknownTopicError(f"no message type is registered for topic {topic!r}") from None
