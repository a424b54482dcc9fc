"""`haic ingest`: manifests read as collections, and whole runs against a real gateway and Apache Kafka broker
(interrupted and resumed, bad rows, backpressure, an s3:// prefix)."""

from __future__ import annotations

import csv
import json
import os
import signal
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path

import boto3
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from clients.ingest import ManifestError, ManifestRow, RowProblem, default_batch, open_collection
from clients.sdk import HaicClient
from services.core import topics
from services.core.bus import read_topic_to_end
from services.core.settings import Settings
from tests.gateway.conftest import API_KEY, GatewayServer
from tests.kafka_helpers import wait_until

REPO_ROOT = Path(__file__).resolve().parents[2]
# Small, distinct shared videos: the run stays short.
VIDEOS = (
    "juggle_one_person.mp4",
    "static_no_person.mp4",
    "test_card_no_person.mp4",
    "slideshow_three_stills.mp4",
    "camera_pan_static_person.mp4",
)


def _rows(source: str | Path) -> list[ManifestRow | RowProblem]:
    return list(open_collection(str(source)).rows)


# --- reading collections ---


def test_webvid_columns_work_without_a_mapping(tmp_path: Path) -> None:
    manifest = tmp_path / "results_2M_val.csv"
    with manifest.open("w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["videoid", "contentUrl", "duration", "page_dir", "name"])
        writer.writerow(
            [
                "1066694266",
                "https://example.com/1066694266.mp4",
                "PT00H00M15S",
                "010701_010750",
                "Young woman walks on the beach",
            ]
        )
    collection = open_collection(str(manifest))
    assert collection.total == 1 and collection.ignored_columns == []
    (row,) = list(collection.rows)
    assert row == ManifestRow(
        1,
        "https://example.com/1066694266.mp4",
        external_id="1066694266",
        description="Young woman walks on the beach",
        source_url="https://example.com/1066694266.mp4",
    )
    assert row.is_reference and row.key == "1066694266"


def test_generic_jsonl_and_parquet_layouts_with_relative_paths(tmp_path: Path) -> None:
    jsonl = tmp_path / "sub" / "manifest.jsonl"
    jsonl.parent.mkdir()
    jsonl.write_text(
        json.dumps({"path": "clips/a.mp4", "description": "A man runs", "id": "a", "license": "cc-by"})
        + "\n\n"
        + "{not json\n"
        + json.dumps({"description": "no location"})
        + "\n"
    )
    collection = open_collection(str(jsonl))
    assert collection.ignored_columns == ["license"]
    first, broken, empty = collection.rows
    assert first == ManifestRow(1, str(tmp_path / "sub" / "clips" / "a.mp4"), "a", "A man runs", "")
    assert isinstance(broken, RowProblem) and broken.reason_code == "malformed_row"
    assert isinstance(empty, RowProblem) and empty.reason_code == "no_location"

    parquet = tmp_path / "manifest.parquet"
    pq.write_table(pa.table({"url": ["s3://raw/a.mp4", "/abs/b.mp4"], "caption": ["one", "two"]}), parquet)
    rows = _rows(parquet)
    assert [r.location for r in rows if isinstance(r, ManifestRow)] == ["s3://raw/a.mp4", "/abs/b.mp4"]
    assert [r.description for r in rows if isinstance(r, ManifestRow)] == ["one", "two"]


def test_a_directory_lists_its_videos_and_a_manifest_without_locations_is_refused(tmp_path: Path) -> None:
    (tmp_path / "d" / "nested").mkdir(parents=True)
    for name in ("b.mp4", "nested/a.MKV", "labels.json", "README.md"):
        (tmp_path / "d" / name).write_bytes(b"x")
    assert [Path(r.location).name for r in _rows(tmp_path / "d") if isinstance(r, ManifestRow)] == ["b.mp4", "a.MKV"]

    wrong = tmp_path / "wrong.csv"
    wrong.write_text("title,author\nA,B\n")
    with pytest.raises(ManifestError, match="no column names a video"):
        open_collection(str(wrong))
    with pytest.raises(ManifestError, match="does not exist"):
        open_collection(str(tmp_path / "absent.csv"))
    with pytest.raises(ManifestError, match="a manifest is"):
        open_collection(str(tmp_path / "d" / "README.md"))
    assert default_batch(str(wrong)) == default_batch(str(wrong)) and default_batch(str(wrong)).startswith("wrong-")


# --- whole runs against the gateway ---


@pytest.fixture
def server(gateway_settings: Settings) -> Iterator[GatewayServer]:
    with GatewayServer(gateway_settings) as running:
        yield running


def _ingest(server: GatewayServer, *args: str) -> subprocess.Popen[str]:
    env = {**os.environ, "HAIC_API_KEY": API_KEY}
    return subprocess.Popen(
        [sys.executable, "-m", "clients.cli", "--gateway", server.url, "ingest", *args, "--no-progress"],
        cwd=REPO_ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )


def _journal(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []


def _announced(settings: Settings) -> Counter[str]:
    """How many VideoUploaded each video got on haic.videos.v1."""
    return Counter(message.video_id for _key, message in read_topic_to_end(settings, topics.VIDEOS))


@pytest.mark.kafka
def test_a_manifest_ingested_interrupted_and_resumed_takes_each_video_once(
    server: GatewayServer, gateway_settings: Settings, shared_videos: Path, tmp_path: Path
) -> None:
    manifest = tmp_path / "shared.csv"
    with manifest.open("w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["id", "path", "description"])
        for name in VIDEOS:
            writer.writerow([name, str(shared_videos / name), f"A video called {name}"])
    state = tmp_path / "state"
    batch = "shared-videos"
    journal = state / f"{batch}.jsonl"

    # Nothing consumes haic.videos.v1 here, so the backlog grows by one per video: with --max-lag 2 the run
    # holds after a few videos, and is interrupted while it holds.
    first = _ingest(server, str(manifest), "--batch", batch, "--state-dir", str(state), "--concurrency", "1",
                    "--max-lag", "2")  # fmt: skip
    wait_until(lambda: len(_journal(journal)) >= 2, 60, "the first videos to be taken")
    time.sleep(3)  # held: the backlog is over the limit and nothing drains it
    taken_before = len(_journal(journal))
    assert 2 <= taken_before < len(VIDEOS), taken_before
    first.send_signal(signal.SIGINT)
    output, _ = first.communicate(timeout=60)
    assert first.returncode == 130, output
    assert "run the same command again to resume" in output
    assert len(_journal(journal)) == taken_before

    resumed = _ingest(server, str(manifest), "--batch", batch, "--state-dir", str(state), "--max-lag", "0")
    output, _ = resumed.communicate(timeout=120)
    assert resumed.returncode == 0, output
    assert f"{len(VIDEOS) - taken_before} new, 0 already known, {taken_before} skipped" in output, output
    entries = _journal(journal)
    assert sorted(e["key"] for e in entries) == sorted(VIDEOS)  # each row once
    video_ids = {e["video_id"] for e in entries}
    assert len(video_ids) == len(VIDEOS)
    assert _announced(gateway_settings) == Counter(dict.fromkeys(video_ids, 1))  # each video announced once

    with HaicClient(server.url, API_KEY) as client:
        report = client.report(batch=batch)
        catalog = client.videos(limit=100)
        assert report["videos_in"] == catalog["total"] == len(VIDEOS)
        assert {v["video_id"] for v in catalog["items"]} == video_ids
        assert client.backlog()["stages"]["filter"] == len(VIDEOS)

    # A journal lost (or rows answered but not journaled when a run was killed): the gateway knows every row
    # by its external id, so nothing is read or announced twice.
    journal.unlink()
    again = _ingest(server, str(manifest), "--batch", batch, "--state-dir", str(state), "--max-lag", "0")
    output, _ = again.communicate(timeout=120)
    assert again.returncode == 0 and f"0 new, {len(VIDEOS)} already known" in output, output
    assert _announced(gateway_settings) == Counter(dict.fromkeys(video_ids, 1))


@pytest.mark.kafka
def test_bad_rows_go_to_the_rejects_file_and_the_run_goes_on(
    server: GatewayServer, shared_videos: Path, tmp_path: Path
) -> None:
    (tmp_path / "notes.txt").write_text("not a video\n")
    manifest = tmp_path / "mixed.jsonl"
    rows = [
        {"path": str(shared_videos / "juggle_one_person.mp4"), "id": "good", "colour": "red"},
        {"path": str(tmp_path / "missing.mp4"), "id": "missing"},
        {"path": "notes.txt", "id": "text"},
        {"title": "a row of unknown columns", "id": "unknown"},
        {"path": "http://127.0.0.1:9/a.mp4", "id": "private-url"},
    ]
    manifest.write_text("".join(json.dumps(r) + "\n" for r in rows) + "{broken\n")
    run = _ingest(server, str(manifest), "--batch", "mixed", "--state-dir", str(tmp_path / "state"))
    output, _ = run.communicate(timeout=120)
    assert run.returncode == 0, output
    assert "batch mixed: 1 new, 0 already known, 0 skipped (taken by an earlier run), 5 rejected" in output
    assert "ignored columns: colour" in output and "mixed.rejects.jsonl" in output
    rejects = {r["row"]: r for r in _journal(tmp_path / "state" / "mixed.rejects.jsonl")}
    assert {row: r["reason_code"] for row, r in rejects.items()} == {
        2: "missing_file",
        3: "not_a_video",
        4: "no_location",
        5: "private_address",
        6: "malformed_row",
    }
    assert all(r["reason"] for r in rejects.values())


@pytest.mark.kafka
def test_an_s3_prefix_is_registered_by_reference(
    broker, make_settings: Callable[..., Settings], s3_endpoint: str, shared_videos: Path, tmp_path: Path
) -> None:
    s3 = boto3.client("s3", endpoint_url=s3_endpoint)
    s3.create_bucket(Bucket="raw")
    for name in VIDEOS[:2]:
        s3.upload_file(str(shared_videos / name), "raw", f"crawl/{name}")
    s3.put_object(Bucket="raw", Key="crawl/index.html", Body=b"<html></html>")
    settings = make_settings(
        kafka_bootstrap_servers=broker.bootstrap_servers,
        api_keys=[API_KEY],
        catalog_final_stage="filter",
        reference_roots=["s3://raw/crawl"],
        s3_endpoint_url=s3_endpoint,
    )
    with GatewayServer(settings) as server:
        os.environ["HAIC_S3_ENDPOINT_URL"] = s3_endpoint
        try:
            run = _ingest(server, "s3://raw/crawl/", "--batch", "crawl", "--state-dir", str(tmp_path / "state"))
            output, _ = run.communicate(timeout=120)
        finally:
            del os.environ["HAIC_S3_ENDPOINT_URL"]
        assert run.returncode == 0 and "batch crawl: 2 new" in output, output
        with HaicClient(server.url, API_KEY) as client:
            assert client.report(batch="crawl")["videos_in"] == 2
