"""`haic eval`: answerers on every QA set published so far (haic.qa.v1), as a per-category leaderboard
(Markdown on stdout, JSON on request), each result also published to haic.scores.v1."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from tqdm import tqdm

from haic.v1 import events_pb2
from services.core import topics
from services.core.bus import EventProducer, Output, TopicReadError, read_topic_to_end
from services.core.settings import Settings
from services.core.storage import open_storage
from services.scoring.evaluate import CAPTION_SETTING, Evaluation, evaluate, leaderboard_markdown
from services.scoring.service import Answerers, UnknownAnswererError

SERVICE = "eval"


def latest_qa_sets(settings: Settings) -> list[events_pb2.QASet]:
    """One QA set per clip (the last published wins: a re-generation replaces the earlier one), in clip order."""
    by_clip: dict[str, events_pb2.QASet] = {}
    for _, message in read_topic_to_end(settings, topics.QA):
        if isinstance(message, events_pb2.QASet) and message.items:
            by_clip[message.span.clip_id] = message
    return [by_clip[k] for k in sorted(by_clip)]


def run_eval(
    settings: Settings,
    answerer_names: list[str],
    setting: str = CAPTION_SETTING,
    publish: bool = True,
    progress: bool = True,
) -> list[Evaluation]:
    qa_sets = latest_qa_sets(settings)
    answerers = Answerers(settings, open_storage(settings))
    evaluations = []
    try:
        total = sum(len(qa.items) for qa in qa_sets)
        for name in answerer_names:
            answerer = answerers.build(name, qa_sets, setting)
            with tqdm(total=total, desc=name, unit="item", disable=not progress, file=sys.stderr) as bar:
                evaluations.append(
                    evaluate(
                        answerer,
                        qa_sets,
                        settings.scoring_bootstrap_samples,
                        settings.scoring_seed,
                        on_item=lambda: bar.update(1),
                    )
                )
    finally:
        answerers.close()
    if publish and evaluations:
        # Over many clips, so no video id: keyed by the answerer, one partition per answerer's history.
        producer = EventProducer(settings, SERVICE)
        try:
            producer.deliver([Output(topics.SCORES, f"eval:{e.answerer}", e.to_record()) for e in evaluations])
        finally:
            producer.close()
    return evaluations


def cmd_eval(args: argparse.Namespace) -> int:
    settings = Settings()
    try:
        evaluations = run_eval(
            settings,
            args.answerer or settings.scoring_answerers,
            args.setting,
            publish=not args.no_publish,
            progress=not args.no_progress,
        )
    except (UnknownAnswererError, TopicReadError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    if not evaluations or not evaluations[0].items:
        print("no QA items on haic.qa.v1 yet: upload videos and wait for their clips to be captioned", file=sys.stderr)
        return 1
    print(leaderboard_markdown(evaluations))
    if args.json:
        Path(args.json).write_text(json.dumps([e.as_dict() for e in evaluations], indent=2) + "\n")
    return 0
