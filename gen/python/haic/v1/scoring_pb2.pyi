from haic.v1 import events_pb2 as _events_pb2
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class EvaluateRequest(_message.Message):
    __slots__ = ("qa", "answerer", "setting")
    QA_FIELD_NUMBER: _ClassVar[int]
    ANSWERER_FIELD_NUMBER: _ClassVar[int]
    SETTING_FIELD_NUMBER: _ClassVar[int]
    qa: _events_pb2.QASet
    answerer: str
    setting: str
    def __init__(self, qa: _Optional[_Union[_events_pb2.QASet, _Mapping]] = ..., answerer: _Optional[str] = ..., setting: _Optional[str] = ...) -> None: ...

class EvaluateResponse(_message.Message):
    __slots__ = ("score",)
    SCORE_FIELD_NUMBER: _ClassVar[int]
    score: _events_pb2.ScoreRecord
    def __init__(self, score: _Optional[_Union[_events_pb2.ScoreRecord, _Mapping]] = ...) -> None: ...
