"""`python -m services.captioner`: the captioner stage (topology: haic.clips.accepted.v1 -> haic.captions.v1)."""

from __future__ import annotations

from haic.v1 import captioner_pb2_grpc
from services.captioner.service import STAGE, CaptionerServicer, ClipCaptioner, make_handler
from services.core.service import run_stage
from services.core.settings import CaptionerServiceSettings, load
from services.core.storage import open_storage


def main() -> None:
    settings = load(CaptionerServiceSettings)
    captioner = ClipCaptioner(settings, open_storage(settings))
    try:
        run_stage(
            STAGE,
            settings,
            make_handler(captioner),
            captioner_pb2_grpc.add_CaptionerServiceServicer_to_server,
            CaptionerServicer(captioner),
        )
    finally:
        captioner.close()


if __name__ == "__main__":
    main()
