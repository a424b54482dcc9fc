from haic.v1 import events_pb2 as _events_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class GenerateRequest(_message.Message):
    __slots__ = ("caption", "per_category")
    CAPTION_FIELD_NUMBER: _ClassVar[int]
    PER_CATEGORY_FIELD_NUMBER: _ClassVar[int]
    caption: _events_pb2.Caption
    per_category: int
    def __init__(self, caption: _Optional[_Union[_events_pb2.Caption, _Mapping]] = ..., per_category: _Optional[int] = ...) -> None: ...

class GenerateResponse(_message.Message):
    __slots__ = ("qa", "dropped")
    QA_FIELD_NUMBER: _ClassVar[int]
    DROPPED_FIELD_NUMBER: _ClassVar[int]
    qa: _events_pb2.QASet
    dropped: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, qa: _Optional[_Union[_events_pb2.QASet, _Mapping]] = ..., dropped: _Optional[_Iterable[str]] = ...) -> None: ...
