"""A worker process for the SIGTERM test: each message takes a while and yields one output.

Run as `python -m tests.core.slow_worker BOOTSTRAP MARKER_FILE`; it appends "start KEY" to the marker
file when it begins a message, so the test can signal it in the middle of one.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

from haic.v1 import events_pb2
from services.core import topics
from services.core.bus import Event, Output, Worker
from services.core.settings import Settings


def main() -> None:
    bootstrap, marker = sys.argv[1], Path(sys.argv[2])

    def handler(event: Event) -> list[Output]:
        with marker.open("a") as f:
            f.write(f"start {event.key}\n")
        time.sleep(1.5)
        return [Output(topics.CLIPS_CANDIDATE, event.key, events_pb2.ClipCandidate(video_id=event.message.video_id))]

    worker = Worker(Settings(kafka_bootstrap_servers=bootstrap, metrics_port=0), "slow", [topics.VIDEOS], handler)
    worker.install_signal_handlers()
    worker.run()


if __name__ == "__main__":
    main()
