"""The scoring service: one ScoreRecord per configured answerer for each QA set, running accuracies in
Prometheus, its Kafka worker and its gRPC API on a real server."""

from __future__ import annotations

import grpc
import pytest
from prometheus_client import REGISTRY

from haic.v1 import events_pb2, scoring_pb2, scoring_pb2_grpc
from services.core import topics
from services.core.bus import EventProducer, Output, Worker
from services.core.grpc_server import GrpcServer, ServiceRegistration
from services.core.settings import Settings
from services.qagen.templates import generate_qa_set
from services.scoring.service import (
    STAGE,
    Answerers,
    QAScorer,
    ScoringServicer,
    UnknownAnswererError,
    make_handler,
)
from tests.kafka_helpers import read_topic, running
from tests.qagen import two_people_caption
from tests.qagen.test_service import judged


def qa_set() -> events_pb2.QASet:
    caption = judged(two_people_caption())
    qa = generate_qa_set(caption, seed=0)
    qa.caption.CopyFrom(caption)
    return qa


def test_each_answerer_gets_a_record_and_the_running_accuracy_is_exported(make_settings) -> None:
    settings = make_settings(scoring_answerers=["caption-lexical", "majority-letter"], scoring_bootstrap_samples=200)
    scorer = QAScorer(settings, Answerers(settings))
    qa = qa_set()
    records = scorer.score_all(qa)
    assert [r.answerer for r in records] == ["caption-lexical", "majority-letter"]
    for record in records:
        assert record.video_id == qa.video_id and record.span.clip_id == qa.span.clip_id
        assert sum(c.total for c in record.categories) == len(qa.items)
        assert record.chance == pytest.approx(0.25) and record.ci_low <= record.average <= record.ci_high
        gauge = REGISTRY.get_sample_value(
            "haic_eval_accuracy", {"answerer": record.answerer, "setting": "caption", "category": "average"}
        )
        assert gauge == pytest.approx(record.average)


def test_an_unknown_answerer_fails_at_start(make_settings) -> None:
    settings = make_settings(scoring_answerers=["oracle"])
    with pytest.raises(UnknownAnswererError):
        QAScorer(settings, Answerers(settings))


@pytest.mark.kafka
def test_the_worker_scores_qa_sets_and_dead_letters_a_poison_one(kafka_settings: Settings) -> None:
    settings = kafka_settings.model_copy(update={"scoring_answerers": ["random"], "scoring_bootstrap_samples": 200})
    qa = qa_set()
    poison = events_pb2.QASet(video_id="vid_poison", items=[events_pb2.QAItem(question="?")])
    EventProducer(settings, "test").deliver(
        [Output(topics.QA, poison.video_id, poison), Output(topics.QA, qa.video_id, qa)]
    )
    worker = Worker(settings, STAGE.name, [topics.QA], make_handler(QAScorer(settings, Answerers(settings))))
    with running(worker):
        [(key, record)] = read_topic(settings, topics.SCORES, expected=1, timeout_s=60)
        [(_, letter)] = read_topic(settings, topics.DEADLETTER, expected=1)
    assert key == qa.video_id and record.answerer == "random" and record.span.clip_id == qa.span.clip_id
    assert letter.error_type == "QASetNotUsableError"


def test_evaluate_over_grpc(make_settings) -> None:
    settings = make_settings(scoring_bootstrap_samples=200)
    scorer = QAScorer(settings, Answerers(settings))
    registration = ServiceRegistration(
        scoring_pb2_grpc.add_ScoringServiceServicer_to_server, ScoringServicer(scorer), "haic.v1.ScoringService"
    )
    server = GrpcServer([registration], port=0)
    server.start()
    try:
        with grpc.insecure_channel(f"127.0.0.1:{server.port}") as channel:
            stub = scoring_pb2_grpc.ScoringServiceStub(channel)
            reply = stub.Evaluate(scoring_pb2.EvaluateRequest(qa=qa_set(), answerer="majority-letter"))
            assert reply.score.answerer == "majority-letter" and reply.score.setting == "caption"
            with pytest.raises(grpc.RpcError) as refused:
                stub.Evaluate(scoring_pb2.EvaluateRequest(qa=qa_set(), answerer="oracle"))
            assert refused.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    finally:
        server.stop()
