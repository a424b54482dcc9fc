"""Test helpers around a real broker: run a worker in a thread, read a topic back."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager

from kafka import KafkaConsumer

from services.core.bus import Worker, decode
from services.core.settings import Settings


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


def wait_until(predicate, timeout_s: float = 30.0, interval_s: float = 0.1) -> bool:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(interval_s)
    return predicate()
