"""The review desk's API (issue 15): the queue of clips to review, a clip's evidence, caption and QA as the desk
edits them, checks of an edit, and reviews submitted as events on haic.reviews.v1.

Every route needs a caller (a Bearer key, or the desk's cookie with its CSRF token on POSTs); only a reviewer may
submit. A submitted review is published keyed by the video id and the call returns once the catalog applied it, so
its answer and the next read are current. Caption and QA text is data: it is stored and answered verbatim as JSON
and never interpreted here (the page renders it as text).
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Path, Query, Request
from pydantic import BaseModel, Field, StrictInt
from sqlalchemy.engine import RowMapping
from starlette.concurrency import run_in_threadpool

from haic.v1 import events_pb2
from services.core import topics
from services.core.bus import Output, OutputDeliveryError
from services.core.caption_checks import (
    AGE_GROUPS,
    GENDERS,
    Problem,
    caption_from_json,
    caption_to_json,
    check_caption,
    check_item,
    errors,
    item_from_json,
    item_to_json,
    rerender,
)
from services.core.contracts import CATEGORY_SLUGS, INTERACTION_KIND_WORDS
from services.core.keypoints import COCO_KEYPOINTS, COCO_SKELETON
from services.gateway.auth import require_caller, require_reviewer
from services.gateway.catalog import QUEUE_STATES, AgreementSummary, Catalog, QueueEntry
from services.gateway.catalog_projection import kept_items
from services.gateway.errors import GatewayError, NotFoundError, NotReadyError
from services.gateway.runtime import GatewayRuntime
from services.gateway.schemas import BATCH_PATTERN, ErrorBody, MalformedBody, ValidationErrorBody

MAX_QUEUE_PAGE = 200
MAX_OFFSET = 2**31 - 1
MAX_ITEMS = 200
MAX_NOTE_CHARS = 4000
ID_PATTERN = r"^[A-Za-z0-9_.:-]{1,128}$"
REVIEWER_PATTERN = r"^[A-Za-z0-9_.-]{1,64}$"
ITEM_DECISIONS = ("approved", "edited", "rejected", "added")
_ITEM_DECISION = {
    "approved": events_pb2.ITEM_DECISION_APPROVED,
    "edited": events_pb2.ITEM_DECISION_EDITED,
    "rejected": events_pb2.ITEM_DECISION_REJECTED,
    "added": events_pb2.ITEM_DECISION_ADDED,
}
_DECISION_WORD = {value: word for word, value in _ITEM_DECISION.items()}

ClipId = Annotated[str, Path(pattern=ID_PATTERN, description="`clip_` and 16 hex digits")]


# ------------------------------------------------------------------------------------------ bodies


class ProblemOut(BaseModel):
    path: str = Field(description="Where, e.g. `subjects[0].actions[1].end_s` or `items[3].options[1]`")
    message: str
    severity: Literal["error", "warning"] = Field(description="A warning is shown but does not block a review")

    @classmethod
    def of(cls, problem: Problem) -> ProblemOut:
        return cls(path=problem.path, message=problem.message, severity=problem.severity)  # type: ignore[arg-type]


CaptionJson = Annotated[
    dict[str, Any],
    Field(
        description="A haic.v1.Caption as JSON (proto field names, every field printed): subjects (track_id, label, "
        "attributes {gender, age_group, clothing [{item, color}], accessories}, actions [{start_s, end_s, "
        "verb_phrase, body_part, direction, repetitions, target, evidence?}]), interactions [{start_s, end_s, kind, "
        "subject_label, object_label, evidence?}], text, backend, judgement"
    ),
]


class ItemJson(BaseModel):
    item_id: str = Field("", max_length=128)
    category: str = Field(description="A QA category slug, e.g. `count`", max_length=64)
    question: str = Field(max_length=2000)
    options: list[Annotated[str, Field(max_length=1000)]] = Field(max_length=16, description="Four options")
    answer_index: StrictInt = Field(description="The correct option, 0..3")
    facts: list[Annotated[str, Field(max_length=2000)]] = Field(default_factory=list, max_length=64)

    @classmethod
    def of(cls, item: events_pb2.QAItem) -> ItemJson:
        return cls.model_validate(item_to_json(item))


class QueueItem(BaseModel):
    clip_id: str
    video_id: str
    start_s: float
    end_s: float
    description: str
    stage: str
    judge_passed: bool | None
    caption_backend: str
    qa_item_count: int
    categories: list[str]
    review_state: Literal["unreviewed", "reviewed", "checked"]
    reviewers: list[str]
    last_reviewed_at: datetime | None

    @classmethod
    def of(cls, entry: QueueEntry) -> QueueItem:
        clip = entry.clip
        return cls(
            clip_id=clip["clip_id"],
            video_id=clip["video_id"],
            start_s=clip["start_s"] or 0.0,
            end_s=clip["end_s"] or 0.0,
            description=clip["description"] or "",
            stage=clip["stage"],
            judge_passed=clip["caption_judge_passed"],
            caption_backend=clip["caption_backend"] or "",
            qa_item_count=clip["qa_item_count"] or 0,
            categories=entry.categories,
            review_state=entry.review_state,  # type: ignore[arg-type]
            reviewers=entry.reviewers,
            last_reviewed_at=entry.last_reviewed_at,
        )


class QueuePage(BaseModel):
    items: list[QueueItem]
    total: int


class ClipInfo(BaseModel):
    clip_id: str
    video_id: str
    start_s: float
    end_s: float
    fps: float
    width: int
    height: int
    description: str
    stage: str
    judge_passed: bool | None
    judge_reasons: list[str]
    caption_backend: str


class PoseSampleOut(BaseModel):
    t_s: float = Field(description="Source-video seconds")
    box: list[float] = Field(description="x1, y1, x2, y2 in source-video pixels")
    keypoints: list[list[float]] = Field(description="17 COCO keypoints as [x, y, score]")


class TrackOut(BaseModel):
    track_id: int
    label: str = Field(description="The label of the caption's subject with this track id, else empty")
    samples: list[PoseSampleOut]


class Agreement(BaseModel):
    caption_agrees: bool
    items_compared: int
    items_agreed: int


class ItemCounts(BaseModel):
    approved: int
    edited: int
    rejected: int
    added: int


class ReviewSummary(BaseModel):
    review_id: str
    reviewer: str
    reviewed_at: datetime | None
    checks_review_id: str
    decision: Literal["accepted", "rejected"]
    caption_changed: bool
    items: ItemCounts
    agreement: Agreement | None


class Vocabulary(BaseModel):
    genders: list[str]
    age_groups: list[str]
    interaction_kinds: list[str]
    categories: list[str]
    decisions: list[str]


class ClipReviewView(BaseModel):
    clip: ClipInfo
    video_url: str
    skeleton: list[list[int]] = Field(description="COCO-17 limbs as keypoint index pairs")
    keypoint_names: list[str]
    tracks: list[TrackOut]
    caption: CaptionJson
    machine_caption: CaptionJson
    qa: list[ItemJson]
    machine_qa: list[ItemJson]
    base_review_id: str = Field(description="The review the caption and qa come from; empty for the machine's")
    review_state: Literal["unreviewed", "reviewed", "checked"]
    reviews: list[ReviewSummary]
    vocabulary: Vocabulary


class RenderRequest(BaseModel):
    caption: CaptionJson


class RenderResult(BaseModel):
    text: str = Field(description="HAIC's text of the caption's structure, rendered even when there are problems")
    problems: list[ProblemOut]


class ValidateItemsRequest(BaseModel):
    caption: CaptionJson
    items: list[ItemJson] = Field(max_length=MAX_ITEMS)


class ItemProblems(BaseModel):
    item_id: str
    problems: list[ProblemOut]


class ValidateItemsResult(BaseModel):
    items: list[ItemProblems]


class ItemDecisionIn(BaseModel):
    item_id: str = Field("", max_length=128, description="The base item's id; ignored for an added item")
    decision: Literal["approved", "edited", "rejected", "added"]
    item: ItemJson | None = Field(None, description="The item as corrected (edited) or written (added)")


class ReviewSubmission(BaseModel):
    checks_review_id: str = Field(
        "", max_length=128, description="The review this one checks (another reviewer's); empty for a review"
    )
    decision: Literal["accepted", "rejected"]
    caption: CaptionJson
    items: list[ItemDecisionIn] = Field(max_length=MAX_ITEMS, description="One decision per item of the view's qa")
    note: str = Field("", max_length=MAX_NOTE_CHARS)


class ReviewCreated(BaseModel):
    review_id: str
    review_state: Literal["unreviewed", "reviewed", "checked"]
    agreement: Agreement | None


class CategoryAgreementOut(BaseModel):
    compared: int
    agreed: int
    share: float | None


class AgreementReport(BaseModel):
    checked_clips: int
    checks: int = Field(description="Reviews that check another person's review")
    caption_agreement: float | None = Field(description="Share of checks whose caption text is unchanged")
    items_compared: int
    item_agreement: float | None
    by_category: dict[str, CategoryAgreementOut]


class ReviewProblemDetail(BaseModel):
    code: str
    message: str
    problems: list[ProblemOut] = Field(default_factory=list)


class ReviewProblemBody(BaseModel):
    detail: ReviewProblemDetail


# ------------------------------------------------------------------------------------------ errors


class ReviewInvalidError(GatewayError):
    """A review the desk cannot take as it is; `problems` say where (422)."""

    status_code = 422

    def __init__(self, code: str, message: str, problems: Sequence[Problem] = ()) -> None:
        super().__init__(code, message)
        self.problems = list(problems)

    def body(self) -> dict[str, object]:
        body = super().body()
        detail = body["detail"]
        assert isinstance(detail, dict)
        detail["problems"] = [ProblemOut.of(p).model_dump() for p in self.problems]
        return body


# ------------------------------------------------------------------------------------------ the clip


@dataclass(frozen=True)
class ClipContext:
    """What the catalog knows of a captioned clip: its row, its video, the pipeline's messages and its reviews."""

    clip: RowMapping
    video: RowMapping | None
    verdict: events_pb2.ClipVerdict | None
    machine_caption: events_pb2.Caption
    machine_qa: list[events_pb2.QAItem]
    reviews: list[RowMapping]

    @property
    def start_s(self) -> float:
        return float(self.clip["start_s"] or 0.0)

    @property
    def end_s(self) -> float:
        return float(self.clip["end_s"] or 0.0)

    @property
    def latest(self) -> events_pb2.Review | None:
        return events_pb2.Review.FromString(bytes(self.reviews[-1]["payload"])) if self.reviews else None

    def base(self) -> tuple[str, events_pb2.Caption, list[events_pb2.QAItem]]:
        """What a new review starts from: the latest review's after (its kept items), else the machine's."""
        latest = self.latest
        if latest is None:
            return "", self.machine_caption, list(self.machine_qa)
        kept = [item for item in kept_items(latest).values() if item is not None]
        return latest.review_id, latest.caption_after, kept

    def span(self) -> events_pb2.ClipSpan:
        clip = self.clip
        return events_pb2.ClipSpan(
            clip_id=clip["clip_id"],
            start_s=self.start_s,
            end_s=self.end_s,
            clip_index=clip["clip_index"] or 0,
            clip_count=clip["clip_count"] or 0,
            scene_index=clip["scene_index"] or 0,
        )


def load_clip(catalog: Catalog, clip_id: str) -> ClipContext:
    clip = catalog.find_clip(clip_id)
    if clip is None:
        raise NotFoundError("clip_not_found", f"clip {clip_id} is not in the catalog")
    captions = catalog.clip_messages(clip_id, topics.CAPTIONS)
    if not captions:
        raise NotFoundError("clip_not_captioned", f"clip {clip_id} has no caption yet: nothing to review")
    caption = captions[-1]
    assert isinstance(caption, events_pb2.Caption)
    qa_sets = catalog.clip_messages(clip_id, topics.QA)
    items = list(qa_sets[-1].items) if qa_sets else []  # type: ignore[attr-defined]
    verdicts = [
        v for v in catalog.clip_messages(clip_id, topics.CLIPS_ACCEPTED) if isinstance(v, events_pb2.ClipVerdict)
    ]
    dense = [v for v in verdicts if v.dense_tracks]
    chosen = dense or verdicts
    verdict = chosen[-1] if chosen else None
    view = catalog.find_video(clip["video_id"])
    return ClipContext(clip, view.video if view else None, verdict, caption, items, catalog.clip_reviews(clip_id))


def captioned_clip(catalog: Catalog, clip_id: str) -> tuple[float, float]:
    """The clip's [start_s, end_s) when it is captioned: what rendering and item checks need (the page calls them
    as the reviewer types, so they do not read the clip's pose tracks)."""
    clip = catalog.find_clip(clip_id)
    if clip is None:
        raise NotFoundError("clip_not_found", f"clip {clip_id} is not in the catalog")
    if clip["caption_text"] is None:
        raise NotFoundError("clip_not_captioned", f"clip {clip_id} has no caption yet: nothing to review")
    return float(clip["start_s"] or 0.0), float(clip["end_s"] or 0.0)


def _agreement(row: RowMapping) -> Agreement | None:
    if row["checked_reviewer"] is None or row["caption_agrees"] is None:
        return None
    return Agreement(
        caption_agrees=bool(row["caption_agrees"]),
        items_compared=row["items_compared"] or 0,
        items_agreed=row["items_agreed"] or 0,
    )


def _review_summary(row: RowMapping) -> ReviewSummary:
    reviewed_at = row["reviewed_at"]
    return ReviewSummary(
        review_id=row["review_id"],
        reviewer=row["reviewer"],
        reviewed_at=reviewed_at,
        checks_review_id=row["checks_review_id"],
        decision=row["decision"],
        caption_changed=bool(row["caption_changed"]),
        items=ItemCounts(
            approved=row["items_approved"],
            edited=row["items_edited"],
            rejected=row["items_rejected"],
            added=row["items_added"],
        ),
        agreement=_agreement(row),
    )


def _tracks(verdict: events_pb2.ClipVerdict | None, caption: events_pb2.Caption) -> list[TrackOut]:
    if verdict is None:
        return []
    labels = {subject.track_id: subject.label for subject in caption.subjects}
    tracks = verdict.dense_tracks or verdict.tracks
    return [
        TrackOut(
            track_id=track.track_id,
            label=labels.get(track.track_id, ""),
            samples=[
                PoseSampleOut(
                    t_s=round(sample.t_s, 4),
                    box=[round(v, 1) for v in (sample.box.x1, sample.box.y1, sample.box.x2, sample.box.y2)],
                    keypoints=[[round(k.x, 1), round(k.y, 1), round(k.score, 3)] for k in sample.keypoints],
                )
                for sample in track.samples
            ],
        )
        for track in tracks
    ]


def clip_view(context: ClipContext) -> ClipReviewView:
    clip, video, verdict = context.clip, context.video, context.verdict
    info = verdict.info if verdict is not None else events_pb2.VideoInfo()
    base_id, caption, items = context.base()
    machine = context.machine_caption
    return ClipReviewView(
        clip=ClipInfo(
            clip_id=clip["clip_id"],
            video_id=clip["video_id"],
            start_s=context.start_s,
            end_s=context.end_s,
            fps=info.fps or (video["fps"] if video is not None and video["fps"] else 0.0),
            width=info.width or (video["width"] if video is not None and video["width"] else 0),
            height=info.height or (video["height"] if video is not None and video["height"] else 0),
            description=(verdict.description if verdict is not None else "")
            or (video["description"] if video is not None else "")
            or "",
            stage=clip["stage"],
            judge_passed=clip["caption_judge_passed"],
            judge_reasons=list(machine.judgement.reasons),
            caption_backend=clip["caption_backend"] or machine.backend,
        ),
        video_url=f"/v1/review/clips/{clip['clip_id']}/video",
        skeleton=[list(pair) for pair in COCO_SKELETON],
        keypoint_names=list(COCO_KEYPOINTS),
        tracks=_tracks(verdict, caption),
        caption=caption_to_json(caption),
        machine_caption=caption_to_json(machine),
        qa=[ItemJson.of(item) for item in items],
        machine_qa=[ItemJson.of(item) for item in context.machine_qa],
        base_review_id=base_id,
        review_state=Catalog.review_state(context.reviews),  # type: ignore[arg-type]
        reviews=[_review_summary(row) for row in context.reviews],
        vocabulary=Vocabulary(
            genders=list(GENDERS),
            age_groups=list(AGE_GROUPS),
            interaction_kinds=list(INTERACTION_KIND_WORDS),
            categories=list(CATEGORY_SLUGS.values()),
            decisions=list(ITEM_DECISIONS),
        ),
    )


# ------------------------------------------------------------------------------------------ a submitted review


def build_review(
    context: ClipContext, submission: ReviewSubmission, reviewer: str, review_id: str
) -> events_pb2.Review:
    """The Review a submission makes, or ReviewInvalidError with every problem found (paths into the body)."""
    _base_id, base_caption, base_items = context.base()
    problems: list[Problem] = []
    after, parse_problems = caption_from_json(submission.caption)
    problems += [p.under("caption") for p in parse_problems]
    accepted = submission.decision == "accepted"
    if not parse_problems and accepted:
        problems += [p.under("caption") for p in errors(check_caption(after, context.start_s, context.end_s))]
    # The caption as the dataset keeps it: the clip's identity and the machine's provenance, the text re-rendered.
    after.video_id, after.storage_uri = context.clip["video_id"], base_caption.storage_uri
    after.span.CopyFrom(context.span())
    after.backend = after.backend or base_caption.backend
    after.text = rerender(after, context.end_s - context.start_s)
    after.produced_at.GetCurrentTime()

    by_id = {item.item_id: item for item in base_items}
    decided: dict[str, int] = {}
    reviewed: list[events_pb2.QAItemReview] = []
    added = 0
    for index, decision in enumerate(submission.items):
        at = f"items[{index}]"
        entry = events_pb2.QAItemReview(decision=_ITEM_DECISION[decision.decision])  # type: ignore[arg-type]
        if decision.decision == "added":
            added += 1
            entry.item_id = f"{review_id}-{added}"
        else:
            before = by_id.get(decision.item_id)
            if before is None:
                problems.append(Problem(f"{at}.item_id", f"{decision.item_id!r} is not an item of the base QA"))
                continue
            if decision.item_id in decided:
                problems.append(Problem(f"{at}.item_id", f"a second decision for item {decision.item_id!r}"))
                continue
            decided[decision.item_id] = index
            entry.item_id = decision.item_id
            entry.before.CopyFrom(before)
        if decision.decision == "approved":
            entry.after.CopyFrom(entry.before)
        elif decision.decision in ("edited", "added"):
            if decision.item is None:
                problems.append(Problem(f"{at}.item", f"an {decision.decision} item needs the item"))
                continue
            item, item_problems = item_from_json(decision.item.model_dump())
            problems += [p.under(at) for p in item_problems]
            if item_problems:
                continue
            item.item_id = entry.item_id
            if accepted:
                problems += [p.under(at) for p in errors(check_item(item, after))]
            entry.after.CopyFrom(item)
        reviewed.append(entry)
    for item_id in by_id:
        if item_id not in decided:
            problems.append(Problem("items", f"no decision for item {item_id!r}: every item of the base QA needs one"))
    if problems:
        raise ReviewInvalidError("review_invalid", f"the review has {len(problems)} problem(s)", problems)

    review = events_pb2.Review(
        review_id=review_id,
        video_id=context.clip["video_id"],
        span=context.span(),
        reviewer=reviewer,
        checks_review_id=submission.checks_review_id,
        decision=(
            events_pb2.REVIEW_DECISION_ACCEPTED if accepted else events_pb2.REVIEW_DECISION_REJECTED  # type: ignore[arg-type]
        ),
        caption_before=base_caption,
        caption_after=after,
        items=reviewed,
        note=submission.note,
        storage_uri=context.clip["storage_uri"] or "",
    )
    review.reviewed_at.GetCurrentTime()
    return review


def _wait_until_applied(catalog: Catalog, review_id: str, timeout_s: float) -> RowMapping | None:
    deadline = time.monotonic() + timeout_s
    while True:
        seen = catalog.change_count
        row = catalog.find_review(review_id)
        remaining = deadline - time.monotonic()
        if row is not None or remaining <= 0:
            return row
        catalog.wait_for_change(seen, min(remaining, 0.25))  # woken by the catalog's writes; polls anyway


def _share(part: int, whole: int) -> float | None:
    return round(part / whole, 4) if whole else None


def agreement_report(summary: AgreementSummary) -> AgreementReport:
    return AgreementReport(
        checked_clips=summary.checked_clips,
        checks=summary.checks,
        caption_agreement=_share(summary.captions_agreed, summary.checks),
        items_compared=summary.items_compared,
        item_agreement=_share(summary.items_agreed, summary.items_compared),
        by_category={
            slug: CategoryAgreementOut(compared=c.compared, agreed=c.agreed, share=_share(c.agreed, c.compared))
            for slug, c in summary.by_category.items()
        },
    )


# ------------------------------------------------------------------------------------------ routes


def _catalog(request: Request) -> Catalog:
    runtime: GatewayRuntime | None = getattr(request.app.state, "runtime", None)
    if runtime is None or runtime.catalog is None:
        raise NotReadyError("starting", "the gateway is starting or stopping")
    return runtime.catalog


CatalogDep = Annotated[Catalog, Depends(_catalog)]
_errors: dict[int | str, dict[str, Any]] = {
    401: {"model": ErrorBody, "description": "No API key or desk session, or one that is not valid"},
    403: {"model": ErrorBody, "description": "csrf_failed (a cookie request without the CSRF token)"},
}
_not_found: dict[int | str, dict[str, Any]] = {404: {"model": ErrorBody, "description": "No such captioned clip"}}
_malformed: dict[int | str, dict[str, Any]] = {400: {"model": MalformedBody, "description": "The body is not JSON"}}

router = APIRouter(prefix="/v1/review", tags=["review"], dependencies=[Depends(require_caller)], responses=_errors)


@router.get("/queue")
async def review_queue(
    catalog: CatalogDep,
    video_id: Annotated[str | None, Query(pattern=ID_PATTERN)] = None,
    stage: Annotated[str | None, Query(pattern=ID_PATTERN, description="The clip's stage, e.g. `qagen`")] = None,
    category: Annotated[str | None, Query(pattern=ID_PATTERN, description="A QA category slug")] = None,
    reviewer: Annotated[str | None, Query(pattern=REVIEWER_PATTERN, description="Clips this reviewer reviewed")] = None,
    state: Annotated[
        Literal["awaiting", "unreviewed", "reviewed", "checked", "all"],
        Query(description="`awaiting`: not yet checked (unreviewed or reviewed once)"),
    ] = "awaiting",
    limit: Annotated[int, Query(ge=1, le=MAX_QUEUE_PAGE)] = 50,
    offset: Annotated[int, Query(ge=0, le=MAX_OFFSET)] = 0,
) -> QueuePage:
    """Captioned clips to review: judge-passed first, then unreviewed before reviewed, then oldest first."""
    assert state in QUEUE_STATES
    entries, total = await run_in_threadpool(
        lambda: catalog.review_queue(
            state=state,
            video_id=video_id,
            stage=stage,
            category=category,
            reviewer=reviewer,
            limit=limit,
            offset=offset,
        )
    )
    return QueuePage(items=[QueueItem.of(entry) for entry in entries], total=total)


@router.get("/clips/{clip_id}", responses=_not_found)
async def review_clip(clip_id: ClipId, catalog: CatalogDep) -> ClipReviewView:
    """A clip as the desk reviews it: its pose tracks, the caption and QA to start from (the latest review's, else
    the machine's), the machine's, its reviews and the vocabulary of the editable fields."""
    context = await run_in_threadpool(load_clip, catalog, clip_id)
    return clip_view(context)


@router.post("/clips/{clip_id}/render", responses={**_not_found, **_malformed})
async def render_caption(clip_id: ClipId, body: RenderRequest, catalog: CatalogDep) -> RenderResult:
    """HAIC's text of an edited caption, and its structural problems (the text is rendered even with them)."""
    start_s, end_s = await run_in_threadpool(captioned_clip, catalog, clip_id)
    caption, problems = caption_from_json(body.caption)
    text = ""
    if not problems:
        problems = check_caption(caption, start_s, end_s)
        text = rerender(caption, end_s - start_s)
    return RenderResult(text=text, problems=[ProblemOut.of(p) for p in problems])


@router.post("/clips/{clip_id}/validate-items", responses={**_not_found, **_malformed})
async def validate_items(clip_id: ClipId, body: ValidateItemsRequest, catalog: CatalogDep) -> ValidateItemsResult:
    """Each item checked against the given caption by the QA generator's validator (paths like `options[2]`)."""
    await run_in_threadpool(captioned_clip, catalog, clip_id)
    caption, _caption_problems = caption_from_json(body.caption)
    results = []
    for given in body.items:
        item, problems = item_from_json(given.model_dump())
        if not problems:
            problems = check_item(item, caption)
        results.append(ItemProblems(item_id=given.item_id, problems=[ProblemOut.of(p) for p in problems]))
    return ValidateItemsResult(items=results)


@router.post(
    "/clips/{clip_id}/reviews",
    status_code=201,
    responses={
        **_not_found,
        **_malformed,
        403: {"model": ErrorBody, "description": "not_a_reviewer, or csrf_failed"},
        422: {
            "model": ReviewProblemBody | ValidationErrorBody,
            "description": "review_invalid (with problems) or own_review; or a body that is not a review",
        },
        503: {"model": ErrorBody, "description": "Kafka refused the review, or the catalog did not apply it in time"},
    },
)
async def submit_review(
    clip_id: ClipId,
    body: ReviewSubmission,
    catalog: CatalogDep,
    request: Request,
    reviewer: Annotated[str, Depends(require_reviewer)],
) -> ReviewCreated:
    """Publish a review of the clip on haic.reviews.v1 and answer once the catalog applied it.

    Every item of the view's `qa` needs one decision; an accepted review's caption and edited or added items must
    pass the checks (422 `review_invalid` with problems). A check names another reviewer's review of this clip
    (`own_review` 422, `review_not_found` 404). The caption's text is re-rendered from its structure."""
    context = await run_in_threadpool(load_clip, catalog, clip_id)
    if body.checks_review_id:
        checked = next((row for row in context.reviews if row["review_id"] == body.checks_review_id), None)
        if checked is None:
            raise NotFoundError("review_not_found", f"clip {clip_id} has no review {body.checks_review_id}")
        if checked["reviewer"] == reviewer:
            raise ReviewInvalidError("own_review", "a check must be of another reviewer's review")
    review = build_review(context, body, reviewer, f"rev_{uuid.uuid4().hex[:24]}")
    runtime: GatewayRuntime = request.app.state.runtime
    if runtime is None or runtime.producer is None:
        raise NotReadyError("starting", "the gateway is starting or stopping")
    try:
        await run_in_threadpool(runtime.producer.deliver, [Output(topics.REVIEWS, review.video_id, review)])
    except OutputDeliveryError as exc:
        raise NotReadyError("bus_unavailable", f"the review could not be published: {exc}") from exc
    # The catalog consumer applies a message within milliseconds when it keeps up; one far behind (a rebuild)
    # answers 503, and the review, already on the topic, is applied when the consumer gets to it.
    timeout_s = runtime.settings.review_apply_timeout_s
    row = await run_in_threadpool(_wait_until_applied, catalog, review.review_id, timeout_s)
    if row is None:
        raise NotReadyError(
            "review_pending",
            f"review {review.review_id} is published but the catalog has not applied it within {timeout_s:g} s",
        )
    rows = await run_in_threadpool(catalog.clip_reviews, clip_id)
    return ReviewCreated(
        review_id=review.review_id,
        review_state=Catalog.review_state(rows),  # type: ignore[arg-type]
        agreement=_agreement(row),
    )


@router.get("/agreement")
async def review_agreement(
    catalog: CatalogDep,
    video_id: Annotated[str | None, Query(pattern=ID_PATTERN)] = None,
    batch: Annotated[str | None, Query(pattern=BATCH_PATTERN, description="An ingestion run's videos")] = None,
) -> AgreementReport:
    """How often a second reviewer agreed with the first: captions (text unchanged) and QA items (same kept item, or
    both rejected), overall and per category."""
    summary = await run_in_threadpool(catalog.review_agreement, video_id, batch)
    return agreement_report(summary)
