"""What exactly once costs: a pass-through worker's throughput with and without Kafka transactions.

    .venv/bin/python bench/bus_transactions.py [--messages 500] [--payload-bytes 2000]

Starts the embedded Apache Kafka broker, produces N VideoUploaded messages, and runs the core Worker
(services/core/bus.py) over them with a handler that emits one ClipCandidate each, once committing offsets
after the acknowledgements (at least once, the default) and once with HAIC_KAFKA_TRANSACTIONS (outputs and
the offset in one transaction per message). Prints messages per second and the cost per message; the
pipeline's stages take seconds per clip, so the per-message cost is what to compare with them.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import threading
import time
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(REPO_ROOT), str(REPO_ROOT / "gen" / "python")]

from haic.v1 import events_pb2  # noqa: E402
from services.core import topics  # noqa: E402
from services.core.broker import EmbeddedBroker, free_port  # noqa: E402
from services.core.bus import Event, EventProducer, Output, Worker, ensure_topics, read_topic_to_end  # noqa: E402
from services.core.settings import Settings  # noqa: E402


def run_once(settings: Settings, group: str, messages: int) -> float:
    """Seconds for one worker to pass every message on (from its first poll to the last output)."""
    done = threading.Event()
    handled = {"n": 0, "first": 0.0}

    def handle(event: Event) -> list[Output]:
        if handled["n"] == 0:
            handled["first"] = time.perf_counter()
        handled["n"] += 1
        if handled["n"] == messages:
            done.set()
        message = events_pb2.ClipCandidate(video_id=event.message.video_id, storage_uri=event.message.description)
        return [Output(topics.CLIPS_CANDIDATE, event.key, message)]

    worker = Worker(settings, group, [topics.VIDEOS], handle, group_id=group)
    thread = threading.Thread(target=worker.run, daemon=True)
    thread.start()
    if not done.wait(600):
        raise RuntimeError(f"{group}: only {handled['n']} of {messages} messages in 600 s")
    elapsed = time.perf_counter() - handled["first"]
    worker.stop()
    thread.join(60)
    return elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--messages", type=int, default=500)
    parser.add_argument("--payload-bytes", type=int, default=2000, help="about a caption's size")
    args = parser.parse_args()
    with (
        tempfile.TemporaryDirectory(prefix="haic-bench-tx-") as work,
        EmbeddedBroker(free_port(), data_dir=Path(work) / "kafka", log_path=Path(work) / "kafka.log") as broker,
    ):
        base = Settings(data_dir=Path(work) / "haic", kafka_bootstrap_servers=broker.bootstrap_servers)
        ensure_topics(base)
        filler = "x" * args.payload_bytes
        EventProducer(base, "bench").deliver(
            Output(topics.VIDEOS, f"vid_{i}", events_pb2.VideoUploaded(video_id=f"vid_{i}", description=filler))
            for i in range(args.messages)
        )
        print(f"{args.messages} messages of about {args.payload_bytes} bytes, one output each, 1 worker")
        results = {}
        for label, transactional in (("at least once (commit after acks)", False), ("transactions", True)):
            settings = base.model_copy(update={"kafka_transactions": transactional})
            group = "bench-tx" if transactional else "bench-plain"
            seconds = run_once(settings, group, args.messages)
            results[label] = seconds
            rate = args.messages / seconds
            print(f"  {label:<36} {rate:7.1f} msg/s  {1000 * seconds / args.messages:6.2f} ms/msg")
        outputs = len(read_topic_to_end(base, topics.CLIPS_CANDIDATE))
        plain, tx = results.values()
        print(f"transactions / at least once, time per message: {tx / plain:.2f}x; outputs on the topic: {outputs}")


if __name__ == "__main__":
    main()
