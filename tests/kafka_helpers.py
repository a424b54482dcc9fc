"""Test helpers around a real broker: run a worker in a thread, read a topic back, wait for a condition."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import TypeVar

from kafka import KafkaConsumer

from services.core.bus import Worker, decode, read_topic_to_end  # noqa: F401 - re-exported for the tests
from services.core.settings import Settings

T = TypeVar("T")


@contextmanager
def running(worker: Worker, timeout_s: float = 30.0) -> Iterator[Worker]:
    """Runs the worker in a thread until the block ends; waits until it owns partitions."""
    thread = threading.Thread(target=worker.run, daemon=True)
    thread.start()
    if not worker.assigned.wait(timeout_s):
        worker.stop()
        raise TimeoutError(f"worker {worker.service} got no partitions in {timeout_s} s")
    try:
        yield worker
    finally:
        worker.stop()
        thread.join(30)


def read_topic(settings: Settings, topic: str, expected: int, timeout_s: float = 30.0) -> list:
    """Reads a topic from the beginning until `expected` records arrived (or the timeout), as (key, message)."""
    consumer = KafkaConsumer(
        topic,
        bootstrap_servers=settings.kafka_bootstrap_servers,
        auto_offset_reset="earliest",
        enable_auto_commit=False,
        group_id=None,
        consumer_timeout_ms=500,
    )
    records: list = []
    deadline = time.monotonic() + timeout_s
    try:
        while len(records) < expected and time.monotonic() < deadline:
            for record in consumer:
                records.append((record.key.decode(), decode(topic, record.value)))
    finally:
        consumer.close()
    return records


def wait_until(probe: Callable[[], T | None], timeout_s: float = 30.0, what: str = "condition") -> T:
    """Polls `probe` until it returns something truthy and returns that; fails the test after `timeout_s`."""
    deadline = time.monotonic() + timeout_s
    last: T | None = None
    while time.monotonic() < deadline:
        last = probe()
        if last:
            return last
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}; last value: {last!r}")
