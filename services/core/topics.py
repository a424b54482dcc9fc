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
DEADLETTER = "haic.deadletter.v1"

MESSAGE_TYPES: dict[str, type[Message]] = {
    VIDEOS: events_pb2.VideoUploaded,
    CLIPS_CANDIDATE: events_pb2.ClipCandidate,
    CLIPS_ACCEPTED: events_pb2.ClipVerdict,
    CLIPS_REJECTED: events_pb2.ClipVerdict,
    CAPTIONS: events_pb2.Caption,
    QA: events_pb2.QASet,
    SCORES: events_pb2.ScoreRecord,
    DEADLETTER: events_pb2.DeadLetter,
}

ALL_TOPICS: tuple[str, ...] = tuple(MESSAGE_TYPES)


class UnknownTopicError(KeyError):
    """A topic outside the pipeline's contract."""


def message_type(topic: str) -> type[Message]:
    try:
        return MESSAGE_TYPES[topic]
    except KeyError:
        raise UnknownTopicError(f"no message type is registered for topic {topic!r}") from None
