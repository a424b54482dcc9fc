"""Fixtures of the gateway tests: settings with an API key, the app in-process, topic readers, events."""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
import tempfile
import threading
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import requests
import sqlalchemy as sa
import uvicorn
from fastapi.testclient import TestClient
from kafka import KafkaConsumer, TopicPartition

from haic.v1 import events_pb2
from services.core import topics
from services.core.broker import EmbeddedBroker, free_port
from services.core.bus import EventProducer, Output
from services.core.ids import clip_id
from services.core.settings import Settings
from services.gateway.app import create_app
from tests.kafka_helpers import wait_until

API_KEY = "test-key-1"
AUTH = {"Authorization": f"Bearer {API_KEY}"}


@pytest.fixture
def gateway_settings(broker: EmbeddedBroker, make_settings: Callable[..., Settings]) -> Settings:
    # These tests feed the catalog filter outcomes by hand, so the filter is the last stage here; settling
    # at the pose stage (the default) is covered by test_status and the end-to-end tests.
    return make_settings(
        kafka_bootstrap_servers=broker.bootstrap_servers,
        retry_backoff_s=0.05,
        api_keys=[API_KEY],
        catalog_final_stage="filter",
    )


def _postgres_bindir() -> Path | None:
    on_path = shutil.which("pg_ctl")
    if on_path:
        return Path(on_path).resolve().parent
    versions = sorted(Path("/usr/lib/postgresql").glob("*/bin/pg_ctl"))
    return versions[-1].parent if versions else None


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[str]:
    """A throwaway PostgreSQL server (Debian's binaries) on a free port; yields its URL without a database."""
    pytest.importorskip("psycopg")
    bindir = _postgres_bindir()
    if bindir is None or not (bindir / "initdb").exists():
        pytest.skip("PostgreSQL server binaries (initdb, pg_ctl) are not installed")
    # not under pytest's base temp dir: that one is private to the user running the tests
    root = Path(tempfile.mkdtemp(prefix="haic-postgres-"))
    run_as: list[str] = []
    if os.geteuid() == 0:  # the server refuses to run as root
        shutil.chown(root, "postgres")
        run_as = ["runuser", "-u", "postgres", "--"]
    data, port = root / "data", free_port()
    subprocess.run(
        [*run_as, str(bindir / "initdb"), "-D", str(data), "-U", "haic", "--auth=trust", "-E", "UTF8"],
        check=True,
        capture_output=True,
    )
    options = f"-p {port} -k {root} -c listen_addresses=127.0.0.1 -c fsync=off"
    pg_ctl = [*run_as, str(bindir / "pg_ctl"), "-D", str(data)]
    subprocess.run([*pg_ctl, "-o", options, "-l", str(root / "log"), "-w", "start"], check=True, capture_output=True)
    try:
        yield f"postgresql+psycopg://haic@127.0.0.1:{port}"
    finally:
        subprocess.run([*pg_ctl, "-m", "fast", "-w", "stop"], check=False, capture_output=True)
        shutil.rmtree(root, ignore_errors=True)


@pytest.fixture(params=["sqlite", "postgresql"])
def catalog_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """A fresh, empty catalog database of each supported backend."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path}/catalog.db"
    server = request.getfixturevalue("postgres_server")
    name = f"catalog_{uuid.uuid4().hex[:12]}"
    engine = sa.create_engine(f"{server}/postgres", isolation_level="AUTOCOMMIT")
    with engine.connect() as conn:
        conn.execute(sa.text(f'CREATE DATABASE "{name}"'))
    engine.dispose()
    return f"{server}/{name}"


@contextlib.contextmanager
def running_gateway(settings: Settings) -> Iterator[TestClient]:
    """The gateway app with its lifespan running (catalog consumer, gRPC server), once it is ready.

    Waiting for readiness also keeps teardown short: a consumer stopped in the middle of its first
    group join makes kafka-python finish the join before leaving.
    """
    with TestClient(create_app(settings)) as client:
        wait_until(lambda: client.get("/readyz").status_code == 200, what="gateway readiness")
        yield client


@pytest.fixture
def gateway(gateway_settings: Settings) -> Iterator[TestClient]:
    with running_gateway(gateway_settings) as client:
        yield client


@pytest.fixture
def producer(gateway_settings: Settings) -> Iterator[EventProducer]:
    events_producer = EventProducer(gateway_settings, "test")
    yield events_producer
    events_producer.close()


class GatewayServer:
    """The gateway app under uvicorn in a thread: what a client reaches over HTTP, lifespan included."""

    def __init__(self, settings: Settings) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        config = uvicorn.Config(create_app(settings), host="127.0.0.1", port=self.port, log_level="warning")
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, name="gateway-under-uvicorn", daemon=True)

    def __enter__(self) -> GatewayServer:
        self.thread.start()

        def ready() -> bool:
            try:
                return requests.get(f"{self.url}/readyz", timeout=2).status_code == 200
            except requests.ConnectionError:
                return False

        wait_until(ready, 60, "the gateway under uvicorn to be ready")
        return self

    def __exit__(self, *_exc: object) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=30)


def upload_over_http(url: str, path: Path) -> dict:
    with open(path, "rb") as f:
        response = requests.post(
            f"{url}/v1/videos", files={"file": (path.name, f, "video/mp4")}, headers=AUTH, timeout=60
        )
    assert response.status_code in (200, 202), response.text
    return response.json()


def upload(client: TestClient, path: Path, name: str | None = None, **fields: str):
    with open(path, "rb") as f:
        return client.post("/v1/videos", files={"file": (name or path.name, f, "video/mp4")}, data=fields, headers=AUTH)


def wait_for_status(client: TestClient, video_id: str, status: str, timeout_s: float = 30.0) -> dict:
    def current() -> dict | None:
        response = client.get(f"/v1/videos/{video_id}", headers=AUTH)
        if response.status_code == 200 and response.json()["status"] == status:
            return response.json()
        return None

    return wait_until(current, timeout_s, f"{video_id} to become {status}")


# --- hand-made pipeline events, as the filter and pose stages emit them ---


def span(video_id: str, index: int, count: int, start_s: float, end_s: float) -> events_pb2.ClipSpan:
    return events_pb2.ClipSpan(
        clip_id=clip_id(video_id, start_s, end_s),
        start_s=start_s,
        end_s=end_s,
        clip_index=index,
        clip_count=count,
        scene_index=index,
    )


def candidate(video_id: str, clip: events_pb2.ClipSpan) -> Output:
    message = events_pb2.ClipCandidate(video_id=video_id, span=clip, values={"duration_s": clip.end_s - clip.start_s})
    return Output(topics.CLIPS_CANDIDATE, video_id, message)


def rejected(
    video_id: str, clip: events_pb2.ClipSpan | None, stage: str, reason_code: str, values: dict[str, float]
) -> Output:
    message = events_pb2.ClipVerdict(
        video_id=video_id,
        verdict=events_pb2.VERDICT_REJECTED,
        stage=stage,
        reason_code=reason_code,
        reason=f"{reason_code}: {values}",
        values=values,
    )
    if clip is not None:
        message.span.CopyFrom(clip)
    return Output(topics.CLIPS_REJECTED, video_id, message)


def accepted(video_id: str, clip: events_pb2.ClipSpan, stage: str = "pose.human_action") -> Output:
    message = events_pb2.ClipVerdict(
        video_id=video_id, span=clip, verdict=events_pb2.VERDICT_ACCEPTED, stage=stage, values={"keypoint_l1": 0.2}
    )
    return Output(topics.CLIPS_ACCEPTED, video_id, message)


def wait_caught_up(client: TestClient, settings: Settings, timeout_s: float = 30.0) -> None:
    """Waits until the catalog has stored, for every partition, an offset at the partition's end."""
    catalog = client.app.state.runtime.catalog
    consumer = KafkaConsumer(bootstrap_servers=settings.kafka_bootstrap_servers.split(","))
    try:
        partitions = [
            TopicPartition(topic, p) for topic in topics.ALL_TOPICS for p in consumer.partitions_for_topic(topic) or []
        ]
        ends = consumer.end_offsets(partitions)
    finally:
        consumer.close()

    def caught_up() -> bool:
        return all(end == 0 or (catalog.load_offset(tp.topic, tp.partition) or 0) >= end for tp, end in ends.items())

    wait_until(caught_up, timeout_s, "the catalog to consume every partition to its end")
