"""`haic export`: training and benchmark files from the caption, QA and review topics.

Reads haic.captions.v1, haic.qa.v1 and haic.reviews.v1 to their current end and writes, into one directory:

- `haic_train.jsonl`: HAICTrain-style, one judge-passed caption per line (source video, span, caption
  text and its structure);
- `llava_video.json`: LLaVA-Video instruction-tuning conversations for LLaVA-NeXT's trainer (`<image>`,
  its placeholder for the sample's video, a detailed-caption instruction, the caption as the answer);
- `haic_bench.json`: HAICBench-style multiple-choice questions from QA sets whose caption passed the judge;
- with `--clips`, `clips/<clip_id>.mp4`: each exported clip cut from its source and re-encoded (H.264,
  yuv420p), with `clips/manifest.json` (clip id -> sha256, size, span, recipe).

Reviewed (paper section 3.3: people correct the machine's captions and check each other): per clip the
latest review (reviewed_at, then topic order) decides. Accepted, the clip exports with the reviewed caption
(caption_after) and the items the review kept (approved, edited as corrected, added), whatever the machine
judge said; rejected, the clip is left out of every file. Unreviewed clips export as the machine left them
(judge-passed only), or not at all with `--reviewed-only`. Every record carries `review`: whether the clip
was reviewed, by how many distinct people, who, and the id of the review it follows.

Deterministic: records are collapsed to the latest per clip id (redelivery and re-captioning repeat
clips), sorted by video id, clip start and clip id, and written with a fixed key order, so a re-run
over the same topics gives the same bytes. Resumable: every file is written to a temporary name and
renamed, and clips already cut with the content the manifest records are not cut again.

Checked: before anything is written, each file's records are checked against the rules of the loader it
is for (clients/export_rules.py); a violation is a bug here and fails the export.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import re
import sys
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlparse

from google.protobuf.json_format import MessageToDict
from tqdm import tqdm

from clients.export_rules import LLAVA_MEDIA_TOKEN, check_bench, check_llava, check_train, placeholders_in
from haic.v1 import events_pb2
from services.core import topics
from services.core.bus import TopicReadError, latest_per_clip, read_topic_to_end
from services.core.clip_cut import RECIPE, ClipCutError, cut_clip
from services.core.contracts import OPTION_LETTERS, category_slug
from services.core.settings import Settings, load
from services.core.storage import Storage, StorageError, file_sha256, open_storage

log = logging.getLogger(__name__)

TRAIN_FILE = "haic_train.jsonl"
LLAVA_FILE = "llava_video.json"
BENCH_FILE = "haic_bench.json"
CLIPS_DIR = "clips"
MANIFEST_FILE = "manifest.json"

# LLaVA-Video's detailed-caption prompts ask for the whole clip; this one names HAIC's focus on people.
CAPTION_INSTRUCTION = (
    "Describe this video in detail: for each person, their appearance and their actions in time order, "
    "and how the people interact."
)


class ExportError(RuntimeError):
    """The export could not be written."""


@dataclass(frozen=True)
class ClipFailure:
    clip_id: str
    source: str
    reason: str


@dataclass(frozen=True)
class ClipReview:
    """What the reviews of one clip decide for the export."""

    latest: events_pb2.Review  # the one that decides: latest reviewed_at, then topic order
    reviewers: tuple[str, ...]  # the distinct people who reviewed the clip, sorted
    checked: bool  # one person's review checks another's (the catalog's `checked` state)

    @property
    def accepted(self) -> bool:
        return self.latest.decision == events_pb2.REVIEW_DECISION_ACCEPTED

    def field(self) -> dict[str, Any]:
        """The records' `review` field (key order fixed: the bytes of a re-run must not change)."""
        return {
            "reviewed": True,
            "checked_by": len(self.reviewers),
            "reviewers": list(self.reviewers),
            "review_id": self.latest.review_id,
        }


def review_field(review: ClipReview | None) -> dict[str, Any]:
    if review is None:
        return {"reviewed": False, "checked_by": 0, "reviewers": [], "review_id": ""}
    return review.field()


@dataclass
class ExportReport:
    out_dir: Path
    train_path: Path
    llava_path: Path
    bench_path: Path
    manifest_path: Path | None = None
    caption_records: int = 0  # records read from the topic, duplicates included
    captions_superseded: int = 0  # older records of a clip replaced by its latest
    captions_failed: int = 0  # latest caption of the clip failed the judge: left out
    captions_invalid: int = 0  # records without a clip id
    train_examples: int = 0
    llava_examples: int = 0
    llava_left_out: int = 0  # the caption holds a media placeholder string LLaVA-NeXT would read as one
    clips: bool = False
    qa_records: int = 0
    qa_sets_superseded: int = 0
    qa_sets_left_out: int = 0  # their caption did not pass the judge (or no clip id)
    qa_items: int = 0
    qa_items_invalid: int = 0  # not 4 options or an answer index outside them
    clips_written: int = 0
    clips_skipped: int = 0  # already cut with the content the manifest records
    clip_failures: list[ClipFailure] = field(default_factory=list)
    reviewed_only: bool = False
    review_records: int = 0  # records read from haic.reviews.v1
    reviews_invalid: int = 0  # without a clip id, a reviewer or a decision
    clips_reviewed: int = 0  # exported with their latest, accepting, review's caption and items
    clips_checked: int = 0  # of those, checked: one person's review checked by another
    clips_rejected_by_review: int = 0  # the latest review rejected the clip: left out of every file
    clips_unreviewed_left_out: int = 0  # --reviewed-only: clips with a caption but no review
    qa_sets_reviewed: int = 0  # machine QA sets whose clip's review gave the items instead
    items_approved: int = 0  # the decisions of the exported clips' latest reviews
    items_edited: int = 0
    items_added: int = 0
    items_rejected: int = 0

    @property
    def complete(self) -> bool:
        return not self.clip_failures

    @property
    def items_kept(self) -> int:
        return self.items_approved + self.items_edited + self.items_added

    def describe(self) -> str:
        lines = [
            f"exported to {self.out_dir}",
            f"  {self.train_path.name}: {self.train_examples} captions from {self.caption_records} records "
            f"({self.captions_failed} judge failures left out, {self.captions_superseded} superseded records "
            f"collapsed, {self.captions_invalid} invalid)",
            f"  {self.llava_path.name}: {self.llava_examples} conversations ({self.llava_left_out} captions "
            f"left out: they hold a media placeholder)"
            + (
                f", for LLaVA-NeXT with --video_folder {self.out_dir}"
                if self.clips
                else "; without --clips they name whole sources, which LLaVA-NeXT decodes whole (start/end unread)"
            ),
            f"  {self.bench_path.name}: {self.qa_items} questions from {self.qa_records} QA records "
            f"({self.qa_sets_left_out} sets left out: caption failed the judge, {self.qa_sets_superseded} "
            f"superseded, {self.qa_sets_reviewed} replaced by their clip's review, {self.qa_items_invalid} "
            f"invalid items)",
            f"  reviews: {self.review_records} records ({self.reviews_invalid} invalid); {self.clips_reviewed} "
            f"clips exported as reviewed, {self.clips_checked} of them checked by a second person; "
            f"{self.clips_rejected_by_review} clips rejected by review and left out"
            + (
                f"; --reviewed-only: {self.clips_unreviewed_left_out} unreviewed clips left out"
                if self.reviewed_only
                else ""
            ),
            f"  reviewed items: {self.items_kept} kept ({self.items_approved} approved, {self.items_edited} "
            f"edited, {self.items_added} added), {self.items_rejected} rejected",
        ]
        if self.manifest_path is not None:
            lines.append(
                f"  {CLIPS_DIR}/: {self.clips_written} clips cut, {self.clips_skipped} already there, "
                f"{len(self.clip_failures)} failed"
            )
            lines += [f"    {f.clip_id} ({f.source}): {f.reason}" for f in self.clip_failures]
        return "\n".join(lines)


# --- reading the topics ---


def _with_clip_id(records: list[tuple[str, Any]], topic: str) -> tuple[list[tuple[str, Any]], int]:
    """The records that name a clip, and how many did not (nothing to export them as)."""
    kept = [(key, message) for key, message in records if message.span.clip_id]
    if len(kept) < len(records):
        log.warning("%s: %d records without a clip id skipped", topic, len(records) - len(kept))
    return kept, len(records) - len(kept)


def _order(message: Any) -> tuple[str, float, str]:
    return (message.video_id, message.span.start_s, message.span.clip_id)


_DECISIONS = (events_pb2.REVIEW_DECISION_ACCEPTED, events_pb2.REVIEW_DECISION_REJECTED)


def latest_reviews(records: Sequence[tuple[str, Any]]) -> tuple[dict[str, ClipReview], int]:
    """Per clip id, what its reviews decide, and how many records were invalid (no clip id, no reviewer or
    no decision: nothing to attribute or to act on). The latest review is the one with the latest
    reviewed_at, then the later position: one clip's reviews share the video id as key, hence a
    partition, so position is offset order."""
    by_clip: dict[str, list[tuple[tuple[int, int, int], events_pb2.Review]]] = {}
    invalid = 0
    for position, (_key, review) in enumerate(records):
        if not review.span.clip_id or not review.reviewer or review.decision not in _DECISIONS:
            invalid += 1
            log.warning("review %r skipped: no clip id, reviewer or decision", review.review_id)
            continue
        rank = (review.reviewed_at.seconds, review.reviewed_at.nanos, position)
        by_clip.setdefault(review.span.clip_id, []).append((rank, review))
    decided: dict[str, ClipReview] = {}
    for clip, ranked in by_clip.items():
        reviews = [review for _, review in ranked]
        reviewer_of = {review.review_id: review.reviewer for review in reviews if review.review_id}
        checked = any(
            review.checks_review_id in reviewer_of and reviewer_of[review.checks_review_id] != review.reviewer
            for review in reviews
        )
        latest = max(ranked, key=lambda pair: pair[0])[1]
        decided[clip] = ClipReview(latest, tuple(sorted({review.reviewer for review in reviews})), checked)
    return decided, invalid


def reviewed_caption(review: events_pb2.Review, machine: events_pb2.Caption | None) -> events_pb2.Caption:
    """The caption a clip exports with after its review: the reviewed structure and text on the machine
    caption's clip (video, span, source), so the clip is cut exactly as before its review."""
    caption = events_pb2.Caption()
    caption.CopyFrom(machine if machine is not None else review.caption_before)
    if machine is None:
        caption.video_id = caption.video_id or review.video_id
        if not caption.span.clip_id:
            caption.span.CopyFrom(review.span)
    caption.storage_uri = caption.storage_uri or review.storage_uri or review.caption_after.storage_uri
    after = review.caption_after
    # The gateway re-renders the text of every caption_after it publishes; a review on the topic without
    # one (another publisher) says nothing about the caption, so the caption it started from stands.
    if after.text:
        del caption.subjects[:]
        caption.subjects.extend(after.subjects)
        del caption.interactions[:]
        caption.interactions.extend(after.interactions)
        caption.text = after.text
        caption.backend = after.backend or caption.backend
    return caption


_KEPT = (events_pb2.ITEM_DECISION_APPROVED, events_pb2.ITEM_DECISION_EDITED, events_pb2.ITEM_DECISION_ADDED)


def kept_items(review: events_pb2.Review) -> list[events_pb2.QAItem]:
    """The items the review keeps, in its order: approved and edited ones as after, added ones. An
    approved item's after equals its before, so a publisher that leaves it unset loses nothing."""
    kept = []
    for decided in review.items:
        if decided.decision not in _KEPT:
            continue
        if decided.HasField("after"):
            kept.append(decided.after)
        elif decided.decision == events_pb2.ITEM_DECISION_APPROVED and decided.HasField("before"):
            kept.append(decided.before)
        else:
            log.warning("review %s: item %s kept without its text: skipped", review.review_id, decided.item_id)
    return kept


def _count_decisions(review: events_pb2.Review, report: ExportReport) -> None:
    for decided in review.items:
        if decided.decision == events_pb2.ITEM_DECISION_APPROVED:
            report.items_approved += 1
        elif decided.decision == events_pb2.ITEM_DECISION_EDITED:
            report.items_edited += 1
        elif decided.decision == events_pb2.ITEM_DECISION_ADDED:
            report.items_added += 1
        elif decided.decision == events_pb2.ITEM_DECISION_REJECTED:
            report.items_rejected += 1


def source_ref(uri: str) -> str:
    """What the files name as the video: the local path of a file:// URI (what training loaders open),
    any other URI (s3://) as it is."""
    parsed = urlparse(uri)
    return unquote(parsed.path) if parsed.scheme == "file" else uri


def _sorted_keys(value: Any) -> Any:
    # Protobuf map fields (evidence signals) iterate in no guaranteed order.
    if isinstance(value, dict):
        return {k: _sorted_keys(value[k]) for k in sorted(value)}
    if isinstance(value, list):
        return [_sorted_keys(v) for v in value]
    return value


def caption_structure(caption: events_pb2.Caption) -> dict[str, Any]:
    """The structured caption (subjects and interactions) as JSON; the judgement, storage and timing
    stay out of training data."""
    structured = events_pb2.Caption(subjects=caption.subjects, interactions=caption.interactions)
    return _sorted_keys(MessageToDict(structured, preserving_proto_field_name=True))


def _span(message: Any) -> tuple[float, float]:
    return round(message.span.start_s, 3), round(message.span.end_s, 3)


# --- records of the three files ---


def train_record(
    caption: events_pb2.Caption, clip_path: str | None, review: ClipReview | None = None
) -> dict[str, Any]:
    start, end = _span(caption)
    record: dict[str, Any] = {
        "video": source_ref(caption.storage_uri),
        "video_id": caption.video_id,
        "clip_id": caption.span.clip_id,
        "start": start,
        "end": end,
    }
    if clip_path is not None:
        record["clip"] = clip_path
    record |= {
        "caption": caption.text,
        "structure": caption_structure(caption),
        "backend": caption.backend,
        "review": review_field(review),
    }
    return record


def llava_record(
    caption: events_pb2.Caption, clip_path: str | None, review: ClipReview | None = None
) -> dict[str, Any]:
    record: dict[str, Any] = {"id": caption.span.clip_id}
    if clip_path is not None:
        record["video"] = clip_path
    else:
        start, end = _span(caption)
        record |= {"video": source_ref(caption.storage_uri), "start": start, "end": end}
    record["conversations"] = [
        # One DEFAULT_IMAGE_TOKEN for the sample's one video, at the start of the first human turn: LLaVA-NeXT
        # places the video's features there; a `<video>` string would be tokenized as text.
        {"from": "human", "value": f"{LLAVA_MEDIA_TOKEN}\n{CAPTION_INSTRUCTION}"},
        {"from": "gpt", "value": caption.text},
    ]
    # HAIC's own key: LLaVA-NeXT's dataset reads only id, image, video and conversations (export_rules.py)
    record["review"] = review_field(review)
    return record


def bench_records(
    qa: events_pb2.QASet, clip_path: str | None, review: ClipReview | None = None
) -> tuple[list[dict[str, Any]], int]:
    """The set's valid items as HAICBench entries, and how many items were invalid."""
    start, end = _span(qa)
    records, invalid = [], 0
    for item in qa.items:
        if (
            len(item.options) != len(OPTION_LETTERS)
            or not 0 <= item.answer_index < len(OPTION_LETTERS)
            or not item.question
        ):
            invalid += 1
            log.warning("QA item %s of clip %s skipped: malformed", item.item_id, qa.span.clip_id)
            continue
        record: dict[str, Any] = {
            "id": item.item_id,
            "video_id": qa.video_id,
            "clip_id": qa.span.clip_id,
            "video": source_ref(qa.storage_uri or qa.caption.storage_uri),
            "start": start,
            "end": end,
        }
        if clip_path is not None:
            record["clip"] = clip_path
        record |= {
            "question": item.question,
            "options": [f"{letter}. {option}" for letter, option in zip(OPTION_LETTERS, item.options, strict=True)],
            "answer": OPTION_LETTERS[item.answer_index],
            "category": category_slug(item.category),
            "review": review_field(review),
        }
        records.append(record)
    return records, invalid


# --- writing files ---


def write_atomic(path: Path, data: bytes) -> bool:
    """Writes through a temporary file and a rename, so readers and re-runs never see half a file; an
    identical file is left untouched. Returns whether the file changed."""
    if path.is_file() and path.stat().st_size == len(data) and path.read_bytes() == data:
        return False
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        with open(tmp, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    return True


def _json_bytes(value: Any) -> bytes:
    return (json.dumps(value, ensure_ascii=False, indent=2) + "\n").encode()


def _jsonl_bytes(values: Sequence[Any]) -> bytes:
    return "".join(json.dumps(v, ensure_ascii=False) + "\n" for v in values).encode()


class ClipManifest:
    """clips/manifest.json: what each clip file must be (sha256, size) and what it was cut from, so a
    re-run skips the clips already there and re-cuts a truncated, altered or outdated one."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.entries: dict[str, dict[str, Any]] = {}
        if path.is_file():
            try:
                loaded = json.loads(path.read_text())
            except json.JSONDecodeError as exc:
                log.warning("%s is unreadable (%s): every clip is verified by cutting it again", path, exc)
            else:
                if isinstance(loaded, dict):
                    self.entries = loaded

    @staticmethod
    def expected(caption: events_pb2.Caption) -> dict[str, Any]:
        start, end = _span(caption)
        return {"source": caption.storage_uri, "start": start, "end": end, "recipe": RECIPE}

    def is_current(self, caption: events_pb2.Caption, clip_file: Path) -> bool:
        entry = self.entries.get(caption.span.clip_id)
        if entry is None or not clip_file.is_file():
            return False
        if any(entry.get(k) != v for k, v in self.expected(caption).items()):
            return False
        return clip_file.stat().st_size == entry.get("size") and file_sha256(clip_file) == entry.get("sha256")

    def record(self, caption: events_pb2.Caption, clip_file: Path) -> None:
        entry = {"sha256": file_sha256(clip_file), "size": clip_file.stat().st_size} | self.expected(caption)
        self.entries[caption.span.clip_id] = entry
        # saved after every clip: an interrupted export loses at most the clip in progress
        write_atomic(self.path, _json_bytes(_sorted_keys(self.entries)))


def _process_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # alive, under another user
        return True
    return True


# The temporary names write_atomic and cut_clip use: .<name>.<pid>.tmp and .<clip_id>.<pid>.tmp.mp4
_TEMPORARY = re.compile(
    r"^\.(?:haic_train\.jsonl|llava_video\.json|haic_bench\.json|manifest\.json|clip_\w+)"
    r"\.(\d+)\.tmp(?:\.mp4)?$"
)


def remove_stale_temporaries(directory: Path) -> int:
    """Removes the temporary files of exports killed before they could clean up (their pid is in the
    name); those of a live export into the same directory stay. Returns how many were removed."""
    removed = 0
    for path in directory.glob(".*.tmp*"):
        match = _TEMPORARY.match(path.name)
        if match and int(match[1]) != os.getpid() and not _process_alive(int(match[1])):
            path.unlink(missing_ok=True)
            removed += 1
    return removed


def _cut_clips(
    captions: Sequence[events_pb2.Caption], storage: Storage, clips_dir: Path, report: ExportReport, progress: bool
) -> dict[str, str]:
    """Cuts every caption's clip that is not already there; returns clip id -> path relative to the
    output directory for the clips now present."""
    clips_dir.mkdir(parents=True, exist_ok=True)
    remove_stale_temporaries(clips_dir)
    manifest = ClipManifest(clips_dir / MANIFEST_FILE)
    report.manifest_path = manifest.path
    present: dict[str, str] = {}
    for caption in tqdm(captions, desc="cutting clips", unit="clip", disable=not progress):
        clip_id = caption.span.clip_id
        clip_file = clips_dir / f"{clip_id}.mp4"
        relative = f"{CLIPS_DIR}/{clip_file.name}"
        if manifest.is_current(caption, clip_file):
            report.clips_skipped += 1
            present[clip_id] = relative
            continue
        try:
            with storage.local_path(caption.storage_uri) as source:
                cut_clip(source, caption.span.start_s, caption.span.end_s, clip_file, clip_id)
        except StorageError as exc:
            report.clip_failures.append(ClipFailure(clip_id, caption.storage_uri, f"source unavailable: {exc}"))
            continue
        except ClipCutError as exc:
            report.clip_failures.append(ClipFailure(clip_id, caption.storage_uri, str(exc)))
            continue
        manifest.record(caption, clip_file)
        report.clips_written += 1
        present[clip_id] = relative
    return present


# --- the export ---


def run_export(
    settings: Settings, out_dir: Path, clips: bool, progress: bool = True, reviewed_only: bool = False
) -> ExportReport:
    """Reads the caption, QA and review topics to their end and writes the export into `out_dir`; with
    `reviewed_only`, only the clips whose latest review accepted them.

    Raises TopicReadError when the broker cannot be read and ExportError when the directory cannot be
    written; a clip that cannot be cut is recorded in the report and left out of llava_video.json (its
    file would be missing), the rest is exported.
    """
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise ExportError(f"cannot create {out_dir}: {exc}") from exc
    remove_stale_temporaries(out_dir)
    report = ExportReport(
        out_dir,
        out_dir / TRAIN_FILE,
        out_dir / LLAVA_FILE,
        out_dir / BENCH_FILE,
        clips=clips,
        reviewed_only=reviewed_only,
    )

    review_records = read_topic_to_end(settings, topics.REVIEWS)
    report.review_records = len(review_records)
    reviews, report.reviews_invalid = latest_reviews(review_records)
    accepted = {clip: review for clip, review in reviews.items() if review.accepted}
    report.clips_rejected_by_review = len(reviews) - len(accepted)

    caption_records = read_topic_to_end(settings, topics.CAPTIONS)
    report.caption_records = len(caption_records)
    caption_records, report.captions_invalid = _with_clip_id(caption_records, topics.CAPTIONS)
    latest, report.captions_superseded = latest_per_clip(caption_records)
    exported: list[events_pb2.Caption] = []
    for clip, caption in latest.items():
        if clip in reviews:
            continue  # its review decides, below
        if reviewed_only:
            report.clips_unreviewed_left_out += 1
        elif caption.judgement.passed:
            exported.append(caption)
        else:
            report.captions_failed += 1
    # A person's acceptance stands over the machine judge's verdict: the reviewer corrected what it flagged.
    reviewed: dict[str, events_pb2.Caption] = {}
    for clip, review in accepted.items():
        caption = reviewed_caption(review.latest, latest.get(clip))
        if not caption.storage_uri:
            report.reviews_invalid += 1
            log.warning("clip %s: reviewed, but neither its caption nor its review names the source", clip)
            continue
        reviewed[clip] = caption
        exported.append(caption)
        _count_decisions(review.latest, report)
        report.clips_reviewed += 1
        report.clips_checked += review.checked
    exported.sort(key=_order)

    qa_records = read_topic_to_end(settings, topics.QA)
    report.qa_records = len(qa_records)
    qa_records, report.qa_sets_left_out = _with_clip_id(qa_records, topics.QA)
    latest_qa, report.qa_sets_superseded = latest_per_clip(qa_records)
    qa_sets: list[events_pb2.QASet] = []
    for clip, qa in latest_qa.items():
        if clip in reviews:
            # accepted: the review's kept items replace the set's; rejected: counted with the clip
            report.qa_sets_reviewed += int(clip in reviewed)
            continue
        if reviewed_only:
            continue  # counted with its clip (or its clip has no caption on the topic)
        # A QA set carries the caption it was generated from; older sets without one go by the topic's.
        caption = qa.caption if qa.HasField("caption") else latest.get(clip)
        if caption is not None and caption.judgement.passed:
            qa_sets.append(qa)
        else:
            report.qa_sets_left_out += 1
    for clip, caption in reviewed.items():
        qa_sets.append(
            events_pb2.QASet(
                video_id=caption.video_id,
                span=caption.span,
                items=kept_items(accepted[clip].latest),
                storage_uri=caption.storage_uri,
            )
        )
    qa_sets.sort(key=_order)

    clip_paths: dict[str, str] = {}
    if clips:
        try:
            clip_paths = _cut_clips(exported, open_storage(settings), out_dir / CLIPS_DIR, report, progress)
        except OSError as exc:  # the output side (disk full, permissions): no later clip would fare better
            raise ExportError(f"cannot write clips into {out_dir / CLIPS_DIR}: {exc}") from exc

    def clip_of(clip_id: str) -> str | None:
        return clip_paths.get(clip_id) if clips else None

    train = [train_record(c, clip_of(c.span.clip_id), accepted.get(c.span.clip_id)) for c in exported]
    # With --clips an entry names its clip file, so a clip that could not be cut has no entry.
    llava = [
        llava_record(c, clip_of(c.span.clip_id), accepted.get(c.span.clip_id))
        for c in exported
        if not clips or c.span.clip_id in clip_paths
    ]
    # A placeholder string in a caption would ask LLaVA-NeXT for a second visual input the sample lacks.
    spoken = [record for record in llava if not placeholders_in(record["conversations"][1]["value"])]
    for record in llava:
        if record not in spoken:
            log.warning("clip %s left out of %s: its caption holds a media placeholder", record["id"], LLAVA_FILE)
    report.llava_left_out, llava = len(llava) - len(spoken), spoken
    bench: list[dict[str, Any]] = []
    for qa in qa_sets:
        records, invalid = bench_records(qa, clip_of(qa.span.clip_id), accepted.get(qa.span.clip_id))
        bench += records
        report.qa_items_invalid += invalid
    report.train_examples, report.llava_examples, report.qa_items = len(train), len(llava), len(bench)

    problems = [
        *(f"{TRAIN_FILE}: {p}" for p in check_train(train, out_dir)),
        *(f"{LLAVA_FILE}: {p}" for p in check_llava(llava, out_dir, clips)),
        *(f"{BENCH_FILE}: {p}" for p in check_bench(bench, out_dir)),
    ]
    if problems:
        raise ExportError(f"{len(problems)} records break their loader's rules: " + "; ".join(problems[:5]))

    try:
        write_atomic(report.train_path, _jsonl_bytes(train))
        write_atomic(report.llava_path, _json_bytes(llava))
        write_atomic(report.bench_path, _json_bytes(bench))
    except OSError as exc:
        raise ExportError(f"cannot write the export into {out_dir}: {exc}") from exc
    return report


# --- command line ---


def cmd_export(args: argparse.Namespace) -> int:
    """0 when everything was exported, 1 when the export failed or some clips could not be cut."""
    settings = load(Settings)
    try:
        report = run_export(
            settings,
            args.out_dir,
            clips=args.clips,
            progress=not args.no_progress,
            reviewed_only=args.reviewed_only,
        )
    except (TopicReadError, ExportError) as exc:
        print(f"export failed: {exc}", file=sys.stderr)
        return 1
    print(report.describe())
    return 0 if report.complete else 1
