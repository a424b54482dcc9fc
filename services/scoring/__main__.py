"""`python -m services.scoring`: the scoring service's Kafka worker (haic.qa.v1) and its gRPC Scoring."""

from __future__ import annotations

from haic.v1 import scoring_pb2_grpc
from services.core import topics
from services.core.grpc_server import ServiceRegistration
from services.core.service import run_service
from services.core.settings import Settings
from services.core.storage import open_storage
from services.scoring.service import SERVICE, Answerers, QAScorer, ScoringServicer, make_handler


def main() -> None:
    settings = Settings()
    answerers = Answerers(settings, open_storage(settings))
    scorer = QAScorer(settings, answerers)  # one, so the Kafka and gRPC paths share the running scores
    try:
        run_service(
            SERVICE,
            settings,
            [topics.QA],
            make_handler(scorer),
            [
                ServiceRegistration(
                    scoring_pb2_grpc.add_ScoringServicer_to_server,
                    ScoringServicer(scorer),
                    "haic.v1.Scoring",
                )
            ],
            output_topics=[topics.SCORES],
        )
    finally:
        answerers.close()


if __name__ == "__main__":
    main()
