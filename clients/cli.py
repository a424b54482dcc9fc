"""The `haic` command line: run the local stack, submit videos, follow them, read topics."""

from __future__ import annotations

import argparse
import dataclasses
import json
import logging
import os
import signal
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from clients.sdk import GatewayError, HaicClient

if TYPE_CHECKING:
    from haic_tools.launcher import StackPorts

REPO_ROOT = Path(__file__).resolve().parents[1]
SAMPLE_VIDEO = REPO_ROOT / "samples" / "juggle_one_person.mp4"
SAMPLE_DESCRIPTION = "A man juggles a football with his feet in a park"


def _settings():
    from services.core.settings import Settings, load

    return load(Settings)


def _client(args: argparse.Namespace) -> HaicClient:
    from haic_tools.launcher import ensure_api_key

    key = os.environ.get("HAIC_API_KEY") or ensure_api_key(_settings())
    return HaicClient(args.gateway, key)


def format_video(video: dict[str, Any]) -> str:
    """A human-readable account of a video: status, video-level rejection, then one line per clip."""
    info = video.get("info") or {}
    lines = [
        f"video {video['video_id']}: {video['status']}"
        + (f"  ({info.get('width')}x{info.get('height')}, {info.get('duration_s', 0):.1f} s)" if info else "")
    ]
    rejection = video.get("rejection")
    if rejection:
        lines.append(f"  rejected at {rejection['stage']}: {rejection['reason_code']} - {rejection['reason']}")
        lines.append(f"    values {json.dumps(rejection.get('values', {}), sort_keys=True)}")
    for clip in video.get("clips", []):
        lines.append(
            f"  clip {clip['clip_index']} {clip['start_s']:7.2f}-{clip['end_s']:7.2f} s  {clip['verdict']:<9} "
            f"{clip.get('stage', '')} {clip.get('reason_code', '')}".rstrip()
        )
        if clip.get("reason"):
            lines.append(f"    {clip['reason']}")
        if clip.get("values"):
            lines.append(f"    values {json.dumps(clip['values'], sort_keys=True)}")
    for letter in video.get("dead_letters", []):
        lines.append(f"  dead letter from {letter['service']} on {letter['topic']}: {letter['error']}")
    return "\n".join(lines)


def submit_and_report(client: HaicClient, path: Path, description: str, source_url: str, wait: bool) -> int:
    try:
        accepted = client.submit(path, description=description, source_url=source_url)
    except GatewayError as exc:
        print(f"rejected by the gateway: {exc}", file=sys.stderr)
        return 1
    video_id = accepted["video_id"]
    note = " (already known: same content)" if accepted.get("duplicate") else ""
    print(f"submitted {path.name}: video {video_id}, status {accepted['status']}{note}")
    if not wait:
        return 0
    for name, data in client.events(video_id):
        if name != "settled":
            print(f"  event {data.get('sequence')}: {name} -> status {data.get('status')}")
    video = client.video(video_id)
    print(format_video(video))
    for clip in video.get("clips", []):
        if clip["verdict"] != "accepted":
            continue
        detail = client.clip(clip["clip_id"])
        if detail.get("caption_text"):
            passed = detail.get("caption_judge_passed")
            judged = "not judged" if passed is None else ("judge passed" if passed else "judge failed")
            print(f"\n  caption of clip {clip['clip_index']} ({judged}):")
            print("\n".join(f"    {line}" for line in detail["caption_text"].splitlines()))
        if detail.get("qa_item_count"):
            print(f"  {detail['qa_item_count']} QA items on haic.qa.v1 (haic eval scores them)")
    return 0


def _stack_ports(args: argparse.Namespace) -> StackPorts:
    from haic_tools.launcher import StackPorts

    if args.ports_file is not None and args.ports_file.exists():
        ports = StackPorts.load(args.ports_file)
    else:
        ports = StackPorts.free() if args.free_ports or args.ports_file is not None else StackPorts()
        if args.ports_file is not None:
            ports.save(args.ports_file)
    if args.metrics_port is not None:
        ports = dataclasses.replace(ports, launcher_metrics=args.metrics_port)
    return ports


def _console_line(level: int, line: str) -> None:
    """The launcher's own lines (a child restarted or given up): plain text on stderr, not JSON logs."""
    prefix = "error: " if level >= logging.ERROR else ""
    print(f"{time.strftime('%H:%M:%S')} {prefix}{line}", file=sys.stderr, flush=True)


def cmd_up(args: argparse.Namespace) -> int:
    from haic_tools.launcher import LocalStack, StackError
    from haic_tools.models import ModelBuildError
    from services.core.logs import configure_logging
    from services.pose.triton_process import TritonProcessError

    configure_logging("launcher", "WARNING")
    settings = _settings()
    ports = _stack_ports(args)
    stack = LocalStack(
        settings,
        ports,
        embedded_broker=not args.external_kafka,
        embedded_triton=not args.external_triton,
        announce=_console_line,
        require_all=False,  # a service given up during the start: the rest serves, and says so
    )

    def on_signal(signum: int, _frame: object) -> None:
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, on_signal)
    print("starting the local stack ...", flush=True)
    try:
        stack.start()
        print(stack.describe(), flush=True)
        if args.submit_sample:
            with HaicClient(stack.gateway_url, stack.api_key) as client:
                submit_and_report(client, SAMPLE_VIDEO, SAMPLE_DESCRIPTION, "", wait=True)
            print(f"\nreview desk  {stack.desk_url}", flush=True)
        if args.exit_after_sample:
            return 0
        print("stack is up; Ctrl-C stops it", flush=True)
        # The supervisor restarts children that die and announces it (_console_line); this loop only
        # notices when the supervisor itself is gone, and says once which services were given up.
        announced: set[str] = set()
        while True:
            stack.check_children()
            given_up = set(stack.given_up()) - announced
            if given_up:
                print(
                    f"haic up keeps serving without {', '.join(sorted(given_up))} (given up: see the error above); "
                    "fix the cause and run haic up again",
                    file=sys.stderr,
                    flush=True,
                )
                announced |= given_up
            time.sleep(1)
    except KeyboardInterrupt:
        print("\nstopping ...", flush=True)
        return 0
    except (StackError, ModelBuildError, TritonProcessError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    finally:
        stack.stop()


def cmd_submit(args: argparse.Namespace) -> int:
    with _client(args) as client:
        return submit_and_report(client, Path(args.file), args.description, args.source_url, args.wait)


def cmd_status(args: argparse.Namespace) -> int:
    with _client(args) as client:
        try:
            video = client.video(args.video_id)
        except GatewayError as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 1
    print(json.dumps(video, indent=2) if args.json else format_video(video))
    return 0


def cmd_ingest(args: argparse.Namespace) -> int:
    from clients.ingest import ManifestError, ingest, outcome_json

    settings = _settings()
    state_dir = args.state_dir or settings.data_dir / "ingest"
    with _client(args) as client:
        try:
            outcome = ingest(
                client,
                args.source,
                state_dir=state_dir,
                batch=args.batch,
                concurrency=args.concurrency,
                max_lag=args.max_lag,
                s3_endpoint_url=settings.s3_endpoint_url or None,
                progress=not args.no_progress,
            )
        except ManifestError as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 2
    print(outcome.summary())
    if args.json:
        Path(args.json).write_text(json.dumps(outcome_json(outcome), indent=2) + "\n")
    if outcome.errors:
        return 1
    return 130 if outcome.interrupted else 0


def cmd_report(args: argparse.Namespace) -> int:
    from clients.report_html import format_table, render_html

    with _client(args) as client:
        try:
            report = client.report(args.since, args.until, args.video_id, args.batch)
        except GatewayError as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 1
    print(format_table(report))
    if args.json:
        Path(args.json).write_text(json.dumps(report, indent=2) + "\n")
        print(f"wrote {args.json}")
    if args.html:
        Path(args.html).write_text(render_html(report), encoding="utf-8")
        print(f"wrote {args.html}")
    return 0


def cmd_tail(args: argparse.Namespace) -> int:
    from google.protobuf.json_format import MessageToDict
    from kafka import KafkaConsumer

    from services.core.bus import PoisonMessageError, decode
    from services.core.topics import ALL_TOPICS

    if args.topic not in ALL_TOPICS:
        print(f"unknown topic {args.topic}; topics: {', '.join(ALL_TOPICS)}", file=sys.stderr)
        return 2
    consumer = KafkaConsumer(
        args.topic,
        bootstrap_servers=_settings().kafka_bootstrap_servers.split(","),
        auto_offset_reset="earliest" if args.from_beginning else "latest",
        enable_auto_commit=False,
        group_id=None,
        consumer_timeout_ms=int(args.idle_timeout * 1000) if args.idle_timeout else float("inf"),
    )
    printed = 0
    try:
        for record in consumer:
            try:
                event: Any = MessageToDict(decode(record.topic, record.value), preserving_proto_field_name=True)
            except PoisonMessageError as exc:
                event = {"undecodable": str(exc)}
            line = {
                "topic": record.topic,
                "partition": record.partition,
                "offset": record.offset,
                "key": (record.key or b"").decode(errors="replace"),
                "event": event,
            }
            print(json.dumps(line), flush=True)
            printed += 1
            if args.max and printed >= args.max:
                break
    except KeyboardInterrupt:
        pass
    finally:
        consumer.close()
    return 0


def cmd_config(_args: argparse.Namespace) -> int:
    from services.core.settings import settings_table

    print(settings_table())
    return 0


def cmd_protos(_args: argparse.Namespace) -> int:
    from haic_tools import protogen

    for path in protogen.generate():
        print(path)
    return 0


def cmd_models_build(args: argparse.Namespace) -> int:
    from haic_tools.models import ModelBuildError
    from haic_tools.models.build import build_model_repository
    from services.core.settings import PoseModelFamily

    settings = _settings()
    if args.family:
        settings = settings.model_copy(update={"pose_model_family": PoseModelFamily(args.family)})
    # the steps (npm, converter venv, conversion) take a minute on a fresh clone: say what is happening
    logging.getLogger("haic_tools.models").setLevel(logging.INFO)
    try:
        report = build_model_repository(
            settings,
            rtmdet=Path(args.rtmdet) if args.rtmdet else None,
            rtmpose=Path(args.rtmpose) if args.rtmpose else None,
            force=args.force,
        )
    except ModelBuildError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    print(report.describe())
    return 0


def cmd_eval(args: argparse.Namespace) -> int:
    from clients.evaluate import cmd_eval as run_eval_command

    return run_eval_command(args)


def cmd_export(args: argparse.Namespace) -> int:
    from clients.export import cmd_export as run_export_command

    return run_export_command(args)


def cmd_llm_server(args: argparse.Namespace) -> int:
    from haic_tools.local_llm import LocalLlmError, LocalLlmServer

    def on_signal(signum: int, _frame: object) -> None:
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, on_signal)
    try:
        server = LocalLlmServer(port=args.port).start()
    except LocalLlmError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    try:
        print(f"OpenAI-compatible server at {server.base_url}, model {server.model}; Ctrl-C stops it", flush=True)
        while server.alive:
            time.sleep(1)
        print(f"error: the server exited: {server.log_tail()}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 0
    finally:
        server.stop()


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="haic", description=__doc__)
    parser.add_argument(
        "--gateway", default=os.environ.get("HAIC_GATEWAY_URL", "http://127.0.0.1:8080"), help="gateway base URL"
    )
    sub = parser.add_subparsers(dest="command", required=True)

    up = sub.add_parser("up", help="start the broker and every service on this machine")
    up.add_argument("--submit-sample", action="store_true", help="upload the bundled sample and print its outcome")
    up.add_argument("--exit-after-sample", action="store_true", help="stop once the sample has settled")
    up.add_argument("--free-ports", action="store_true", help="pick free ports (beside another stack)")
    up.add_argument(
        "--ports-file",
        type=Path,
        help="JSON of the stack's ports: used when it exists, else free ports are picked and written there "
        "(the same ports across restarts of a second stack)",
    )
    up.add_argument(
        "--metrics-port", type=int, help="port of the launcher's own /metrics (restarts; default 9106, 0: off)"
    )
    up.add_argument(
        "--external-kafka", action="store_true", help="use HAIC_KAFKA_BOOTSTRAP_SERVERS, no embedded broker"
    )
    up.add_argument(
        "--external-triton", action="store_true", help="use the Triton at HAIC_TRITON_URL (e.g. on a GPU), no PyTriton"
    )
    up.set_defaults(func=cmd_up)

    submit = sub.add_parser("submit", help="upload a video")
    submit.add_argument("file")
    submit.add_argument("--description", default="")
    submit.add_argument("--source-url", default="")
    submit.add_argument("--wait", action="store_true", help="follow its progress until it settles")
    submit.set_defaults(func=cmd_submit)

    ingest = sub.add_parser(
        "ingest",
        help="submit a collection: a manifest (CSV, JSONL, Parquet; WebVid columns work), a directory or s3://",
        description="Submits every row not taken by an earlier run of the same batch (so a run that was stopped "
        "resumes), holding back while the pipeline's backlog is over --max-lag. Rows that cannot be taken go to "
        "the rejects file with their reason.",
    )
    ingest.add_argument("source", help="manifest file, directory, or s3://bucket/prefix")
    ingest.add_argument("--batch", help="batch name (default: derived from the source, stable across runs)")
    ingest.add_argument("--concurrency", type=int, default=4, help="submissions in flight at once (default 4)")
    ingest.add_argument(
        "--max-lag",
        type=int,
        default=200,
        help="hold back while the stages have more than this many messages to process (0: never; default 200)",
    )
    ingest.add_argument("--state-dir", type=Path, help="journal and rejects folder (default <data_dir>/ingest)")
    ingest.add_argument("--json", metavar="OUT", help="also write the outcome as JSON")
    ingest.add_argument("--no-progress", action="store_true", help="no progress bar")
    ingest.set_defaults(func=cmd_ingest)

    status = sub.add_parser("status", help="a video's status and clips")
    status.add_argument("video_id")
    status.add_argument("--json", action="store_true")
    status.set_defaults(func=cmd_status)

    report = sub.add_parser("report", help="the yield report: the funnel of a batch or of every video")
    report.add_argument("--since", help="only videos uploaded at or after this RFC 3339 time (e.g. 2026-12-04T20:00Z)")
    report.add_argument("--until", help="only videos uploaded before this RFC 3339 time")
    report.add_argument("--video-id", action="append", help="only this video (repeatable)")
    report.add_argument("--batch", help="only the videos of this ingestion batch (`haic ingest` prints its name)")
    report.add_argument("--json", metavar="OUT", help="also write the report as JSON")
    report.add_argument("--html", metavar="OUT", help="also write a self-contained HTML page with plots")
    report.set_defaults(func=cmd_report)

    tail = sub.add_parser("tail", help="print a topic's events as JSON lines")
    tail.add_argument("topic")
    tail.add_argument("--from-beginning", action="store_true")
    tail.add_argument("--max", type=int, default=0, help="stop after this many events")
    tail.add_argument("--idle-timeout", type=float, default=0, help="stop after this many idle seconds")
    tail.set_defaults(func=cmd_tail)

    sub.add_parser("config", help="print the configuration table (HAIC_ variables)").set_defaults(func=cmd_config)
    sub.add_parser("protos", help="regenerate the Python contracts from protos/").set_defaults(func=cmd_protos)

    evaluation = sub.add_parser("eval", help="score answerers on every QA set so far: a per-category leaderboard")
    evaluation.add_argument(
        "--answerer",
        action="append",
        help="caption-lexical, random, majority-letter or mllm (repeatable; default: HAIC_SCORING_ANSWERERS)",
    )
    evaluation.add_argument("--setting", choices=["caption", "standard"], default="caption")
    evaluation.add_argument("--json", metavar="FILE", help="also write the leaderboard as JSON")
    evaluation.add_argument(
        "--caption-backend",
        metavar="BACKEND",
        help="caption quality: answer from this backend's captions (e.g. mllm:MODEL) instead of the QA's own",
    )
    evaluation.add_argument("--no-publish", action="store_true", help="do not publish the results to haic.scores.v1")
    evaluation.add_argument("--no-progress", action="store_true")
    evaluation.set_defaults(func=cmd_eval)

    export = sub.add_parser(
        "export", help="write HAICTrain JSONL, LLaVA-Video JSON and HAICBench QA JSON (and the clips) from the topics"
    )
    export.add_argument("out_dir", type=Path, help="directory to write the export into (created if missing)")
    export.add_argument("--clips", action="store_true", help="also cut each exported clip to clips/<clip_id>.mp4")
    export.add_argument(
        "--reviewed-only",
        action="store_true",
        help="only clips whose latest review accepted them, with only the QA items the review kept",
    )
    export.add_argument("--no-progress", action="store_true", help="no progress bar")
    export.set_defaults(func=cmd_export)

    llm = sub.add_parser(
        "llm-server", help="serve SmolLM2 on a local OpenAI-compatible endpoint (for trying the mllm backend)"
    )
    llm.add_argument("--port", type=int, default=8090)
    llm.set_defaults(func=cmd_llm_server)

    models = sub.add_parser("models", help="pose models for Triton").add_subparsers(
        dest="models_command", required=True
    )
    build = models.add_parser("build", help="build the Triton model repository (HAIC_MODELS_DIR) of the pose family")
    build.add_argument("--family", choices=["movenet", "rtmpose"], help="default: HAIC_POSE_MODEL_FAMILY")
    build.add_argument("--rtmdet", metavar="FILE", help="RTMDet ONNX from OpenMMLab (family rtmpose)")
    build.add_argument("--rtmpose", metavar="FILE", help="RTMPose ONNX from OpenMMLab (family rtmpose)")
    build.add_argument("--force", action="store_true", help="rebuild even when the repository is up to date")
    build.set_defaults(func=cmd_models_build)
    return parser


def main(argv: list[str] | None = None) -> int:
    logging.basicConfig(level=logging.WARNING)
    args = build_parser().parse_args(argv)
    return int(args.func(args) or 0)


if __name__ == "__main__":
    sys.exit(main())
