"""VideoInfo: the proto message's fields, once; the dataclass and the HTTP schema follow them."""

from __future__ import annotations

from dataclasses import fields

from haic.v1 import events_pb2
from services.core.contracts import scalar_fields
from services.core.video import VideoInfo
from services.gateway.schemas import VideoInfoOut

PROBED = VideoInfo(width=1280, height=720, fps=29.97, duration_s=14.0, frame_count=420, codec="h264", container="mp4")


def test_the_dataclass_has_the_proto_fields_in_order_and_round_trips() -> None:
    assert [(f.name, f.type) for f in fields(VideoInfo)] == [
        (name, kind.__name__) for name, kind in scalar_fields(events_pb2.VideoInfo).items()
    ]
    assert VideoInfo.from_proto(PROBED.to_proto()) == PROBED
    assert PROBED.short_side == 720


def test_the_http_schema_is_derived_from_the_proto() -> None:
    assert list(VideoInfoOut.model_fields) == [f.name for f in events_pb2.VideoInfo.DESCRIPTOR.fields]
    out = VideoInfoOut(**{name: getattr(PROBED, name) for name in VideoInfoOut.model_fields})
    assert out.model_dump() == {
        "width": 1280,
        "height": 720,
        "fps": 29.97,
        "duration_s": 14.0,
        "frame_count": 420,
        "codec": "h264",
        "container": "mp4",
    }
