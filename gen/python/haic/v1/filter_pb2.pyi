from haic.v1 import events_pb2 as _events_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class SplitVideoRequest(_message.Message):
    __slots__ = ("video",)
    VIDEO_FIELD_NUMBER: _ClassVar[int]
    video: _events_pb2.VideoUploaded
    def __init__(self, video: _Optional[_Union[_events_pb2.VideoUploaded, _Mapping]] = ...) -> None: ...

class SplitVideoResponse(_message.Message):
    __slots__ = ("candidates", "rejections")
    CANDIDATES_FIELD_NUMBER: _ClassVar[int]
    REJECTIONS_FIELD_NUMBER: _ClassVar[int]
    candidates: _containers.RepeatedCompositeFieldContainer[_events_pb2.ClipCandidate]
    rejections: _containers.RepeatedCompositeFieldContainer[_events_pb2.ClipVerdict]
    def __init__(self, candidates: _Optional[_Iterable[_Union[_events_pb2.ClipCandidate, _Mapping]]] = ..., rejections: _Optional[_Iterable[_Union[_events_pb2.ClipVerdict, _Mapping]]] = ...) -> None: ...
