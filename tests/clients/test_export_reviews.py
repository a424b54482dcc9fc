"""`haic export` with the review desk's reviews (issue 15): machine captions and QA sets and Reviews built as
protos, produced to a real broker, exported, loaded back."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from google.protobuf.timestamp_pb2 import Timestamp

from clients.cli import main
from clients.export import BENCH_FILE, LLAVA_FILE, TRAIN_FILE, ClipManifest, reviewed_caption, run_export
from haic.v1 import events_pb2
from services.core import topics
from services.core.bus import EventProducer, Output, ensure_topics
from services.core.caption_checks import rerender
from services.core.settings import Settings
from tests.clients.test_export import (
    OUTPUTS,
    UNREVIEWED,
    VIDEO_A,
    VIDEO_B,
    assert_loadable,
    llava_next_visual_slots,
    load,
    make_caption,
    untouched,
)
from tests.gateway.review_data import publish, reviewable_clip

pytestmark = pytest.mark.kafka

APPROVED, EDITED = events_pb2.ITEM_DECISION_APPROVED, events_pb2.ITEM_DECISION_EDITED
REJECTED, ADDED = events_pb2.ITEM_DECISION_REJECTED, events_pb2.ITEM_DECISION_ADDED
ACCEPT, REJECT = events_pb2.REVIEW_DECISION_ACCEPTED, events_pb2.REVIEW_DECISION_REJECTED


def item(clip: str, n: int, question: str, answer: int = 0) -> events_pb2.QAItem:
    return events_pb2.QAItem(
        item_id=f"{clip}-q{n}",
        category=events_pb2.QA_CATEGORY_ACTION_SEQUENCE,
        question=question,
        options=["He kicks the ball", "He waves", "He sits down", "He jumps"],
        answer_index=answer,
    )


def machine_qa(caption: events_pb2.Caption) -> events_pb2.QASet:
    clip = caption.span.clip_id
    return events_pb2.QASet(
        video_id=caption.video_id,
        span=caption.span,
        items=[
            item(clip, 0, "What does the man do first?"),
            item(clip, 1, "What does the man do after he kicks the ball?", answer=1),
            item(clip, 2, "What does the man do last?", answer=3),
        ],
        backend="templates",
        caption=caption,
        storage_uri=caption.storage_uri,
        produced_at=caption.produced_at,
    )


def corrected(caption: events_pb2.Caption, label: str, text: str) -> events_pb2.Caption:
    """The caption as a reviewer leaves it: a subject relabelled, the text re-rendered (by the gateway)."""
    after = events_pb2.Caption()
    after.CopyFrom(caption)
    after.subjects[0].label = label
    after.subjects[0].attributes.clothing[0].color = "red"
    after.text = text
    return after


def decided(
    decision: events_pb2.ItemDecision, before: events_pb2.QAItem | None, after: events_pb2.QAItem | None
) -> events_pb2.QAItemReview:
    named = after if after is not None else before
    review = events_pb2.QAItemReview(item_id=named.item_id if named is not None else "", decision=decision)
    if before is not None:
        review.before.CopyFrom(before)
    if after is not None:
        review.after.CopyFrom(after)
    return review


def review(
    review_id: str,
    reviewer: str,
    at: int,
    caption: events_pb2.Caption,
    decision: events_pb2.ReviewDecision,
    items: list[events_pb2.QAItemReview],
    after: events_pb2.Caption | None = None,
    checks: str = "",
) -> events_pb2.Review:
    return events_pb2.Review(
        review_id=review_id,
        video_id=caption.video_id,
        span=caption.span,
        reviewer=reviewer,
        reviewed_at=Timestamp(seconds=at),
        checks_review_id=checks,
        decision=decision,
        caption_before=caption,
        caption_after=after or caption,
        items=items,
        storage_uri=caption.storage_uri,
    )


def produce(settings: Settings, outputs: list[Output]) -> None:
    ensure_topics(settings)
    producer = EventProducer(settings, "test")
    producer.deliver(outputs)
    producer.close()


def test_reviews_decide_what_is_exported_and_every_record_says_who_checked_it(
    kafka_settings: Settings, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    accepted = make_caption(VIDEO_A, 1.0, 7.0, "The man in the blue shirt kicks the ball.")
    rejected = make_caption(VIDEO_B, 0.0, 5.0, "The man in the blue shirt kicks the ball twice.")
    unreviewed = make_caption(VIDEO_B, 5.0, 10.0, "The man in the blue shirt waves.")
    # the judge failed this caption; a reviewer corrected and accepted it: a person's acceptance stands
    judge_failed = make_caption(VIDEO_A, 8.0, 14.0, "The man in the blue shirt flies.", passed=False)
    qa_accepted, qa_rejected, qa_unreviewed, qa_failed = map(machine_qa, (accepted, rejected, unreviewed, judge_failed))

    # alice: rejects q0, edits q1, approves q2 and adds q3; the caption relabelled
    q0, q1, q2 = qa_accepted.items
    q1_edited = events_pb2.QAItem()
    q1_edited.CopyFrom(q1)
    q1_edited.question = "What does the man in the red shirt do after he kicks the ball?"
    q3 = item(accepted.span.clip_id, 3, "What does the man in the red shirt do before he jumps?")
    caption_after = corrected(accepted, "the man in the red shirt", "The man in the red shirt kicks the ball.")
    first = review(
        "rev_alice_a",
        "alice",
        200,
        accepted,
        ACCEPT,
        [
            decided(REJECTED, q0, None),
            decided(EDITED, q1, q1_edited),
            decided(APPROVED, q2, q2),
            decided(ADDED, None, q3),
        ],
        after=caption_after,
    )
    # bob checks alice's review: from its after, approves everything it kept (q2 published without its
    # after: an approved item's before is what it keeps)
    check = review(
        "rev_bob_a",
        "bob",
        300,
        caption_after,
        ACCEPT,
        [decided(APPROVED, q1_edited, q1_edited), decided(APPROVED, q2, None), decided(APPROVED, q3, q3)],
        checks="rev_alice_a",
    )
    # clip B: bob accepted it once, alice rejected it later; her rejection arrives first on the topic, the
    # stale acceptance after it: reviewed_at decides, not the order of arrival
    rejection = review("rev_alice_b", "alice", 400, rejected, REJECT, [])
    stale = review("rev_bob_b", "bob", 100, rejected, ACCEPT, [decided(APPROVED, i, i) for i in qa_rejected.items])
    fixed = corrected(judge_failed, "the man in the red shirt", "The man in the red shirt jumps.")
    failed_q0 = qa_failed.items[0]
    rescue = review(
        "rev_carol_f",
        "carol",
        250,
        judge_failed,
        ACCEPT,
        [decided(APPROVED, failed_q0, failed_q0), *(decided(REJECTED, i, None) for i in qa_failed.items[1:])],
        after=fixed,
    )
    produce(
        kafka_settings,
        [Output(topics.CAPTIONS, c.video_id, c) for c in (accepted, rejected, unreviewed, judge_failed)]
        + [Output(topics.QA, q.video_id, q) for q in (qa_accepted, qa_rejected, qa_unreviewed, qa_failed)]
        + [Output(topics.REVIEWS, r.video_id, r) for r in (first, rejection, rescue, check, stale)],
    )

    # --- the default export: reviewed versions preferred, the rejected clip left out, the rest as the machine left it
    out = tmp_path / "export"
    report = run_export(kafka_settings, out, clips=False, progress=False)
    train, llava, bench = load(out)
    checked_a = {"reviewed": True, "checked_by": 2, "reviewers": ["alice", "bob"], "review_id": "rev_bob_a"}
    rescued = {"reviewed": True, "checked_by": 1, "reviewers": ["carol"], "review_id": "rev_carol_f"}
    assert [(r["clip_id"], r["caption"], r["review"]) for r in train] == [
        (accepted.span.clip_id, "The man in the red shirt kicks the ball.", checked_a),
        (judge_failed.span.clip_id, "The man in the red shirt jumps.", rescued),
        (unreviewed.span.clip_id, "The man in the blue shirt waves.", UNREVIEWED),
    ]
    assert train[0]["structure"]["subjects"][0]["label"] == "the man in the red shirt"
    assert train[0]["structure"]["subjects"][0]["attributes"]["clothing"] == [{"item": "shirt", "color": "red"}]
    assert (train[0]["video"], train[0]["start"], train[0]["end"]) == (f"/store/{VIDEO_A}.mp4", 1.0, 7.0)
    assert [(r["id"], r["conversations"][1]["value"], r["review"]) for r in llava] == [
        (r["clip_id"], r["caption"], r["review"]) for r in train
    ]
    assert [(q["id"], q["question"], q["review"]) for q in bench] == [
        (q1.item_id, q1_edited.question, checked_a),
        (q2.item_id, q2.question, checked_a),
        (q3.item_id, q3.question, checked_a),
        (failed_q0.item_id, failed_q0.question, rescued),
        *((i.item_id, i.question, UNREVIEWED) for i in qa_unreviewed.items),
    ]
    assert not {rejected.span.clip_id} & {r["clip_id"] for r in (*train, *bench)}
    assert report.review_records == 5 and report.reviews_invalid == 0
    assert (report.clips_reviewed, report.clips_checked, report.clips_rejected_by_review) == (2, 1, 1)
    # the latest reviews' decisions: bob's three approvals, carol's approval and two rejections
    assert (report.items_approved, report.items_edited, report.items_added, report.items_rejected) == (4, 0, 0, 2)
    assert report.qa_sets_reviewed == 2 and report.captions_failed == 0 and report.qa_sets_left_out == 0
    summary = report.describe()
    assert "2 clips exported as reviewed, 1 of them checked by a second person" in summary
    assert "1 clips rejected by review and left out" in summary
    assert "reviewed items: 4 kept (4 approved, 0 edited, 0 added), 2 rejected" in summary
    assert_loadable(out, clips=False)
    # the reviewed caption stays on its clip: --clips cuts the same span of the same source
    assert ClipManifest.expected(reviewed_caption(check, accepted)) == ClipManifest.expected(accepted)

    # a re-run writes the same bytes and leaves the files untouched
    before = {name: ((out / name).read_bytes(), untouched(out / name)) for name in OUTPUTS}
    run_export(kafka_settings, out, clips=False, progress=False)
    assert {name: ((out / name).read_bytes(), untouched(out / name)) for name in OUTPUTS} == before

    # --- --reviewed-only: exactly the accepted clips, with exactly the items their latest review kept
    only = tmp_path / "reviewed"
    strict = run_export(kafka_settings, only, clips=False, progress=False, reviewed_only=True)
    train, llava, bench = load(only)
    assert (
        [r["clip_id"] for r in train] == [r["id"] for r in llava] == [accepted.span.clip_id, judge_failed.span.clip_id]
    )
    assert [q["id"] for q in bench] == [q1.item_id, q2.item_id, q3.item_id, failed_q0.item_id]
    assert all(r["review"]["reviewed"] for r in (*train, *llava, *bench))
    assert strict.clips_unreviewed_left_out == 1 and "--reviewed-only: 1 unreviewed clips left out" in strict.describe()
    assert_loadable(only, clips=False)

    # --- the same through the command line, into a fresh directory: the same bytes
    monkeypatch.setenv("HAIC_KAFKA_BOOTSTRAP_SERVERS", kafka_settings.kafka_bootstrap_servers)
    monkeypatch.setenv("HAIC_DATA_DIR", str(tmp_path / "haic"))
    cli_out = tmp_path / "cli"
    assert main(["export", str(cli_out), "--reviewed-only", "--no-progress"]) == 0
    assert "--reviewed-only: 1 unreviewed clips left out" in capsys.readouterr().out
    for name in (TRAIN_FILE, LLAVA_FILE, BENCH_FILE):
        assert (cli_out / name).read_bytes() == (only / name).read_bytes(), name
    assert json.loads((cli_out / BENCH_FILE).read_text())[0]["question"] == q1_edited.question


def test_a_review_without_a_clip_reviewer_or_decision_is_counted_and_ignored(
    kafka_settings: Settings, tmp_path: Path
) -> None:
    caption = make_caption(VIDEO_A, 1.0, 7.0, "The man in the blue shirt kicks the ball.")
    undecided = review("rev_x", "alice", 200, caption, events_pb2.REVIEW_DECISION_UNSPECIFIED, [])
    anonymous = review("rev_y", "", 300, caption, REJECT, [])
    produce(
        kafka_settings,
        [Output(topics.CAPTIONS, caption.video_id, caption)]
        + [Output(topics.REVIEWS, r.video_id, r) for r in (undecided, anonymous)],
    )
    report = run_export(kafka_settings, tmp_path / "export", clips=False, progress=False)
    [record] = load(tmp_path / "export")[0]
    assert record["review"] == UNREVIEWED and report.reviews_invalid == 2 and report.clips_rejected_by_review == 0


def test_a_clip_made_by_the_real_stages_exports_as_reviewed_with_its_cut(
    kafka_settings: Settings, tmp_path: Path
) -> None:
    """The sample as the real captioner and QA generator leave it, a reviewer's correction re-rendered as the
    gateway re-renders it, exported with --clips --reviewed-only: the cut is the machine clip's."""
    clip = reviewable_clip(kafka_settings)
    ensure_topics(kafka_settings)
    producer = EventProducer(kafka_settings, "test")
    publish(producer, clip)
    after = events_pb2.Caption()
    after.CopyFrom(clip.caption)
    after.subjects[0].attributes.gender = "female" if after.subjects[0].attributes.gender != "female" else "male"
    after.text = rerender(after, clip.caption.span.end_s - clip.caption.span.start_s)
    assert after.text != clip.caption.text
    dropped, *kept = clip.qa.items
    verdict = review(
        "rev_alice",
        "alice",
        500,
        clip.caption,
        ACCEPT,
        [decided(REJECTED, dropped, None), *(decided(APPROVED, i, i) for i in kept)],
        after=after,
    )
    producer.deliver([Output(topics.REVIEWS, verdict.video_id, verdict)])
    producer.close()

    out = tmp_path / "export"
    report = run_export(kafka_settings, out, clips=True, progress=False, reviewed_only=True)
    assert report.complete and report.clips_written == 1 and report.items_rejected == 1
    train, llava, bench = load(out)
    cut = f"clips/{clip.clip_id}.mp4"
    assert [(r["clip_id"], r["caption"], r["clip"]) for r in train] == [(clip.clip_id, after.text, cut)]
    assert [(r["video"], r["conversations"][1]["value"]) for r in llava] == [(cut, after.text)]
    assert [q["id"] for q in bench] == [i.item_id for i in kept] and {q["clip"] for q in bench} == {cut}
    assert_loadable(out, clips=True)
    assert [llava_next_visual_slots(record, out) for record in llava] == [(1, 1)]
    manifest = json.loads((out / "clips" / "manifest.json").read_text())
    assert manifest[clip.clip_id] | ClipManifest.expected(clip.caption) == manifest[clip.clip_id]
