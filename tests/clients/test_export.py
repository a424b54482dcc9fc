"""`haic export` against a real broker: captions and QA sets produced to their topics, exported, loaded back."""

from __future__ import annotations

import json
import os
from pathlib import Path

import av
import numpy as np
import pytest
from google.protobuf.timestamp_pb2 import Timestamp

from clients.cli import main
from clients.export import (
    BENCH_FILE,
    CAPTION_INSTRUCTION,
    LLAVA_FILE,
    TRAIN_FILE,
    run_export,
)
from clients.export_rules import check_bench, check_llava, check_train
from haic.v1 import events_pb2
from services.core import topics
from services.core.bus import EventProducer, Output, ensure_topics
from services.core.ids import clip_id
from services.core.settings import Settings
from services.core.video import VideoReader
from tests.conftest import REPO_ROOT

pytestmark = pytest.mark.kafka

SAMPLE = REPO_ROOT / "samples" / "juggle_one_person.mp4"
VIDEO_A, VIDEO_B = "vid_aaaaaaaaaaaaaaaaaaaaaaaa", "vid_bbbbbbbbbbbbbbbbbbbbbbbb"
OUTPUTS = (TRAIN_FILE, LLAVA_FILE, BENCH_FILE)
UNREVIEWED = {"reviewed": False, "checked_by": 0, "reviewers": [], "review_id": ""}


def make_caption(
    video_id: str, start: float, end: float, text: str, *, passed: bool = True, at: int = 100, uri: str = ""
) -> events_pb2.Caption:
    span = events_pb2.ClipSpan(clip_id=clip_id(video_id, start, end), start_s=start, end_s=end)
    evidence = events_pb2.Evidence(start_s=start, end_s=end)
    # several map entries: their order must not leak into the files
    evidence.signals.update({"lift": 0.31, "speed": 1.2, "angle": 40.0, "torso": 0.5})
    subject = events_pb2.Subject(
        track_id=1,
        label="the man in the blue shirt",
        attributes=events_pb2.SubjectAttributes(clothing=[events_pb2.Garment(item="shirt", color="blue")]),
        actions=[events_pb2.Action(start_s=start, end_s=end, verb_phrase="kicks the ball", evidence=evidence)],
    )
    return events_pb2.Caption(
        video_id=video_id,
        span=span,
        subjects=[subject],
        text=text,
        backend="pose-grounded",
        judgement=events_pb2.Judgement(passed=passed, reasons=[] if passed else ["unsupported action"], judge="rules"),
        storage_uri=uri or f"file:///store/{video_id}.mp4",
        produced_at=Timestamp(seconds=at),
    )


def make_qa(caption: events_pb2.Caption) -> events_pb2.QASet:
    items = [
        events_pb2.QAItem(
            item_id=f"{caption.span.clip_id}-q0",
            category=events_pb2.QA_CATEGORY_ACTION_SEQUENCE,
            question="What does the man in the blue shirt do immediately after he kicks the ball?",
            options=["He raises his arms", "He sits down", "He turns left", "He jumps"],
            answer_index=1,
            facts=["kicks the ball"],
        ),
        events_pb2.QAItem(
            item_id=f"{caption.span.clip_id}-q1",
            category=events_pb2.QA_CATEGORY_COUNT,
            question="How many times does the man in the blue shirt kick the ball?",
            options=["1", "2", "3", "4"],
            answer_index=3,
        ),
        # malformed (three options): left out and counted
        events_pb2.QAItem(
            item_id=f"{caption.span.clip_id}-q2",
            category=events_pb2.QA_CATEGORY_ATTRIBUTE,
            question="What colour is the man's shirt?",
            options=["blue", "red", "green"],
        ),
    ]
    return events_pb2.QASet(
        video_id=caption.video_id,
        span=caption.span,
        items=items,
        backend="templates",
        caption=caption,
        storage_uri=caption.storage_uri,
        produced_at=caption.produced_at,
    )


def produce(settings: Settings, captions: list[events_pb2.Caption], qa_sets: list[events_pb2.QASet]) -> None:
    ensure_topics(settings)  # three partitions: records of different videos interleave on reading
    producer = EventProducer(settings, "test")
    producer.deliver(
        [Output(topics.CAPTIONS, c.video_id, c) for c in captions] + [Output(topics.QA, q.video_id, q) for q in qa_sets]
    )
    producer.close()


def untouched(path: Path) -> tuple[int, int]:
    """Changes when the file is rewritten: a rename gives a new inode even within one mtime tick."""
    stat = path.stat()
    return stat.st_ino, stat.st_mtime_ns


def load(out: Path) -> tuple[list[dict], list[dict], list[dict]]:
    train = [json.loads(line) for line in (out / TRAIN_FILE).read_text().splitlines()]
    return train, json.loads((out / LLAVA_FILE).read_text()), json.loads((out / BENCH_FILE).read_text())


def llava_next_visual_slots(record: dict, video_folder: Path) -> tuple[int, int]:
    """What LLaVA-NeXT's LazySupervisedDataset makes of a record: (visual inputs, image slots in the text).

    A `video` record gives one visual input, the file at os.path.join(video_folder, video), which must
    exist; preprocess_multimodal moves a lone `<image>` to the front of its turn, and tokenizer_image_token
    splits the prompt on `<image>`, one slot between each two pieces. Training needs the two counts equal.
    """
    assert "image" not in record and "video" in record
    assert os.path.isfile(os.path.join(video_folder, record["video"]))
    prompt = "".join(turn["value"] for turn in record["conversations"])
    return 1, len(prompt.split("<image>")) - 1


def assert_loadable(out: Path, clips: bool) -> None:
    """Every export file against the rules of the loader it names (clients/export_rules.py)."""
    train, llava, bench = load(out)
    assert check_train(train, out) == []
    assert check_llava(llava, out, clips) == []
    assert check_bench(bench, out) == []


def test_export_keeps_judge_passed_latest_captions_in_order_and_is_byte_identical_on_a_rerun(
    kafka_settings: Settings, tmp_path: Path
) -> None:
    b_late = make_caption(VIDEO_B, 5.0, 10.0, "Video B, second clip.")
    b_early = make_caption(VIDEO_B, 0.0, 5.0, "Video B, first clip.")
    # one clip of video A three times: the newest produced_at wins over a later-delivered stale record
    a_first = make_caption(VIDEO_A, 1.0, 7.0, "first caption", at=100)
    a_latest = make_caption(VIDEO_A, 1.0, 7.0, "re-captioned: the latest", at=300)
    a_stale = make_caption(VIDEO_A, 1.0, 7.0, "stale redelivery", at=200)
    a_failed = make_caption(VIDEO_A, 8.0, 14.0, "a caption the judge failed", passed=False)
    produce(
        kafka_settings,
        [b_late, a_first, a_failed, b_early, a_latest, a_stale],
        [make_qa(a_latest), make_qa(a_failed)],
    )

    out = tmp_path / "export"
    report = run_export(kafka_settings, out, clips=False, progress=False)
    train, llava, bench = load(out)

    assert report.caption_records == 6 and report.captions_superseded == 2 and report.captions_failed == 1
    assert report.train_examples == report.llava_examples == 3 and report.complete
    # failed caption out, duplicates collapsed to the latest, sorted by video id then clip start
    assert [r["caption"] for r in train] == [
        "re-captioned: the latest",
        "Video B, first clip.",
        "Video B, second clip.",
    ]
    assert [r["clip_id"] for r in train] == [c.span.clip_id for c in (a_latest, b_early, b_late)]
    first = train[0]
    assert list(first) == [
        "video",
        "video_id",
        "clip_id",
        "start",
        "end",
        "caption",
        "structure",
        "backend",
        "review",
    ]
    assert all(record["review"] == UNREVIEWED for record in (*train, *llava, *bench))
    assert first["video"] == f"/store/{VIDEO_A}.mp4" and (first["start"], first["end"]) == (1.0, 7.0)
    assert first["backend"] == "pose-grounded"
    [subject] = first["structure"]["subjects"]
    assert subject["label"] == "the man in the blue shirt" and subject["actions"][0]["verb_phrase"] == "kicks the ball"
    assert list(subject["actions"][0]["evidence"]["signals"]) == ["angle", "lift", "speed", "torso"]
    assert "judgement" not in first["structure"] and "judgement" not in first

    assert [r["id"] for r in llava] == [r["clip_id"] for r in train]
    assert llava[0]["video"] == f"/store/{VIDEO_A}.mp4" and (llava[0]["start"], llava[0]["end"]) == (1.0, 7.0)
    human, gpt = llava[0]["conversations"]
    assert human == {"from": "human", "value": "<image>\n" + CAPTION_INSTRUCTION}
    assert gpt == {"from": "gpt", "value": "re-captioned: the latest"}

    # only the passed caption's QA set; its malformed item left out
    assert report.qa_sets_left_out == 1 and report.qa_items == 2 and report.qa_items_invalid == 1
    assert [q["id"] for q in bench] == [f"{a_latest.span.clip_id}-q0", f"{a_latest.span.clip_id}-q1"]
    sequence, count = bench
    assert sequence["options"] == ["A. He raises his arms", "B. He sits down", "C. He turns left", "D. He jumps"]
    assert sequence["answer"] == "B" and sequence["category"] == "action_sequence"
    assert count["answer"] == "D" and count["category"] == "count" and count["options"][3] == "D. 4"
    assert count["video_id"] == VIDEO_A and (count["start"], count["end"]) == (1.0, 7.0)
    for item in bench:
        letter = item["answer"]
        assert item["options"][ord(letter) - ord("A")].startswith(f"{letter}. ")

    assert_loadable(out, clips=False)

    before = {name: ((out / name).read_bytes(), untouched(out / name)) for name in OUTPUTS}
    again = tmp_path / "again"
    run_export(kafka_settings, again, clips=False, progress=False)
    run_export(kafka_settings, out, clips=False, progress=False)
    for name in OUTPUTS:
        assert (again / name).read_bytes() == before[name][0], name
        assert untouched(out / name) == before[name][1], f"{name} rewritten with the same bytes"
    assert not [p.name for p in out.iterdir() if p.name not in OUTPUTS], "temporary files left behind"


def test_clips_are_cut_verified_skipped_on_a_rerun_and_a_missing_source_is_reported(
    kafka_settings: Settings, tmp_path: Path
) -> None:
    settings = kafka_settings.model_copy(update={"storage_url": str(SAMPLE.parent)})
    juggle = make_caption(VIDEO_A, 2.0, 4.5, "The man kicks the ball.", uri=SAMPLE.as_uri())
    missing = make_caption(VIDEO_B, 0.0, 3.0, "Lost.", uri=(SAMPLE.parent / "missing.mp4").as_uri())
    produce(settings, [juggle, missing], [make_qa(juggle)])

    out = tmp_path / "export"
    report = run_export(settings, out, clips=True, progress=False)
    assert report.clips_written == 1 and report.clips_skipped == 0 and not report.complete
    [failure] = report.clip_failures
    assert failure.clip_id == missing.span.clip_id and "does not exist" in failure.reason
    assert missing.span.clip_id in report.describe()

    clip_file = out / "clips" / f"{juggle.span.clip_id}.mp4"
    with av.open(str(clip_file)) as container:
        stream = container.streams.video[0]
        assert abs(float(stream.duration * stream.time_base) - 2.5) <= 0.2
        assert (stream.width, stream.height, stream.format.name) == (1280, 720, "yuv420p")
        first = next(container.decode(stream)).to_ndarray(format="rgb24").astype(np.int16)
    # the clip starts at the span's start: its first frame is the source's frame at 2.0 s, not 0.5 s earlier
    with VideoReader(SAMPLE) as reader:
        (_, at_start), (_, earlier) = sorted(reader.frames_at([2.0, 1.5]), key=lambda f: -f[0])
    assert np.abs(first - at_start).mean() < 3 < np.abs(first - earlier).mean()

    train, llava, bench = load(out)
    # the training file and the bench keep the source; LLaVA names the cut clip, and not the uncut one
    assert [(r["clip_id"], r.get("clip")) for r in train] == [
        (juggle.span.clip_id, f"clips/{clip_file.name}"),
        (missing.span.clip_id, None),
    ]
    assert train[0]["video"] == str(SAMPLE)
    assert llava == [
        {
            "id": juggle.span.clip_id,
            "video": f"clips/{clip_file.name}",
            "conversations": [
                {"from": "human", "value": "<image>\n" + CAPTION_INSTRUCTION},
                {"from": "gpt", "value": "The man kicks the ball."},
            ],
            "review": UNREVIEWED,
        }
    ]
    assert {q["clip"] for q in bench} == {f"clips/{clip_file.name}"}
    assert_loadable(out, clips=True)
    # LLaVA-NeXT run with --video_folder <export dir>: one video, one image slot, the clip file found
    assert [llava_next_visual_slots(record, out) for record in llava] == [(1, 1)]
    manifest = json.loads((out / "clips" / "manifest.json").read_text())
    assert list(manifest) == [juggle.span.clip_id]
    assert manifest[juggle.span.clip_id]["size"] == clip_file.stat().st_size

    # a re-run skips the clip (same file, untouched) and writes the same bytes everywhere
    files = [*(out / name for name in OUTPUTS), clip_file, out / "clips" / "manifest.json"]
    before = {p: (p.read_bytes(), untouched(p)) for p in files}
    rerun = run_export(settings, out, clips=True, progress=False)
    assert rerun.clips_written == 0 and rerun.clips_skipped == 1 and len(rerun.clip_failures) == 1
    assert {p: (p.read_bytes(), untouched(p)) for p in files} == before

    # a clip cut short (an interrupted copy, a damaged disk) no longer matches the manifest: cut again;
    # the temporary file of a killed export is swept, one of a running export stays
    clip_file.write_bytes(before[clip_file][0][:1000])
    dead_pid = max(int(p.name) for p in Path("/proc").iterdir() if p.name.isdigit()) + 100_000
    killed = out / "clips" / f".{missing.span.clip_id}.{dead_pid}.tmp.mp4"
    running = out / "clips" / f".{missing.span.clip_id}.{os.getppid()}.tmp.mp4"
    killed_json = out / f".{LLAVA_FILE}.{dead_pid}.tmp"
    unrelated = out / f".notes.{dead_pid}.tmp"
    for path in (killed, killed_json, unrelated):
        path.write_bytes(b"half a file")
    running.write_bytes(b"being written")
    repaired = run_export(settings, out, clips=True, progress=False)
    assert repaired.clips_written == 1 and repaired.clips_skipped == 0
    assert clip_file.read_bytes() == before[clip_file][0]  # the encoder settings give the same bytes again
    assert [p.name for p in (out / "clips").iterdir() if p.name.startswith(".")] == [running.name]
    assert [p.name for p in out.iterdir() if p.name.startswith(".")] == [unrelated.name]


def test_haic_export_reads_the_environment_and_prints_the_report(
    kafka_settings: Settings, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    produce(kafka_settings, [make_caption(VIDEO_A, 1.0, 7.0, "One clip.")], [])
    monkeypatch.setenv("HAIC_KAFKA_BOOTSTRAP_SERVERS", kafka_settings.kafka_bootstrap_servers)
    monkeypatch.setenv("HAIC_DATA_DIR", str(tmp_path / "haic"))
    out = tmp_path / "export"
    assert main(["export", str(out), "--no-progress"]) == 0
    printed = capsys.readouterr().out
    assert f"{TRAIN_FILE}: 1 captions" in printed and f"{BENCH_FILE}: 0 questions" in printed
    assert len(load(out)[0]) == 1


def test_a_caption_holding_a_placeholder_is_left_out_of_the_llava_file_only(
    kafka_settings: Settings, tmp_path: Path
) -> None:
    """An `<image>` or `<video>` string in a caption would ask LLaVA-NeXT for a visual input the sample lacks."""
    odd = make_caption(VIDEO_A, 1.0, 7.0, "He looks at the <image> on the wall.")
    plain = make_caption(VIDEO_B, 0.0, 5.0, "He waves.")
    produce(kafka_settings, [odd, plain], [])
    out = tmp_path / "export"
    report = run_export(kafka_settings, out, clips=False, progress=False)
    train, llava, _ = load(out)
    assert [r["clip_id"] for r in train] == [odd.span.clip_id, plain.span.clip_id]
    assert [r["id"] for r in llava] == [plain.span.clip_id]
    assert report.llava_left_out == 1 and "1 captions left out" in report.describe()
    assert "LLaVA-NeXT decodes whole" in report.describe()  # without --clips the span is not the sample
    assert_loadable(out, clips=False)
