from haic.v1 import events_pb2 as _events_pb2
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class AnalyzeClipRequest(_message.Message):
    __slots__ = ("candidate",)
    CANDIDATE_FIELD_NUMBER: _ClassVar[int]
    candidate: _events_pb2.ClipCandidate
    def __init__(self, candidate: _Optional[_Union[_events_pb2.ClipCandidate, _Mapping]] = ...) -> None: ...

class AnalyzeClipResponse(_message.Message):
    __slots__ = ("verdict",)
    VERDICT_FIELD_NUMBER: _ClassVar[int]
    verdict: _events_pb2.ClipVerdict
    def __init__(self, verdict: _Optional[_Union[_events_pb2.ClipVerdict, _Mapping]] = ...) -> None: ...
