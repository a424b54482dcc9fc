"""Shared fixtures: a real Apache Kafka broker per test, settings pointing at it, the shared videos."""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path

import boto3
import pytest
from moto.server import ThreadedMotoServer

from haic_tools.local_llm import LocalLlmServer
from services.core.broker import EmbeddedBroker, free_port
from services.core.settings import Settings

REPO_ROOT = Path(__file__).resolve().parents[1]


def _shared_videos_dir() -> Path:
    candidates = [
        os.environ.get("HAIC_SHARED_VIDEOS", ""),
        str(REPO_ROOT.parent / "shared" / "videos"),
        "/work/shared/videos",
    ]
    for candidate in candidates:
        if candidate and (Path(candidate) / "labels.json").is_file():
            return Path(candidate)
    raise RuntimeError(f"shared videos with labels.json not found in {candidates}; set HAIC_SHARED_VIDEOS")


@pytest.fixture(scope="session")
def shared_videos() -> Path:
    return _shared_videos_dir()


@pytest.fixture(scope="session")
def video_labels(shared_videos: Path) -> dict[str, dict]:
    labels = json.loads((shared_videos / "labels.json").read_text())
    return {name: value for name, value in labels.items() if not name.startswith("_")}


class BrokerPool:
    """Apache Kafka brokers for tests, one per test so tests never see each other's topics, groups or
    offsets. A JVM broker takes seconds to start, so the next one starts in the background while a test
    runs. Brokers are started from one long-lived thread: their PDEATHSIG is tied to the starting thread."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.count = 0
        self.executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="broker-pool")
        self.next: Future[EmbeddedBroker] | None = None

    def _start(self) -> EmbeddedBroker:
        self.count += 1
        data_dir = self.root / f"broker-{self.count}"
        # 256 MiB is plenty for a test's few topics; the launcher's default is larger
        return EmbeddedBroker(
            free_port(), data_dir=data_dir, log_path=data_dir.with_suffix(".log"), heap_mb=256
        ).start()

    def take(self) -> EmbeddedBroker:
        current = self.next or self.executor.submit(self._start)
        self.next = self.executor.submit(self._start)
        return current.result()

    def release(self, broker: EmbeddedBroker) -> None:
        # a test broker's data is thrown away: no controlled shutdown needed
        broker.kill()
        shutil.rmtree(broker.data_dir, ignore_errors=True)

    def close(self) -> None:
        if self.next is not None:
            self.release(self.next.result())
        self.executor.shutdown()


@pytest.fixture(scope="session")
def broker_pool() -> Iterator[BrokerPool]:
    root = Path(tempfile.mkdtemp(prefix="haic-brokers-"))
    pool = BrokerPool(root)
    try:
        yield pool
    finally:
        pool.close()
        shutil.rmtree(root, ignore_errors=True)


@pytest.fixture
def broker(broker_pool: BrokerPool) -> Iterator[EmbeddedBroker]:
    """A fresh Apache Kafka broker for this test (taken from the pool, already started)."""
    running = broker_pool.take()
    try:
        yield running
    finally:
        broker_pool.release(running)


@pytest.fixture
def make_settings(tmp_path: Path) -> Callable[..., Settings]:
    """Settings isolated in tmp_path; pass overrides as keyword arguments."""

    def make(**overrides: object) -> Settings:
        values: dict[str, object] = {"data_dir": tmp_path / "haic", "metrics_port": 0, "grpc_port": 0}
        values.update(overrides)
        return Settings(**values)

    return make


@pytest.fixture
def kafka_settings(broker: EmbeddedBroker, make_settings: Callable[..., Settings]) -> Settings:
    return make_settings(kafka_bootstrap_servers=broker.bootstrap_servers, retry_backoff_s=0.05)


@pytest.fixture(scope="session")
def local_llm() -> Iterator[LocalLlmServer]:
    """The real OpenAI-compatible server (llama-cpp-python + SmolLM2 from .venv-llm), one per session."""
    with LocalLlmServer() as server:
        yield server


@pytest.fixture
def s3_endpoint(monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """A real S3-compatible HTTP server (moto) on a free port, with a bucket named `videos`."""
    for name, value in {
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_DEFAULT_REGION": "us-east-1",
    }.items():
        monkeypatch.setenv(name, value)
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    endpoint = f"http://{host}:{port}"
    boto3.client("s3", endpoint_url=endpoint).create_bucket(Bucket="videos")
    yield endpoint
    server.stop()
