import datetime

from haic.v1 import events_pb2 as _events_pb2
from google.protobuf import timestamp_pb2 as _timestamp_pb2
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class WatchVideoRequest(_message.Message):
    __slots__ = ("video_id", "after_sequence")
    VIDEO_ID_FIELD_NUMBER: _ClassVar[int]
    AFTER_SEQUENCE_FIELD_NUMBER: _ClassVar[int]
    video_id: str
    after_sequence: int
    def __init__(self, video_id: _Optional[str] = ..., after_sequence: _Optional[int] = ...) -> None: ...

class VideoProgress(_message.Message):
    __slots__ = ("video_id", "sequence", "topic", "status", "recorded_at", "uploaded", "candidate", "verdict", "caption", "qa", "score", "dead_letter")
    VIDEO_ID_FIELD_NUMBER: _ClassVar[int]
    SEQUENCE_FIELD_NUMBER: _ClassVar[int]
    TOPIC_FIELD_NUMBER: _ClassVar[int]
    STATUS_FIELD_NUMBER: _ClassVar[int]
    RECORDED_AT_FIELD_NUMBER: _ClassVar[int]
    UPLOADED_FIELD_NUMBER: _ClassVar[int]
    CANDIDATE_FIELD_NUMBER: _ClassVar[int]
    VERDICT_FIELD_NUMBER: _ClassVar[int]
    CAPTION_FIELD_NUMBER: _ClassVar[int]
    QA_FIELD_NUMBER: _ClassVar[int]
    SCORE_FIELD_NUMBER: _ClassVar[int]
    DEAD_LETTER_FIELD_NUMBER: _ClassVar[int]
    video_id: str
    sequence: int
    topic: str
    status: str
    recorded_at: _timestamp_pb2.Timestamp
    uploaded: _events_pb2.VideoUploaded
    candidate: _events_pb2.ClipCandidate
    verdict: _events_pb2.ClipVerdict
    caption: _events_pb2.Caption
    qa: _events_pb2.QASet
    score: _events_pb2.ScoreRecord
    dead_letter: _events_pb2.DeadLetter
    def __init__(self, video_id: _Optional[str] = ..., sequence: _Optional[int] = ..., topic: _Optional[str] = ..., status: _Optional[str] = ..., recorded_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., uploaded: _Optional[_Union[_events_pb2.VideoUploaded, _Mapping]] = ..., candidate: _Optional[_Union[_events_pb2.ClipCandidate, _Mapping]] = ..., verdict: _Optional[_Union[_events_pb2.ClipVerdict, _Mapping]] = ..., caption: _Optional[_Union[_events_pb2.Caption, _Mapping]] = ..., qa: _Optional[_Union[_events_pb2.QASet, _Mapping]] = ..., score: _Optional[_Union[_events_pb2.ScoreRecord, _Mapping]] = ..., dead_letter: _Optional[_Union[_events_pb2.DeadLetter, _Mapping]] = ...) -> None: ...
