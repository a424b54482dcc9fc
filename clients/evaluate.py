"""`haic eval`: answerers on every QA set published so far (haic.qa.v1), as a per-category leaderboard
(Markdown on stdout, JSON on request), each result also published to haic.scores.v1.

Caption quality (HAIC table 2's protocol): with `--caption-backend B`, the caption-setting answerers
read the captions backend B wrote for the same clips instead of the caption the questions were made
from, so the accuracy measures how much of the clip B's captions convey; the judge pass rate of B's
captions is reported beside it."""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import asdict, dataclass
from pathlib import Path

from tqdm import tqdm

from haic.v1 import events_pb2
from services.core import topics
from services.core.bus import EventProducer, Output, TopicReadError, latest_per_clip, read_topic_to_end
from services.core.settings import Settings, load
from services.core.storage import open_storage
from services.scoring.evaluate import CAPTION_SETTING, Evaluation, evaluate, leaderboard_markdown
from services.scoring.service import Answerers, UnknownAnswererError

SERVICE = "eval"


def latest_qa_sets(settings: Settings) -> list[events_pb2.QASet]:
    """The latest QA set of each clip (a re-generation replaces the earlier one) that has items, in clip order."""
    by_clip, _ = latest_per_clip(read_topic_to_end(settings, topics.QA))
    return [by_clip[k] for k in sorted(by_clip) if by_clip[k].items]


@dataclass(frozen=True)
class CaptionSource:
    backend: str
    clips: int  # QA sets answered from this backend's captions
    missing: int  # QA sets whose clip this backend has not captioned (left out)
    judge_pass_rate: float  # over this backend's latest caption per clip


def with_captions_of(
    settings: Settings, qa_sets: list[events_pb2.QASet], backend: str
) -> tuple[list[events_pb2.QASet], CaptionSource]:
    """The QA sets, each carrying backend's latest caption of its clip instead of its own."""
    records = [(k, m) for k, m in read_topic_to_end(settings, topics.CAPTIONS) if m.backend == backend]
    latest, _ = latest_per_clip(records)
    swapped = []
    for qa in qa_sets:
        caption = latest.get(qa.span.clip_id)
        if caption is not None:
            copy = events_pb2.QASet()
            copy.CopyFrom(qa)
            copy.caption.CopyFrom(caption)
            swapped.append(copy)
    passed = sum(c.judgement.passed for c in latest.values())
    rate = passed / len(latest) if latest else 0.0
    return swapped, CaptionSource(backend, len(swapped), len(qa_sets) - len(swapped), rate)


def run_eval(
    settings: Settings,
    answerer_names: list[str],
    setting: str = CAPTION_SETTING,
    publish: bool = True,
    progress: bool = True,
    caption_backend: str = "",
) -> tuple[list[Evaluation], CaptionSource | None]:
    qa_sets = latest_qa_sets(settings)
    source = None
    if caption_backend:
        qa_sets, source = with_captions_of(settings, qa_sets, caption_backend)
    answerers = Answerers(settings, open_storage(settings))
    evaluations = []
    try:
        total = sum(len(qa.items) for qa in qa_sets)
        for name in answerer_names:
            answerer = answerers.build(name, qa_sets, setting)
            with tqdm(total=total, desc=name, unit="item", disable=not progress, file=sys.stderr) as bar:
                evaluation = evaluate(
                    answerer,
                    qa_sets,
                    settings.scoring_bootstrap_samples,
                    settings.scoring_seed,
                    on_item=lambda: bar.update(1),
                )
            if source is not None and evaluation.setting == CAPTION_SETTING:
                evaluation.setting = f"{CAPTION_SETTING}:{source.backend}"
            evaluations.append(evaluation)
    finally:
        answerers.close()
    if publish and evaluations:
        # Over many clips, so no video id: keyed by the answerer, one partition per answerer's history.
        producer = EventProducer(settings, SERVICE)
        try:
            producer.deliver([Output(topics.SCORES, f"eval:{e.answerer}", e.to_record()) for e in evaluations])
        finally:
            producer.close()
    return evaluations, source


def cmd_eval(args: argparse.Namespace) -> int:
    settings = load(Settings)
    try:
        evaluations, source = run_eval(
            settings,
            args.answerer or settings.scoring_answerers,
            args.setting,
            publish=not args.no_publish,
            progress=not args.no_progress,
            caption_backend=args.caption_backend or "",
        )
    except (UnknownAnswererError, TopicReadError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    if not evaluations or not evaluations[0].items:
        print("no QA items on haic.qa.v1 yet: upload videos and wait for their clips to be captioned", file=sys.stderr)
        return 1
    print(leaderboard_markdown(evaluations))
    rows = [e.as_dict() for e in evaluations]
    if source is not None:
        print(
            f"Captions by {source.backend}: {source.clips} clips answered from them "
            f"({source.missing} not captioned by it), judge pass rate {100 * source.judge_pass_rate:.1f}%."
        )
        for row in rows:
            row["caption_source"] = asdict(source)
    if args.json:
        Path(args.json).write_text(json.dumps(rows, indent=2) + "\n")
    return 0
