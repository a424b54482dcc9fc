"""Following a video's event log, for the SSE endpoint and gRPC WatchVideo.

Watchers poll the catalog database (so they see rows written by any gateway replica sharing a
PostgreSQL catalog) and are woken early by in-process writes. A stream ends once the video is
settled: the settled flag is read before the events, and both change in one transaction, so when a
settled video has no events left after the cursor, none can follow.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable, Iterator
from typing import Any

from google.protobuf.json_format import MessageToDict
from google.protobuf.timestamp_pb2 import Timestamp
from starlette.concurrency import run_in_threadpool

from haic.v1 import pipeline_pb2
from services.core import topics
from services.gateway.catalog import Catalog, EventRecord

POLL_INTERVAL_S = 0.25

# The VideoProgress oneof field that carries each topic's message.
PROGRESS_FIELD_BY_TOPIC = {
    topics.VIDEOS: "uploaded",
    topics.CLIPS_CANDIDATE: "candidate",
    topics.CLIPS_ACCEPTED: "verdict",
    topics.CLIPS_REJECTED: "verdict",
    topics.CAPTIONS: "caption",
    topics.QA: "qa",
    topics.SCORES: "score",
    topics.DEADLETTER: "dead_letter",
}


def event_json(record: EventRecord) -> dict[str, Any]:
    """The SSE data of one logged event."""
    return {
        "sequence": record.sequence,
        "topic": record.topic,
        "status": record.status,
        "recorded_at": record.recorded_at.isoformat(),
        "event": MessageToDict(record.message(), preserving_proto_field_name=True),
    }


def video_progress(record: EventRecord) -> pipeline_pb2.VideoProgress:
    recorded_at = Timestamp()
    recorded_at.FromDatetime(record.recorded_at)
    progress = pipeline_pb2.VideoProgress(
        video_id=record.video_id,
        sequence=record.sequence,
        topic=record.topic,
        status=record.status,
        recorded_at=recorded_at,
    )
    getattr(progress, PROGRESS_FIELD_BY_TOPIC[record.topic]).CopyFrom(record.message())
    return progress


def next_events(catalog: Catalog, video_id: str, after_sequence: int) -> tuple[list[EventRecord], bool]:
    """The events after the cursor, and whether the stream is over (settled or unknown, nothing left)."""
    state = catalog.video_state(video_id)  # read before the events: see the module docstring
    records = catalog.events_after(video_id, after_sequence)
    return records, not records and (state is None or state.settled)


def follow_events(
    catalog: Catalog,
    video_id: str,
    after_sequence: int,
    keep_going: Callable[[], bool],
    poll_interval_s: float = POLL_INTERVAL_S,
) -> Iterator[EventRecord]:
    """The video's events after `after_sequence`, then new ones, until the video is settled."""
    after = after_sequence
    while keep_going():
        seen = catalog.change_count
        records, over = next_events(catalog, video_id, after)
        if over:
            return
        yield from records
        if records:
            after = records[-1].sequence
        else:
            catalog.wait_for_change(seen, poll_interval_s)


async def follow_events_async(
    catalog: Catalog, video_id: str, after_sequence: int, poll_interval_s: float = POLL_INTERVAL_S
) -> AsyncIterator[EventRecord]:
    """follow_events for the event loop: database reads run in the thread pool."""
    after = after_sequence
    while True:
        records, over = await run_in_threadpool(next_events, catalog, video_id, after)
        if over:
            return
        for record in records:
            yield record
        if records:
            after = records[-1].sequence
        else:
            await asyncio.sleep(poll_interval_s)
