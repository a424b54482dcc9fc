"""`python -m services.qagen`: the QA generator stage (topology: haic.captions.v1 -> haic.qa.v1)."""

from __future__ import annotations

from haic.v1 import qagen_pb2_grpc
from services.core.service import run_stage
from services.core.settings import QAServiceSettings, load
from services.qagen.service import STAGE, ClipQAGenerator, QAGeneratorServicer, make_handler


def main() -> None:
    settings = load(QAServiceSettings)
    generator = ClipQAGenerator(settings)
    try:
        run_stage(
            STAGE,
            settings,
            make_handler(generator),
            qagen_pb2_grpc.add_QAGeneratorServiceServicer_to_server,
            QAGeneratorServicer(generator),
        )
    finally:
        generator.close()


if __name__ == "__main__":
    main()
