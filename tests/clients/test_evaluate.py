"""`haic eval` over a real broker: the leaderboard of the QA sets published so far, its publication on
haic.scores.v1, and caption quality (HAIC table 2's protocol) with another backend's captions."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from clients.cli import main
from clients.evaluate import run_eval
from haic.v1 import events_pb2
from services.core import topics
from services.core.bus import EventProducer, Output, read_topic_to_end
from services.core.settings import Settings
from services.qagen.templates import generate_qa_set
from tests.qagen import two_people_caption
from tests.qagen.test_service import judged

pytestmark = pytest.mark.kafka


def publish_clip(settings: Settings, other_text: str, other_passed: bool) -> events_pb2.QASet:
    caption = judged(two_people_caption())
    qa = generate_qa_set(caption, seed=0)
    qa.caption.CopyFrom(caption)
    other = events_pb2.Caption()
    other.CopyFrom(caption)
    other.backend, other.text = "mllm:test", other_text
    other.judgement.passed = other_passed
    EventProducer(settings, "test").deliver(
        [
            Output(topics.CAPTIONS, caption.video_id, caption),
            Output(topics.CAPTIONS, caption.video_id, other),
            Output(topics.QA, qa.video_id, qa),
        ]
    )
    return qa


def test_caption_quality_answers_from_the_other_backends_captions(kafka_settings: Settings) -> None:
    settings = kafka_settings.model_copy(update={"scoring_bootstrap_samples": 200})
    qa = publish_clip(settings, other_text="Two people are in a room.", other_passed=False)
    [own], _ = run_eval(settings, ["caption-lexical"], publish=False, progress=False)
    [other], source = run_eval(
        settings, ["caption-lexical"], publish=False, progress=False, caption_backend="mllm:test"
    )
    assert own.items == other.items == len(qa.items) and own.setting == "caption"
    assert own.refused < own.items  # its own caption answers some questions
    assert other.setting == "caption:mllm:test" and other.refused == other.items  # a vague caption answers none
    assert source is not None and (source.clips, source.missing, source.judge_pass_rate) == (1, 0, 0.0)


def test_haic_eval_prints_publishes_and_writes_json(
    kafka_settings: Settings, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    qa = publish_clip(kafka_settings, other_text="", other_passed=True)
    monkeypatch.setenv("HAIC_KAFKA_BOOTSTRAP_SERVERS", kafka_settings.kafka_bootstrap_servers)
    monkeypatch.setenv("HAIC_DATA_DIR", str(tmp_path / "haic"))
    out = tmp_path / "board.json"
    args = ["eval", "--no-progress", "--answerer", "random", "--answerer", "majority-letter", "--json", str(out)]
    assert main([*args, "--caption-backend", "mllm:test"]) == 0
    printed = capsys.readouterr().out
    assert "| random | caption:mllm:test |" in printed and "judge pass rate 100.0%" in printed
    rows = json.loads(out.read_text())
    assert [r["items"] for r in rows] == [len(qa.items)] * 2 and rows[0]["caption_source"]["clips"] == 1
    published = [r for k, r in read_topic_to_end(kafka_settings, topics.SCORES) if k.startswith("eval:")]
    assert sorted(r.answerer for r in published) == ["majority-letter", "random"]
    assert main(["eval", "--answerer", "oracle", "--no-progress"]) == 2
