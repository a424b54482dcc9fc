"""What the loader each export file names needs of it, checked before the file is written.

- `llava_video.json` is for LLaVA-NeXT (the codebase of LLaVA-Video), `llava/train/train.py`, run with
  `--data_path llava_video.json --video_folder <export dir>`. `LazySupervisedDataset` loads a JSON list;
  a record with `video` (and no `image`) is a video sample whose file is `os.path.join(video_folder,
  video)`, decoded whole as one visual input; `preprocess_multimodal` moves a single `<image>`
  (DEFAULT_IMAGE_TOKEN) to the front of its turn, and the tokenizer turns each `<image>` into one image
  slot. So a video sample needs exactly one `<image>`, at the start of the first human turn, and none
  elsewhere; a `<video>` string is tokenized as text and the video's features are dropped. Turns
  alternate human/gpt from a human turn (`preprocess_*` assert the roles). Of a record the dataset reads
  only `id`, `image`, `video` and `conversations` (`_get_item`, `lengths`, `modality_lengths`; checked in
  LLaVA-NeXT at 45f2d92): HAIC's other keys (`start`, `end`, `review`) are loaded with the list and never
  read. A key outside both sets is a problem: the next one could be one the loader does read (`image`).
- `haic_train.jsonl` (HAICTrain-style) and `haic_bench.json` (HAICBench-style) are HAIC's own formats:
  no public loader of them exists to check against, so their fields are the ones README documents.
- Every record of the three says who checked it (`review`, README): `reviewed`, `checked_by` (the number
  of distinct reviewers, as many as `reviewers` names, sorted) and `review_id` (set exactly when reviewed).

Every checker returns the problems it found (empty when the records load as intended), each naming the
record's clip id.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from pathlib import Path, PurePosixPath
from typing import Any

from services.core.contracts import OPTION_LETTERS

# LLaVA-NeXT's DEFAULT_IMAGE_TOKEN (llava/constants.py): it marks a video sample too.
LLAVA_MEDIA_TOKEN = "<image>"
# Strings a multimodal loader reads as a media placeholder: none may appear where no media item is meant.
MEDIA_PLACEHOLDERS = ("<image>", "<video>")

TRAIN_FIELDS = ("video", "video_id", "clip_id", "start", "end", "caption", "structure", "backend", "review")
BENCH_FIELDS = (
    "id",
    "video_id",
    "clip_id",
    "video",
    "start",
    "end",
    "question",
    "options",
    "answer",
    "category",
    "review",
)
# What LLaVA-NeXT's LazySupervisedDataset reads of a record, and HAIC's keys it carries along unread.
LLAVA_READ_KEYS = ("id", "image", "video", "conversations")
LLAVA_UNREAD_KEYS = ("start", "end", "review")
REVIEW_FIELDS = ("reviewed", "checked_by", "reviewers", "review_id")


def placeholders_in(text: str) -> int:
    return sum(text.count(token) for token in MEDIA_PLACEHOLDERS)


def relative_media_problem(path: object, out_dir: Path) -> str | None:
    """Why `path` is not a file inside `out_dir` named relative to it, or None when it is."""
    if not isinstance(path, str) or not path:
        return f"media path {path!r} is not a non-empty string"
    pure = PurePosixPath(path)
    if pure.is_absolute() or "://" in path:
        return f"media path {path} is not relative to the export folder"
    if ".." in pure.parts:
        return f"media path {path} leaves the export folder"
    if not (out_dir / path).is_file():
        return f"media file {path} does not exist in {out_dir}"
    return None


def _span_problem(record: Mapping[str, Any]) -> str | None:
    start, end = record.get("start"), record.get("end")
    if not isinstance(start, int | float) or not isinstance(end, int | float) or not 0 <= start < end:
        return f"span {start!r}-{end!r} is not a time range"
    return None


def _source_problem(path: object) -> str | None:
    """A record without a cut clip names its source: an absolute local path or a URI (s3://)."""
    if not isinstance(path, str) or not (os.path.isabs(path) or "://" in path):
        return f"source {path!r} is neither an absolute path nor a URI"
    return None


def review_problem(review: object) -> str | None:
    """Why a record's `review` field does not say who checked it, or None when it does."""
    if not isinstance(review, Mapping) or tuple(review) != REVIEW_FIELDS:
        return f"review is not an object of {', '.join(REVIEW_FIELDS)}"
    reviewed, checked_by, reviewers, review_id = (review[key] for key in REVIEW_FIELDS)
    if not isinstance(reviewed, bool) or not isinstance(review_id, str):
        return "review.reviewed is not a bool or review.review_id not a string"
    if not isinstance(reviewers, list) or not all(isinstance(name, str) and name for name in reviewers):
        return "review.reviewers is not a list of names"
    if reviewers != sorted(set(reviewers)):
        return "review.reviewers is not sorted and distinct"
    if type(checked_by) is not int or checked_by != len(reviewers):
        return f"review.checked_by {checked_by!r} is not the number of reviewers ({len(reviewers)})"
    if reviewed != bool(review_id) or reviewed != (checked_by > 0):
        return "review.reviewed disagrees with its review_id or reviewers"
    return None


def _label(record: object, key: str = "clip_id") -> str:
    return str(record.get(key, "?")) if isinstance(record, Mapping) else "?"


def check_llava(records: Sequence[Any], out_dir: Path, clips: bool) -> list[str]:
    """LLaVA-NeXT's rules for video samples (module docstring); with `clips`, every `video` is a cut clip
    relative to `out_dir` (the `--video_folder`) that exists."""
    problems: list[str] = []
    for record in records:
        name = _label(record, "id")

        def problem(message: str, name: str = name) -> None:
            problems.append(f"{name}: {message}")

        if not isinstance(record, Mapping):
            problem("record is not an object")
            continue
        if not isinstance(record.get("id"), str) or not record["id"]:
            problem("no id")
        if "image" in record:
            problem("has `image`: the loader would read it as an image sample")
        if unknown := [key for key in record if key not in LLAVA_READ_KEYS + LLAVA_UNREAD_KEYS]:
            problem(f"keys {', '.join(map(str, unknown))} are neither read by the loader nor HAIC's")
        if (reason := review_problem(record.get("review"))) is not None:
            problem(reason)
        if clips:
            if (reason := relative_media_problem(record.get("video"), out_dir)) is not None:
                problem(reason)
        else:
            if (reason := _source_problem(record.get("video"))) is not None:
                problem(reason)
            if (reason := _span_problem(record)) is not None:
                problem(reason)
        turns = record.get("conversations")
        if not isinstance(turns, list) or len(turns) < 2 or len(turns) % 2:
            problem("conversations is not a list of human/gpt pairs")
            continue
        for index, turn in enumerate(turns):
            expected = "human" if index % 2 == 0 else "gpt"
            if not isinstance(turn, Mapping) or turn.get("from") != expected:
                problem(f"turn {index} is not from {expected}")
                continue
            value = turn.get("value")
            if not isinstance(value, str) or not value.strip():
                problem(f"turn {index} has no text")
                continue
            if index == 0:
                if not value.startswith(LLAVA_MEDIA_TOKEN + "\n") or placeholders_in(value) != 1:
                    problem(f"the first human turn needs exactly one {LLAVA_MEDIA_TOKEN}, at its start, per video")
            elif placeholders_in(value):
                problem(f"turn {index} holds a media placeholder with no media item for it")
    return problems


def check_train(records: Sequence[Any], out_dir: Path) -> list[str]:
    """haic_train.jsonl: the documented fields, a time range, a caption, and a `clip` (when cut) relative
    to `out_dir` that exists."""
    problems: list[str] = []
    for record in records:
        name = _label(record)
        if not isinstance(record, Mapping):
            problems.append(f"{name}: record is not an object")
            continue
        if missing := [key for key in TRAIN_FIELDS if key not in record]:
            problems.append(f"{name}: missing {', '.join(missing)}")
            continue
        if (reason := _source_problem(record["video"])) is not None:
            problems.append(f"{name}: {reason}")
        if (reason := _span_problem(record)) is not None:
            problems.append(f"{name}: {reason}")
        if not isinstance(record["caption"], str) or not record["caption"].strip():
            problems.append(f"{name}: empty caption")
        if "clip" in record and (reason := relative_media_problem(record["clip"], out_dir)) is not None:
            problems.append(f"{name}: {reason}")
        if (reason := review_problem(record["review"])) is not None:
            problems.append(f"{name}: {reason}")
    return problems


def check_bench(records: Sequence[Any], out_dir: Path) -> list[str]:
    """haic_bench.json: the documented fields, four lettered options, an answer letter among them, and a
    `clip` (when cut) relative to `out_dir` that exists."""
    problems: list[str] = []
    for record in records:
        name = _label(record, "id")
        if not isinstance(record, Mapping):
            problems.append(f"{name}: record is not an object")
            continue
        if missing := [key for key in BENCH_FIELDS if key not in record]:
            problems.append(f"{name}: missing {', '.join(missing)}")
            continue
        if (reason := _source_problem(record["video"])) is not None:
            problems.append(f"{name}: {reason}")
        if (reason := _span_problem(record)) is not None:
            problems.append(f"{name}: {reason}")
        options = record["options"]
        lettered = isinstance(options, list) and len(options) == len(OPTION_LETTERS)
        if not lettered or any(
            not isinstance(option, str) or not option.startswith(f"{letter}. ")
            for letter, option in zip(OPTION_LETTERS, options, strict=False)
        ):
            problems.append(f"{name}: options are not four, lettered A. to D.")
        if record["answer"] not in tuple(OPTION_LETTERS):
            problems.append(f"{name}: answer {record['answer']!r} is not a letter A-D")
        if not isinstance(record["question"], str) or not record["question"].strip():
            problems.append(f"{name}: empty question")
        if "clip" in record and (reason := relative_media_problem(record["clip"], out_dir)) is not None:
            problems.append(f"{name}: {reason}")
        if (reason := review_problem(record["review"])) is not None:
            problems.append(f"{name}: {reason}")
    return problems
