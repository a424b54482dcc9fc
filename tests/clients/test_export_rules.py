"""The loader rules the export is checked against: each one catches what would break its loader."""

from __future__ import annotations

import copy
from pathlib import Path

import pytest

import clients.export
from clients.export import CAPTION_INSTRUCTION, LLAVA_FILE, ExportError, llava_record, run_export
from clients.export_rules import check_bench, check_llava, check_train
from haic.v1 import events_pb2
from services.core import topics
from services.core.settings import Settings

CLIP = "clip_0123456789abcdef"
UNREVIEWED = {"reviewed": False, "checked_by": 0, "reviewers": [], "review_id": ""}
CHECKED = {"reviewed": True, "checked_by": 2, "reviewers": ["alice", "bob"], "review_id": "rev_b"}


@pytest.fixture
def out(tmp_path: Path) -> Path:
    (tmp_path / "clips").mkdir()
    (tmp_path / "clips" / f"{CLIP}.mp4").write_bytes(b"a clip")
    return tmp_path


def llava(**changes: object) -> dict:
    record = {
        "id": CLIP,
        "video": f"clips/{CLIP}.mp4",
        "conversations": [
            {"from": "human", "value": "<image>\n" + CAPTION_INSTRUCTION},
            {"from": "gpt", "value": "The man kicks the ball."},
        ],
        "review": UNREVIEWED,
    }
    return record | changes


def train(**changes: object) -> dict:
    record = {
        "video": "/store/vid_a.mp4",
        "video_id": "vid_a",
        "clip_id": CLIP,
        "start": 1.0,
        "end": 7.0,
        "clip": f"clips/{CLIP}.mp4",
        "caption": "The man kicks the ball.",
        "structure": {"subjects": []},
        "backend": "pose-grounded",
        "review": CHECKED,
    }
    return record | changes


def bench(**changes: object) -> dict:
    record = {
        "id": f"{CLIP}-q0",
        "video_id": "vid_a",
        "clip_id": CLIP,
        "video": "s3://videos/vid_a/source.mp4",
        "start": 1.0,
        "end": 7.0,
        "clip": f"clips/{CLIP}.mp4",
        "question": "What does he do first?",
        "options": ["A. kicks", "B. waves", "C. sits", "D. runs"],
        "answer": "A",
        "category": "action_sequence",
        "review": UNREVIEWED,
    }
    return record | changes


def with_turn(index: int, value: str) -> dict:
    record = llava()
    record["conversations"] = copy.deepcopy(record["conversations"])
    record["conversations"][index]["value"] = value
    return record


def test_the_exporter_writes_what_llava_next_expects(out: Path) -> None:
    caption = events_pb2.Caption(
        video_id="vid_a", span=events_pb2.ClipSpan(clip_id=CLIP, start_s=1, end_s=7), text="He waves."
    )
    caption.storage_uri = "file:///store/vid_a.mp4"
    assert check_llava([llava_record(caption, f"clips/{CLIP}.mp4")], out, clips=True) == []
    uncut = llava_record(caption, None)
    assert (uncut["video"], uncut["start"], uncut["end"]) == ("/store/vid_a.mp4", 1.0, 7.0)
    assert check_llava([uncut], out, clips=False) == []
    assert uncut["conversations"][0]["value"].startswith("<image>\n")


@pytest.mark.parametrize(
    ("record", "found"),
    [
        (with_turn(0, "<video>\n" + CAPTION_INSTRUCTION), "exactly one <image>"),  # the old export
        (with_turn(0, CAPTION_INSTRUCTION), "exactly one <image>"),  # no visual slot at all
        (with_turn(0, "<image>\n<image>\n" + CAPTION_INSTRUCTION), "exactly one <image>"),  # two slots, one video
        (with_turn(0, CAPTION_INSTRUCTION + "\n<image>"), "at its start"),
        (with_turn(1, "He holds a <video> camera."), "turn 1 holds a media placeholder"),
        (llava(video=f"/abs/clips/{CLIP}.mp4"), "not relative to the export folder"),
        (llava(video=f"../elsewhere/{CLIP}.mp4"), "leaves the export folder"),
        (llava(video="clips/clip_missing.mp4"), "does not exist"),
        (llava(image="frame.jpg"), "image sample"),
        (llava(id=""), "no id"),
        (llava(conversations=[{"from": "gpt", "value": "<image>\nx"}, {"from": "gpt", "value": "y"}]), "turn 0"),
        (llava(conversations=[{"from": "human", "value": "<image>\nonly a question"}]), "human/gpt pairs"),
        (with_turn(1, "  "), "turn 1 has no text"),
    ],
)
def test_llava_rules_catch_what_llava_next_would_mis_read(out: Path, record: dict, found: str) -> None:
    [problem] = check_llava([record], out, clips=True)
    assert found in problem and problem.startswith(f"{record['id'] or ''}: ")


def test_llava_without_clips_names_the_source_and_its_span(out: Path) -> None:
    uncut = llava(video="/store/vid_a.mp4", start=1.0, end=7.0)
    assert check_llava([uncut], out, clips=False) == []
    relative_source = llava(video="vid_a.mp4", start=1, end=7)
    assert "neither an absolute path nor a URI" in check_llava([relative_source], out, clips=False)[0]
    assert "not a time range" in check_llava([llava(video="/store/vid_a.mp4")], out, clips=False)[0]


def test_train_rules(out: Path) -> None:
    assert check_train([train(), train(clip_id="clip_b")], out) == []
    uncut = train()
    del uncut["clip"]
    assert check_train([uncut], out) == []
    missing = train()
    del missing["caption"], missing["structure"]
    assert check_train([missing], out) == [f"{CLIP}: missing caption, structure"]
    assert "does not exist" in check_train([train(clip="clips/gone.mp4")], out)[0]
    assert "not a time range" in check_train([train(start=7.0, end=1.0)], out)[0]
    assert "empty caption" in check_train([train(caption="")], out)[0]


def test_bench_rules(out: Path) -> None:
    assert check_bench([bench()], out) == []
    assert "answer 'E'" in check_bench([bench(answer="E")], out)[0]
    assert "four, lettered" in check_bench([bench(options=["kicks", "waves", "sits", "runs"])], out)[0]
    assert "four, lettered" in check_bench([bench(options=["A. kicks", "B. waves", "C. sits"])], out)[0]
    assert "not relative" in check_bench([bench(clip=str(out / "clips" / f"{CLIP}.mp4"))], out)[0]
    no_category = bench()
    del no_category["category"]
    assert check_bench([no_category], out) == [f"{CLIP}-q0: missing category"]


def test_an_export_that_breaks_a_rule_fails_before_writing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The guard in run_export: the old `<video>` placeholder would fail the export, naming the clip."""
    caption = events_pb2.Caption(
        video_id="vid_a",
        span=events_pb2.ClipSpan(clip_id=CLIP, start_s=1, end_s=7),
        text="He waves.",
        storage_uri="file:///store/vid_a.mp4",
        judgement=events_pb2.Judgement(passed=True),
    )
    records = {topics.CAPTIONS: [("vid_a", caption)], topics.QA: [], topics.REVIEWS: []}
    monkeypatch.setattr(clients.export, "read_topic_to_end", lambda _settings, topic: records[topic])
    monkeypatch.setattr(clients.export, "LLAVA_MEDIA_TOKEN", "<video>")
    with pytest.raises(ExportError, match=f"{LLAVA_FILE}: {CLIP}: the first human turn needs exactly one <image>"):
        run_export(Settings(), tmp_path / "export", clips=False, progress=False)
    assert list((tmp_path / "export").iterdir()) == []


@pytest.mark.parametrize(
    ("review", "found"),
    [
        (None, "review is not an object"),
        ({"reviewed": True, "checked_by": 1, "reviewers": ["alice"]}, "review is not an object"),
        (CHECKED | {"checked_by": 1}, "not the number of reviewers (2)"),
        (CHECKED | {"checked_by": 2.0}, "not the number of reviewers"),
        (CHECKED | {"reviewers": ["bob", "alice"]}, "not sorted and distinct"),
        (CHECKED | {"reviewers": ["alice", "alice"]}, "not sorted and distinct"),
        (CHECKED | {"reviewers": ["alice", ""]}, "not a list of names"),
        (CHECKED | {"review_id": ""}, "disagrees"),
        (UNREVIEWED | {"reviewed": True}, "disagrees"),
        (UNREVIEWED | {"reviewed": "no"}, "not a bool"),
    ],
)
def test_every_file_says_who_checked_each_record(out: Path, review: object, found: str) -> None:
    assert check_train([train(review=CHECKED)], out) == check_bench([bench(review=UNREVIEWED)], out) == []
    assert check_llava([llava(review=CHECKED)], out, clips=True) == []
    for problems in (
        check_train([train(review=review)], out),
        check_bench([bench(review=review)], out),
        check_llava([llava(review=review)], out, clips=True),
    ):
        [problem] = problems
        assert found in problem


def test_a_llava_key_the_loader_does_not_read_must_be_one_of_haics(out: Path) -> None:
    """LLaVA-NeXT reads id, image, video and conversations of a record; start, end and review ride along unread."""
    assert check_llava([llava(video="/store/vid_a.mp4", start=1.0, end=7.0)], out, clips=False) == []
    [problem] = check_llava([llava(prompt="What happens?")], out, clips=True)
    assert "keys prompt are neither read by the loader nor HAIC's" in problem
