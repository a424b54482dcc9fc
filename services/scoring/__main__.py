"""`python -m services.scoring`: the scoring stage (topology: haic.qa.v1 -> haic.scores.v1)."""

from __future__ import annotations

from haic.v1 import scoring_pb2_grpc
from services.core.service import run_stage
from services.core.settings import ScoringServiceSettings, load
from services.core.storage import open_storage
from services.scoring.service import STAGE, Answerers, QAScorer, ScoringServicer, make_handler


def main() -> None:
    settings = load(ScoringServiceSettings)
    answerers = Answerers(settings, open_storage(settings))
    scorer = QAScorer(settings, answerers)  # one, so the Kafka and gRPC paths share the running scores
    try:
        run_stage(
            STAGE,
            settings,
            make_handler(scorer),
            scoring_pb2_grpc.add_ScoringServiceServicer_to_server,
            ScoringServicer(scorer),
        )
    finally:
        answerers.close()


if __name__ == "__main__":
    main()
