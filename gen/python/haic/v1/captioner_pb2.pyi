from haic.v1 import events_pb2 as _events_pb2
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class CaptionRequest(_message.Message):
    __slots__ = ("clip",)
    CLIP_FIELD_NUMBER: _ClassVar[int]
    clip: _events_pb2.ClipVerdict
    def __init__(self, clip: _Optional[_Union[_events_pb2.ClipVerdict, _Mapping]] = ...) -> None: ...

class CaptionResponse(_message.Message):
    __slots__ = ("caption",)
    CAPTION_FIELD_NUMBER: _ClassVar[int]
    caption: _events_pb2.Caption
    def __init__(self, caption: _Optional[_Union[_events_pb2.Caption, _Mapping]] = ...) -> None: ...
