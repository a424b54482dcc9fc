"""The review desk's API (issue 15) on a real gateway and broker, with a clip the real stages made
(tests/gateway/review_data.py): the queue, a clip's view, rendering and item checks, reviews published on
haic.reviews.v1 and applied by the catalog, checks and their agreement, and a rebuild that keeps them."""

from __future__ import annotations

import copy
from collections.abc import Iterator

import pytest
import sqlalchemy as sa
from fastapi.testclient import TestClient
from google.protobuf.message import Message
from kafka import KafkaConsumer

from clients.report_html import format_table
from haic.v1 import events_pb2
from services.core import topics
from services.core.bus import Event, EventProducer, Output
from services.core.ids import clip_id
from services.core.settings import Settings
from services.gateway.catalog import Catalog
from services.gateway.catalog_schema import clip_categories
from services.gateway.report import build_report
from tests.kafka_helpers import wait_until

from .conftest import AUTH, running_gateway
from .review_data import ReviewableClip, publish, reviewable_clip

pytestmark = pytest.mark.kafka

ALICE = {"Authorization": "Bearer alice-review-key"}
BOB = {"Authorization": "Bearer bob-review-key"}


@pytest.fixture
def review_settings(gateway_settings: Settings) -> Settings:
    return gateway_settings.model_copy(update={"reviewers": ["alice:alice-review-key", "bob:bob-review-key"]})


@pytest.fixture
def clip(review_settings: Settings, producer: EventProducer) -> ReviewableClip:
    made = reviewable_clip(review_settings)
    publish(producer, made)
    return made


@pytest.fixture
def desk(review_settings: Settings, clip: ReviewableClip) -> Iterator[TestClient]:
    with running_gateway(review_settings) as client:
        wait_until(lambda: _complete(client, clip.clip_id), what="the clip's QA and tracks in the catalog")
        yield client


def _view(client: TestClient, clip_id: str, headers: dict[str, str]) -> dict:
    response = client.get(f"/v1/review/clips/{clip_id}", headers=headers)
    return response.json() if response.status_code == 200 else {"qa": [], "tracks": []}


def _complete(client: TestClient, clip_id: str) -> bool:
    """The catalog has the clip's QA and its pose verdict (topics are consumed in parallel)."""
    view = _view(client, clip_id, ALICE)
    return bool(view["qa"] and view["tracks"])


def _queue(client: TestClient, **params: str) -> list[str]:
    response = client.get("/v1/review/queue", params=params, headers=ALICE)
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["total"] == len(body["items"])
    return [item["clip_id"] for item in body["items"]]


def _approve_all(view: dict) -> list[dict]:
    return [{"item_id": item["item_id"], "decision": "approved"} for item in view["qa"]]


def _submit(client: TestClient, clip_id: str, headers: dict[str, str], **body: object) -> dict:
    response = client.post(f"/v1/review/clips/{clip_id}/reviews", json=body, headers=headers)
    assert response.status_code == 201, response.text
    return response.json()


def _caption_copy(clip: ReviewableClip, start_s: float, end_s: float, passed: bool) -> events_pb2.Caption:
    caption = copy.deepcopy(clip.caption)
    caption.span.clip_id = clip_id(clip.video_id, start_s, end_s)
    caption.span.start_s, caption.span.end_s = start_s, end_s
    caption.judgement.passed = passed
    return caption


def test_queue_orders_and_filters(desk: TestClient, clip: ReviewableClip, producer: EventProducer) -> None:
    failed = _caption_copy(clip, 20.0, 25.0, passed=False)  # the judge failed it: after every passed clip
    later = _caption_copy(clip, 30.0, 35.0, passed=True)  # passed, catalogued after the sample's clip
    producer.deliver([Output(topics.CAPTIONS, clip.video_id, failed)])
    wait_until(lambda: failed.span.clip_id in _queue(desk), what="the judge-failed clip in the queue")
    producer.deliver([Output(topics.CAPTIONS, clip.video_id, later)])
    wait_until(lambda: len(_queue(desk)) == 3, what="three clips in the queue")

    assert _queue(desk) == [clip.clip_id, later.span.clip_id, failed.span.clip_id]
    first = desk.get("/v1/review/queue", headers=ALICE).json()["items"][0]
    assert first["review_state"] == "unreviewed" and first["judge_passed"] is True and first["reviewers"] == []
    assert first["qa_item_count"] == len(clip.qa.items) and first["description"] == clip.uploaded.description
    categories = sorted(
        {events_pb2.QACategory.Name(i.category).removeprefix("QA_CATEGORY_").lower() for i in clip.qa.items}
    )
    assert first["categories"] == categories

    assert _queue(desk, category=categories[0]) == [clip.clip_id]  # only the sample's clip has a QA set
    assert _queue(desk, stage="captioner.judge") == [failed.span.clip_id]
    assert _queue(desk, video_id="vid_000000000000000000000000") == []
    assert _queue(desk, state="reviewed") == []

    view = desk.get(f"/v1/review/clips/{clip.clip_id}", headers=ALICE).json()
    _submit(desk, clip.clip_id, ALICE, decision="accepted", caption=view["caption"], items=_approve_all(view))
    # reviewed once: still awaiting (a check), after the unreviewed passed clip
    assert _queue(desk) == [later.span.clip_id, clip.clip_id, failed.span.clip_id]
    assert _queue(desk, state="reviewed") == [clip.clip_id]
    assert _queue(desk, reviewer="alice") == [clip.clip_id] and _queue(desk, reviewer="bob") == []
    reviewed = desk.get("/v1/review/queue", params={"state": "reviewed"}, headers=ALICE).json()["items"][0]
    assert reviewed["reviewers"] == ["alice"] and reviewed["last_reviewed_at"]


def test_view_render_and_item_checks(desk: TestClient, clip: ReviewableClip) -> None:
    view = desk.get(f"/v1/review/clips/{clip.clip_id}", headers=AUTH).json()  # any API key may read
    assert view["clip"]["start_s"] == clip.verdict.span.start_s and view["clip"]["width"] == clip.verdict.info.width
    assert view["video_url"] == f"/v1/review/clips/{clip.clip_id}/video"
    assert len(view["keypoint_names"]) == 17 and [15, 13] in view["skeleton"]
    labels = {s.track_id: s.label for s in clip.caption.subjects}
    assert view["tracks"] and all(t["label"] == labels.get(t["track_id"], "") for t in view["tracks"])
    sample = view["tracks"][0]["samples"][0]
    assert len(sample["box"]) == 4 and len(sample["keypoints"]) == 17 and len(sample["keypoints"][0]) == 3
    assert view["caption"] == view["machine_caption"] and view["caption"]["text"] == clip.caption.text
    assert view["qa"] == view["machine_qa"] and len(view["qa"]) == len(clip.qa.items)
    assert view["base_review_id"] == "" and view["review_state"] == "unreviewed" and view["reviews"] == []
    assert "young adult" in view["vocabulary"]["age_groups"] and "approved" in view["vocabulary"]["decisions"]
    assert desk.get("/v1/review/clips/clip_0000000000000000", headers=ALICE).status_code == 404
    assert desk.get(f"/v1/review/clips/{clip.clip_id}").status_code == 401

    caption = copy.deepcopy(view["caption"])
    rendered = desk.post(f"/v1/review/clips/{clip.clip_id}/render", json={"caption": caption}, headers=ALICE).json()
    assert rendered == {"text": clip.caption.text, "problems": []}
    caption["subjects"][0]["attributes"]["gender"] = "female"
    action = caption["subjects"][0]["actions"][0]
    action["end_s"] = action["start_s"] - 0.5
    rendered = desk.post(f"/v1/review/clips/{clip.clip_id}/render", json={"caption": caption}, headers=ALICE).json()
    assert rendered["text"] != clip.caption.text and " she " in f" {rendered['text']} ".replace(",", " ")
    assert [p["path"] for p in rendered["problems"]] == ["subjects[0].actions[0].end_s"]
    unknown = desk.post(
        f"/v1/review/clips/{clip.clip_id}/render", json={"caption": {"subjects": "no"}}, headers=ALICE
    ).json()
    assert unknown["problems"] and unknown["text"] == ""

    items = copy.deepcopy(view["qa"])
    wrong = items[0]
    wrong["answer_index"] = (wrong["answer_index"] + 1) % 4
    duplicate = items[1]
    duplicate["options"][(duplicate["answer_index"] + 1) % 4] = duplicate["options"][duplicate["answer_index"]]
    checked = desk.post(
        f"/v1/review/clips/{clip.clip_id}/validate-items",
        json={"caption": view["caption"], "items": [wrong, duplicate, view["qa"][2]]},
        headers=ALICE,
    ).json()["items"]
    assert [c["item_id"] for c in checked] == [wrong["item_id"], duplicate["item_id"], view["qa"][2]["item_id"]]
    errors = [{p["path"] for p in c["problems"] if p["severity"] == "error"} for c in checked]
    assert "answer_index" in errors[0]
    assert f"options[{(duplicate['answer_index'] + 1) % 4}]" in errors[1]
    assert errors[2] == set()


def _read_review(settings: Settings, review_id: str) -> events_pb2.Review:
    consumer = KafkaConsumer(
        topics.REVIEWS,
        bootstrap_servers=settings.kafka_bootstrap_servers.split(","),
        auto_offset_reset="earliest",
        consumer_timeout_ms=10_000,
    )
    try:
        for record in consumer:
            review = events_pb2.Review.FromString(record.value)
            if review.review_id == review_id:
                assert record.key.decode() == review.video_id
                return review
    finally:
        consumer.close()
    raise AssertionError(f"review {review_id} is not on {topics.REVIEWS}")


def test_review_then_check(desk: TestClient, clip: ReviewableClip, review_settings: Settings) -> None:
    view = desk.get(f"/v1/review/clips/{clip.clip_id}", headers=ALICE).json()
    caption = copy.deepcopy(view["caption"])
    caption["subjects"][0]["attributes"]["age_group"] = "middle-aged"
    caption["text"] = "ignored: the server renders the text"
    rejected_id = view["qa"][0]["item_id"]
    edited = copy.deepcopy(view["qa"][1])
    edited["question"] = edited["question"]  # unchanged wording, kept as an edit
    edited["facts"] = [*edited["facts"], "checked by hand"]
    added = copy.deepcopy(view["qa"][2])
    decisions = [
        {"item_id": rejected_id, "decision": "rejected"},
        {"item_id": edited["item_id"], "decision": "edited", "item": edited},
        *({"item_id": item["item_id"], "decision": "approved"} for item in view["qa"][2:]),
        {"decision": "added", "item": added},
    ]

    # not a reviewer; a decision missing; an invalid edit; no such review to check
    body = {"decision": "accepted", "caption": caption, "items": decisions}
    url = f"/v1/review/clips/{clip.clip_id}/reviews"
    refused = desk.post(url, json=body, headers=AUTH)
    assert refused.status_code == 403 and refused.json()["detail"]["code"] == "not_a_reviewer"
    missing = desk.post(url, json={**body, "items": decisions[1:]}, headers=ALICE)
    assert missing.status_code == 422 and missing.json()["detail"]["code"] == "review_invalid"
    assert any(rejected_id in p["message"] for p in missing.json()["detail"]["problems"])
    broken = copy.deepcopy(edited)
    broken["answer_index"] = 9
    invalid = desk.post(
        url, json={**body, "items": [decisions[0], {**decisions[1], "item": broken}, *decisions[2:]]}, headers=ALICE
    )
    assert invalid.status_code == 422
    assert "items[1].answer_index" in {p["path"] for p in invalid.json()["detail"]["problems"]}
    bad_caption = copy.deepcopy(caption)
    bad_caption["subjects"][0]["label"] = ""
    invalid = desk.post(url, json={**body, "caption": bad_caption}, headers=ALICE)
    assert invalid.status_code == 422
    assert "caption.subjects[0].label" in {p["path"] for p in invalid.json()["detail"]["problems"]}
    unknown = desk.post(url, json={**body, "checks_review_id": "rev_nothing"}, headers=ALICE)
    assert unknown.status_code == 404 and unknown.json()["detail"]["code"] == "review_not_found"

    created = _submit(desk, clip.clip_id, ALICE, **body)
    assert created["review_state"] == "reviewed" and created["agreement"] is None
    event = _read_review(review_settings, created["review_id"])
    assert event.reviewer == "alice" and event.video_id == clip.video_id and event.span.clip_id == clip.clip_id
    assert event.decision == events_pb2.REVIEW_DECISION_ACCEPTED and not event.checks_review_id
    assert event.caption_before.text == clip.caption.text
    assert event.caption_after.subjects[0].attributes.age_group == "middle-aged"
    assert "middle-aged" in event.caption_after.text and "ignored" not in event.caption_after.text
    outcome = {item.item_id: events_pb2.ItemDecision.Name(item.decision) for item in event.items}
    assert outcome[rejected_id] == "ITEM_DECISION_REJECTED" and outcome[edited["item_id"]] == "ITEM_DECISION_EDITED"
    added_ids = [i.item_id for i in event.items if i.decision == events_pb2.ITEM_DECISION_ADDED]
    assert len(added_ids) == 1 and added_ids[0].startswith(created["review_id"])

    view = desk.get(f"/v1/review/clips/{clip.clip_id}", headers=BOB).json()
    assert view["review_state"] == "reviewed" and view["base_review_id"] == created["review_id"]
    assert view["caption"]["subjects"][0]["attributes"]["age_group"] == "middle-aged"
    assert rejected_id not in {item["item_id"] for item in view["qa"]} and added_ids[0] in {
        i["item_id"] for i in view["qa"]
    }
    assert [r["reviewer"] for r in view["reviews"]] == ["alice"]
    assert view["reviews"][0]["items"] == {"approved": len(decisions) - 3, "edited": 1, "rejected": 1, "added": 1}

    # alice may not check her own review; bob checks it, rejecting one item alice kept
    own = desk.post(url, json={**body, "checks_review_id": created["review_id"]}, headers=ALICE)
    assert own.status_code == 422 and own.json()["detail"]["code"] == "own_review"
    check_items = _approve_all(view)
    check_items[0]["decision"] = "rejected"
    check = _submit(
        desk,
        clip.clip_id,
        BOB,
        checks_review_id=created["review_id"],
        decision="accepted",
        caption=view["caption"],
        items=check_items,
        note="fine but one item is vague",
    )
    assert check["review_state"] == "checked"
    assert check["agreement"] == {
        "caption_agrees": True,
        "items_compared": len(view["qa"]),
        "items_agreed": len(view["qa"]) - 1,
    }
    assert _queue(desk) == [] and _queue(desk, state="checked") == [clip.clip_id]
    agreement = desk.get("/v1/review/agreement", params={"video_id": clip.video_id}, headers=ALICE).json()
    assert agreement["checked_clips"] == 1 and agreement["checks"] == 1 and agreement["caption_agreement"] == 1.0
    assert agreement["items_compared"] == len(view["qa"])
    assert agreement["item_agreement"] == round((len(view["qa"]) - 1) / len(view["qa"]), 4)
    assert sum(c["compared"] for c in agreement["by_category"].values()) == len(view["qa"])


def test_markup_is_stored_and_returned_verbatim(desk: TestClient, clip: ReviewableClip) -> None:
    view = desk.get(f"/v1/review/clips/{clip.clip_id}", headers=ALICE).json()
    caption = copy.deepcopy(view["caption"])
    label = '<script>alert("x")</script> the juggler'
    old = caption["subjects"][0]["label"]
    caption["subjects"][0]["label"] = label
    garment = caption["subjects"][0]["attributes"]["clothing"][0]
    garment["color"] = "<img src=x onerror=alert(1)>"
    for interaction in caption["interactions"]:
        for key in ("subject_label", "object_label"):
            if interaction[key] == old:
                interaction[key] = label
    rejected = [{"item_id": item["item_id"], "decision": "rejected"} for item in view["qa"]]
    _submit(desk, clip.clip_id, ALICE, decision="accepted", caption=caption, items=rejected)
    response = desk.get(f"/v1/review/clips/{clip.clip_id}", headers=ALICE)
    assert response.headers["content-type"].startswith("application/json")
    again = response.json()
    assert again["caption"]["subjects"][0]["label"] == label  # the text names one person by attributes only
    assert f"<img src=x onerror=alert(1)> {garment['item']}" in again["caption"]["text"]
    assert again["qa"] == []


def test_rebuilt_catalog_keeps_reviews(review_settings: Settings, clip: ReviewableClip) -> None:
    with running_gateway(review_settings) as client:
        wait_until(lambda: _complete(client, clip.clip_id), what="the clip's QA and tracks in the catalog")
        view = _view(client, clip.clip_id, ALICE)
        first = _submit(
            client, clip.clip_id, ALICE, decision="accepted", caption=view["caption"], items=_approve_all(view)
        )
        view = _view(client, clip.clip_id, BOB)
        _submit(
            client,
            clip.clip_id,
            BOB,
            checks_review_id=first["review_id"],
            decision="rejected",
            caption=view["caption"],
            items=_approve_all(view),
        )
        before = _view(client, clip.clip_id, ALICE)
        agreement = client.get("/v1/review/agreement", headers=ALICE).json()
    for path in review_settings.data_dir.glob("catalog.db*"):
        path.unlink()
    with running_gateway(review_settings) as client:
        wait_until(lambda: len(_view(client, clip.clip_id, ALICE).get("reviews", [])) == 2, what="reviews rebuilt")
        after = _view(client, clip.clip_id, ALICE)
        assert after["reviews"] == before["reviews"] and after["review_state"] == "checked"
        assert after["caption"] == before["caption"] and after["qa"] == before["qa"]
        assert client.get("/v1/review/agreement", headers=ALICE).json() == agreement


# --- the catalog's part, on SQLite and PostgreSQL, fed as the Kafka worker feeds it ---


def _item(item_id: str, category: int, answer: int = 0) -> events_pb2.QAItem:
    return events_pb2.QAItem(
        item_id=item_id, category=category, question=f"q {item_id}", options=["a", "b", "c", "d"], answer_index=answer
    )  # type: ignore[arg-type]


def _review(
    review_id: str, reviewer: str, caption: events_pb2.Caption, items: list[events_pb2.QAItemReview], checks: str = ""
) -> events_pb2.Review:
    review = events_pb2.Review(
        review_id=review_id,
        video_id=caption.video_id,
        span=caption.span,
        reviewer=reviewer,
        checks_review_id=checks,
        decision=events_pb2.REVIEW_DECISION_ACCEPTED,
        caption_before=caption,
        caption_after=caption,
        items=items,
    )
    review.reviewed_at.GetCurrentTime()
    return review


def test_catalog_reviews_on_each_backend(catalog_url: str) -> None:
    video = "vid_0123456789abcdef01234567"
    catalog = Catalog(catalog_url, final_stage="filter")
    offsets = iter(range(1000))

    def feed(topic: str, message: Message) -> None:
        catalog.handle(Event(topic, 0, next(offsets), video, message))

    try:
        captions = []
        for index, passed in enumerate((True, False)):
            span = events_pb2.ClipSpan(clip_id=clip_id(video, index, index + 5), start_s=index, end_s=index + 5)
            caption = events_pb2.Caption(video_id=video, span=span, text=f"caption {index}", backend="pose-grounded")
            caption.judgement.passed = passed
            feed(topics.CAPTIONS, caption)
            captions.append(caption)
        first = captions[0]
        count, action = _item("i1", events_pb2.QA_CATEGORY_COUNT), _item("i2", events_pb2.QA_CATEGORY_ACTION_DETAILS)
        feed(topics.QA, events_pb2.QASet(video_id=video, span=first.span, items=[count, action], backend="templates"))
        assert [e.clip["clip_id"] for e in catalog.review_queue()[0]] == [first.span.clip_id, captions[1].span.clip_id]
        assert [e.categories for e in catalog.review_queue(category="count")[0]] == [["action_details", "count"]]

        approved = events_pb2.ITEM_DECISION_APPROVED
        alice = _review(
            "rev_a",
            "alice",
            first,
            [
                events_pb2.QAItemReview(item_id="i1", decision=approved, before=count, after=count),
                events_pb2.QAItemReview(item_id="i2", decision=approved, before=action, after=action),
            ],
        )
        feed(topics.REVIEWS, alice)
        feed(topics.REVIEWS, alice)  # produced twice: stored once
        changed = _item("i2", events_pb2.QA_CATEGORY_ACTION_DETAILS, answer=1)
        bob = _review(
            "rev_b",
            "bob",
            first,
            [
                events_pb2.QAItemReview(item_id="i1", decision=approved, before=count, after=count),
                events_pb2.QAItemReview(
                    item_id="i2", decision=events_pb2.ITEM_DECISION_EDITED, before=action, after=changed
                ),
            ],
            checks="rev_a",
        )
        feed(topics.REVIEWS, bob)
        rows = catalog.clip_reviews(first.span.clip_id)
        assert [r["review_id"] for r in rows] == ["rev_a", "rev_b"] and Catalog.review_state(rows) == "checked"
        assert (rows[1]["caption_agrees"], rows[1]["items_compared"], rows[1]["items_agreed"]) == (True, 2, 1)
        entries, total = catalog.review_queue(state="all")
        assert total == 2 and entries[0].review_state == "checked" and entries[0].reviewers == ["alice", "bob"]
        assert catalog.review_queue()[1] == 1  # awaiting: the other clip only
        assert catalog.review_queue(reviewer="bob", state="checked")[1] == 1
        summary = catalog.review_agreement(video_id=video)
        assert (summary.checks, summary.captions_agreed, summary.items_compared, summary.items_agreed) == (1, 1, 2, 1)
        assert summary.by_category["count"].agreed == 1 and summary.by_category["action_details"].agreed == 0
        assert catalog.review_agreement(batch="no-such-batch").checks == 0
        report = build_report(catalog.engine).model_dump(mode="json")
        assert report["review"] == {
            "captioned_clips": 2,
            "unreviewed": 1,
            "reviewed": 0,
            "checked": 1,
            "checks": 1,
            "caption_agreement": 1.0,
            "items_compared": 2,
            "item_agreement": 0.5,
        }
        assert (
            "review: 2 captioned clips, 1 unreviewed, 0 reviewed once, 1 checked; 1 checks agree on 100.0% of "
            "captions and 50.0% of 2 QA items" in format_table(report)
        )
        # a catalog made before clip_categories fills it from the QA sets it logged
        with catalog.engine.begin() as conn:
            conn.execute(sa.delete(clip_categories))
    finally:
        catalog.close()
    reopened = Catalog(catalog_url, final_stage="filter")
    try:
        assert [e.categories for e in reopened.review_queue(state="all", category="count")[0]] == [
            ["action_details", "count"]
        ]
    finally:
        reopened.close()


def test_a_review_the_catalog_has_not_applied_yet(review_settings: Settings, clip: ReviewableClip) -> None:
    """The catalog stopped consuming: the submit answers 503 review_pending, and the review, on the topic, is
    applied once a catalog consumer runs again."""
    settings = review_settings.model_copy(update={"review_apply_timeout_s": 1.0})
    with running_gateway(settings) as client:
        wait_until(lambda: _complete(client, clip.clip_id), what="the clip's QA and tracks in the catalog")
        view = _view(client, clip.clip_id, ALICE)
        client.app.state.runtime.consumer.stop()
        body = {"decision": "accepted", "caption": view["caption"], "items": _approve_all(view)}
        pending = client.post(f"/v1/review/clips/{clip.clip_id}/reviews", json=body, headers=ALICE)
        assert pending.status_code == 503 and pending.json()["detail"]["code"] == "review_pending"
        assert _view(client, clip.clip_id, ALICE)["reviews"] == []
    with running_gateway(settings) as client:
        wait_until(lambda: _view(client, clip.clip_id, ALICE)["review_state"] == "reviewed", what="the review applied")
