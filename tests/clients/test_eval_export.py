"""Issue 5's done-when, through the launched stack: the juggling sample goes from upload to caption to QA
to scores; `haic eval` prints a per-category leaderboard and `haic export` writes HAICTrain, LLaVA-Video
and HAICBench files that load back."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from clients.cli import main
from clients.sdk import HaicClient
from haic_tools.launcher import LocalStack, StackPorts
from services.core import topics
from services.core.bus import read_topic_to_end
from services.core.settings import Settings
from tests.kafka_helpers import wait_until

pytestmark = [pytest.mark.e2e, pytest.mark.kafka]


def test_upload_to_leaderboard_and_export(
    tmp_path: Path, shared_videos: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    settings = Settings(data_dir=tmp_path / "haic", api_keys=["eval-key"])
    with LocalStack(settings, StackPorts.free()) as stack:
        monkeypatch.setenv("HAIC_KAFKA_BOOTSTRAP_SERVERS", stack.bootstrap_servers)
        monkeypatch.setenv("HAIC_DATA_DIR", str(settings.data_dir))
        bus = settings.model_copy(update={"kafka_bootstrap_servers": stack.bootstrap_servers})
        with HaicClient(stack.gateway_url, stack.api_key) as client:
            video_id = client.submit(shared_videos / "juggle_one_person.mp4", description="A man juggles a ball")[
                "video_id"
            ]
            assert client.wait(video_id, timeout_s=300)["status"] == "completed"
        # The scoring service answers each QA set with every configured answerer.
        answerers = set(settings.scoring_answerers)
        assert wait_until(
            lambda: {r.answerer for k, r in read_topic_to_end(bus, topics.SCORES) if k == video_id} == answerers,
            timeout_s=60,
        )
        [(_, qa)] = [(k, m) for k, m in read_topic_to_end(bus, topics.QA) if k == video_id]
        assert len(qa.items) >= 5 and qa.caption.judgement.passed

        leaderboard = tmp_path / "leaderboard.json"
        assert main(["eval", "--no-progress", "--json", str(leaderboard)]) == 0
        table = capsys.readouterr().out
        assert "| answerer | setting | items | HAIC average | 95% CI |" in table
        assert "count" in table.splitlines()[0] and "Chance: 25.0." in table
        rows = json.loads(leaderboard.read_text())
        assert {r["answerer"] for r in rows} == answerers
        for row in rows:
            assert row["items"] == len(qa.items) and row["ci95"][0] <= row["average"] <= row["ci95"][1]
            assert sum(c["total"] for c in row["categories"].values()) == len(qa.items)
        # The leaderboard's results are published too, beside the per-clip records.
        published = [r for k, r in read_topic_to_end(bus, topics.SCORES) if k.startswith("eval:")]
        assert {r.answerer for r in published} == answerers

        out = tmp_path / "export"
        assert main(["export", str(out), "--no-progress"]) == 0
    train = [json.loads(line) for line in (out / "haic_train.jsonl").read_text().splitlines()]
    assert [t["video_id"] for t in train] == [video_id]
    assert train[0]["caption"] == qa.caption.text and train[0]["structure"]["subjects"]
    llava = json.loads((out / "llava_video.json").read_text())
    assert llava[0]["conversations"][0]["value"].startswith("<image>\n")  # LLaVA-NeXT's placeholder
    assert llava[0]["conversations"][1]["value"] == qa.caption.text
    bench = json.loads((out / "haic_bench.json").read_text())
    assert len(bench) == len(qa.items)
    for entry, item in zip(
        sorted(bench, key=lambda e: e["id"]), sorted(qa.items, key=lambda i: i.item_id), strict=True
    ):
        assert entry["question"] == item.question and entry["answer"] == "ABCD"[item.answer_index]
        assert [o[3:] for o in entry["options"]] == list(item.options)
