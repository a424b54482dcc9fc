"""`haic ingest SOURCE`: submit a whole collection to the gateway, resumably, without flooding the pipeline.

SOURCE is a manifest (CSV/TSV, JSON Lines or Parquet), a local directory, or s3://bucket/prefix.

Manifest columns are recognised by name, so WebVid's own files work as they are (`videoid, contentUrl,
name, duration, page_dir`), and so does a generic `path` or `url`, `description`, `id` layout. Other columns
are ignored and named in the summary. A relative path is relative to the manifest's folder.

Each row is one video: a local file is uploaded (POST /v1/videos); an s3:// or http(s):// location is
registered by reference (POST /v1/videos/by-reference) and read by the gateway itself. Every submission
names the batch, so `haic report --batch` gives the batch's funnel.

Resuming: every row taken is appended to the batch's journal (<data_dir>/ingest/<batch>.jsonl) as soon as
the gateway answered, and a re-run skips the rows in it. Rows taken but not yet journaled when a run was
stopped are submitted again and recognised by the gateway (same external id, or same content hash), so a
video is never catalogued twice.

Backpressure: a submission waits while the pipeline's backlog (GET /v1/backlog: messages the stages'
consumer groups have yet to process) is above --max-lag.

A row that cannot be taken (missing file, not a video, unreachable URL, refused reference) goes to the
rejects file (<data_dir>/ingest/<batch>.rejects.jsonl) with its reason; the run goes on.
"""

from __future__ import annotations

import csv
import hashlib
import json
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import httpx
from tqdm import tqdm

from clients.sdk import GatewayError, HaicClient

# Column names recognised in a manifest, first match wins (WebVid: videoid, contentUrl, name, page_dir).
LOCATION_COLUMNS = ("path", "url", "contentUrl", "uri", "file", "video", "video_path")
ID_COLUMNS = ("id", "videoid", "video_id", "external_id")
DESCRIPTION_COLUMNS = ("description", "name", "caption", "text", "title")
SOURCE_URL_COLUMNS = ("source_url", "page_url")
# Known but not needed: WebVid's duration and page_dir (the gateway probes the duration itself).
KNOWN_UNUSED_COLUMNS = ("duration", "page_dir")
MANIFEST_SUFFIXES = {".csv": "csv", ".tsv": "tsv", ".jsonl": "jsonl", ".ndjson": "jsonl", ".parquet": "parquet"}
# What a directory walk submits: video containers FFmpeg reads, by extension (a README or labels.json is
# not a row of the collection).
VIDEO_SUFFIXES = frozenset(
    {".mp4", ".m4v", ".mov", ".mkv", ".webm", ".avi", ".gif", ".mpg", ".mpeg", ".ts", ".m2ts", ".flv", ".ogv"}
    | {".wmv", ".3gp", ".3g2", ".mxf"}
)
# Gateway answers worth a retry: it is starting, the bus is away, or a reference's server failed.
RETRY_STATUSES = frozenset({429, 502, 503, 504})
# Answers that no other row would get past either (a wrong API key, a gateway without its bus, still after the
# retries): the run stops instead of rejecting every row. Other answers (403 for a reference outside the
# allowed roots, 502 for a URL whose server failed) are about the row.
STOPPING_STATUSES = frozenset({401, 503})


class ManifestError(ValueError):
    """The source cannot be read as a collection at all (unknown format, no location column)."""


@dataclass(frozen=True)
class ManifestRow:
    row: int  # 1-based position in the source
    location: str  # an absolute local path, s3:// or http(s)://
    external_id: str = ""
    description: str = ""
    source_url: str = ""

    @property
    def key(self) -> str:
        """What the journal remembers the row by: its id, else where it is."""
        return self.external_id or self.location

    @property
    def is_reference(self) -> bool:
        return urlparse(self.location).scheme in {"s3", "http", "https"}


@dataclass(frozen=True)
class RowProblem:
    """A row that could not even be turned into a submission."""

    row: int
    reason_code: str
    message: str
    raw: dict[str, Any] = field(default_factory=dict)


@dataclass
class Collection:
    rows: Iterator[ManifestRow | RowProblem]
    total: int | None
    ignored_columns: list[str]


def _pick(columns: list[str], names: tuple[str, ...]) -> str | None:
    lowered = {c.lower(): c for c in columns}
    return next((lowered[n.lower()] for n in names if n.lower() in lowered), None)


class ColumnMap:
    """Which manifest column gives what; built from the header (CSV, Parquet) or the first row (JSONL)."""

    def __init__(self, columns: list[str], base_dir: Path) -> None:
        self.location = _pick(columns, LOCATION_COLUMNS)
        if self.location is None:
            raise ManifestError(
                f"no column names a video: expected one of {', '.join(LOCATION_COLUMNS)}; found {', '.join(columns)}"
            )
        self.external_id = _pick(columns, ID_COLUMNS)
        self.description = _pick(columns, DESCRIPTION_COLUMNS)
        self.source_url = _pick(columns, SOURCE_URL_COLUMNS)
        used = {self.location, self.external_id, self.description, self.source_url}
        known = {c.lower() for c in KNOWN_UNUSED_COLUMNS}
        self.ignored = [c for c in columns if c not in used and c.lower() not in known]
        self.base_dir = base_dir

    def row(self, number: int, record: dict[str, Any]) -> ManifestRow | RowProblem:
        def text(column: str | None) -> str:
            value = record.get(column) if column else None
            return "" if value is None else str(value).strip()

        location = text(self.location)
        if not location:
            return RowProblem(number, "no_location", f"the row has no {self.location}", _jsonable(record))
        if urlparse(location).scheme not in {"s3", "http", "https"}:
            path = Path(location[7:] if location.startswith("file://") else location).expanduser()
            location = str(path if path.is_absolute() else (self.base_dir / path).resolve())
        source_url = text(self.source_url)
        if not source_url and location.startswith(("http://", "https://")):
            source_url = location
        return ManifestRow(number, location, text(self.external_id), text(self.description), source_url)


def _jsonable(record: dict[str, Any]) -> dict[str, Any]:
    return {str(k): (v if isinstance(v, str | int | float | bool) or v is None else str(v)) for k, v in record.items()}


def _count_lines(path: Path) -> int:
    with path.open("rb") as f:
        return sum(1 for line in f if line.strip())


def _csv_rows(path: Path, delimiter: str) -> Collection:
    with path.open(newline="", encoding="utf-8-sig") as f:
        header = next(csv.reader(f, delimiter=delimiter), None)
    if not header:
        raise ManifestError(f"{path} is empty")
    columns = ColumnMap(header, path.parent)

    def rows() -> Iterator[ManifestRow | RowProblem]:
        with path.open(newline="", encoding="utf-8-sig") as f:
            reader = csv.DictReader(f, delimiter=delimiter)
            for number, record in enumerate(reader, start=1):
                if None in record:  # more fields than the header has
                    yield RowProblem(number, "malformed_row", "the row has more fields than the header", {})
                    continue
                yield columns.row(number, record)

    return Collection(rows(), max(0, _count_lines(path) - 1), columns.ignored)


def _jsonl_rows(path: Path) -> Collection:
    first: dict[str, Any] | None = None
    with path.open(encoding="utf-8") as f:
        for line in f:
            if line.strip():
                try:
                    candidate = json.loads(line)
                except json.JSONDecodeError as exc:
                    raise ManifestError(f"{path}: the first row is not JSON: {exc}") from exc
                if not isinstance(candidate, dict):
                    raise ManifestError(f"{path}: rows must be JSON objects")
                first = candidate
                break
    if first is None:
        raise ManifestError(f"{path} is empty")
    columns = ColumnMap(list(first), path.parent)

    def rows() -> Iterator[ManifestRow | RowProblem]:
        with path.open(encoding="utf-8") as f:
            number = 0
            for line in f:
                if not line.strip():
                    continue
                number += 1
                try:
                    record = json.loads(line)
                except json.JSONDecodeError as exc:
                    yield RowProblem(number, "malformed_row", f"not JSON: {exc}", {"line": line[:200]})
                    continue
                if not isinstance(record, dict):
                    yield RowProblem(number, "malformed_row", "not a JSON object", {"line": line[:200]})
                    continue
                yield columns.row(number, record)

    return Collection(rows(), _count_lines(path), columns.ignored)


def _parquet_rows(path: Path) -> Collection:
    import pyarrow.parquet as pq

    parquet = pq.ParquetFile(path)
    columns = ColumnMap(parquet.schema_arrow.names, path.parent)

    def rows() -> Iterator[ManifestRow | RowProblem]:
        number = 0
        for batch in parquet.iter_batches(batch_size=4096):  # a WebVid shard never sits in memory whole
            for record in batch.to_pylist():
                number += 1
                yield columns.row(number, record)

    return Collection(rows(), parquet.metadata.num_rows, columns.ignored)


def _directory_rows(root: Path) -> Collection:
    files = sorted(p for p in root.rglob("*") if p.is_file() and p.suffix.lower() in VIDEO_SUFFIXES)
    rows = (ManifestRow(number, str(p.resolve())) for number, p in enumerate(files, start=1))
    return Collection(iter(rows), len(files), [])


def _s3_rows(bucket: str, prefix: str, endpoint_url: str | None) -> Collection:
    import boto3

    client = boto3.client("s3", endpoint_url=endpoint_url)
    keys = [
        obj["Key"]
        for page in client.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix)
        for obj in page.get("Contents", [])
        if Path(obj["Key"]).suffix.lower() in VIDEO_SUFFIXES
    ]
    rows = (
        ManifestRow(number, f"s3://{bucket}/{key}", external_id=f"s3://{bucket}/{key}")
        for number, key in enumerate(sorted(keys), start=1)
    )
    return Collection(iter(rows), len(keys), [])


def open_collection(source: str, s3_endpoint_url: str | None = None) -> Collection:
    """The rows of a manifest, directory or s3:// prefix; raises ManifestError."""
    parsed = urlparse(source)
    if parsed.scheme == "s3":
        if not parsed.netloc:
            raise ManifestError(f"{source}: name a bucket, s3://bucket/prefix")
        return _s3_rows(parsed.netloc, parsed.path.lstrip("/"), s3_endpoint_url)
    path = Path(source).expanduser()
    if path.is_dir():
        return _directory_rows(path)
    if not path.is_file():
        raise ManifestError(f"{source} does not exist")
    kind = MANIFEST_SUFFIXES.get(path.suffix.lower())
    if kind == "csv":
        return _csv_rows(path, ",")
    if kind == "tsv":
        return _csv_rows(path, "\t")
    if kind == "jsonl":
        return _jsonl_rows(path)
    if kind == "parquet":
        return _parquet_rows(path)
    raise ManifestError(f"{source}: a manifest is .csv, .tsv, .jsonl, .ndjson or .parquet")


def default_batch(source: str) -> str:
    """A stable batch name for a source, so that running the same command again continues the same batch."""
    parsed = urlparse(source)
    where = source if parsed.scheme == "s3" else str(Path(source).expanduser().resolve())
    stem = "".join(ch if ch.isalnum() or ch in "-_." else "-" for ch in Path(parsed.path or source).stem)[:40]
    return f"{stem or 'ingest'}-{hashlib.sha256(where.encode()).hexdigest()[:8]}"


class Journal:
    """The rows a batch has taken, one JSON line each, appended and flushed as each answer arrives."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.taken: set[str] = set()
        if path.exists():
            with path.open(encoding="utf-8") as f:
                for line in f:
                    try:
                        self.taken.add(json.loads(line)["key"])
                    except (json.JSONDecodeError, KeyError, TypeError):
                        continue  # a line cut short by a crash: its row is submitted again
        path.parent.mkdir(parents=True, exist_ok=True)
        self._file = path.open("a", encoding="utf-8")
        self._lock = threading.Lock()

    def record(self, entry: dict[str, Any]) -> None:
        with self._lock:
            self._file.write(json.dumps(entry) + "\n")
            self._file.flush()
            self.taken.add(entry["key"])

    def close(self) -> None:
        self._file.close()


class BacklogGate:
    """Holds submissions while the pipeline's backlog is above `max_lag` (0: never holds)."""

    def __init__(self, client: HaicClient, max_lag: int, poll_s: float, stop: threading.Event) -> None:
        self.client = client
        self.max_lag = max_lag
        self.poll_s = poll_s
        self.stop = stop
        self.lag: int | None = None
        self.held_s = 0.0
        self._checked_at = 0.0
        self._lock = threading.Lock()

    def wait_for_room(self) -> None:
        if self.max_lag <= 0:
            return
        while not self.stop.is_set():
            with self._lock:
                if time.monotonic() - self._checked_at >= self.poll_s:
                    try:
                        self.lag = int(self.client.backlog()["total"])
                    except (GatewayError, httpx.HTTPError):
                        self.lag = None  # the gateway cannot tell now: do not flood it meanwhile
                    self._checked_at = time.monotonic()
                lag = self.lag
            if lag is not None and lag <= self.max_lag:
                return
            started = time.monotonic()
            self.stop.wait(self.poll_s)
            with self._lock:
                self.held_s += time.monotonic() - started

    def note_submitted(self) -> None:
        """A submission adds to the backlog before the next poll sees it: count it meanwhile."""
        with self._lock:
            if self.lag is not None:
                self.lag += 1


@dataclass
class IngestOutcome:
    batch: str
    journal: Path
    rejects: Path
    counts: Counter[str]
    ignored_columns: list[str]
    interrupted: bool
    held_s: float
    errors: list[str] = field(default_factory=list)

    def summary(self) -> str:
        c = self.counts
        lines = [
            f"batch {self.batch}: {c['new']} new, {c['duplicate']} already known, {c['skipped']} skipped "
            f"(taken by an earlier run), {c['rejected']} rejected",
        ]
        if self.held_s:
            lines.append(f"held back {self.held_s:.0f} s while the pipeline's backlog was over the limit")
        if self.ignored_columns:
            lines.append(f"ignored columns: {', '.join(self.ignored_columns)}")
        if c["rejected"]:
            lines.append(f"rejected rows and their reasons: {self.rejects}")
        lines.extend(f"error: {error}" for error in self.errors)
        if self.interrupted:
            lines.append("stopped before the end: run the same command again to resume")
        lines.append(f"yield report: haic report --batch {self.batch}")
        return "\n".join(lines)


def _submit(client: HaicClient, row: ManifestRow, batch: str, attempts: int, backoff_s: float) -> dict[str, Any]:
    """One row to the gateway, retrying what a retry can fix; raises GatewayError or OSError for the rest."""
    for attempt in range(1, attempts + 1):
        try:
            if row.is_reference:
                return client.register(row.location, row.description, row.source_url, row.external_id, batch)
            return client.submit(Path(row.location), row.description, row.source_url, row.external_id, batch)
        except GatewayError as exc:
            if exc.status_code not in RETRY_STATUSES or attempt == attempts:
                raise
        except httpx.TransportError:
            if attempt == attempts:
                raise
        time.sleep(backoff_s * 2 ** (attempt - 1))
    raise AssertionError("unreachable")


def ingest(
    client: HaicClient,
    source: str,
    *,
    state_dir: Path,
    batch: str | None = None,
    concurrency: int = 4,
    max_lag: int = 200,
    poll_s: float = 1.0,
    attempts: int = 4,
    backoff_s: float = 1.0,
    s3_endpoint_url: str | None = None,
    progress: bool = True,
    stop: threading.Event | None = None,
    on_row: Callable[[str], None] | None = None,
) -> IngestOutcome:
    """Submits every row of `source` not taken yet; returns the counts. `stop` (or Ctrl-C) ends it early,
    after the submissions in flight are answered and journaled."""
    collection = open_collection(source, s3_endpoint_url)
    batch = batch or default_batch(source)
    journal = Journal(state_dir / f"{batch}.jsonl")
    rejects_path = state_dir / f"{batch}.rejects.jsonl"
    stop = stop or threading.Event()
    gate = BacklogGate(client, max_lag, poll_s, stop)
    counts: Counter[str] = Counter()
    errors: list[str] = []
    lock = threading.Lock()
    bar = tqdm(total=collection.total, unit="video", desc=batch, disable=not progress, dynamic_ncols=True)

    def count(state: str) -> None:
        with lock:
            counts[state] += 1
            held = f" holding(lag {gate.lag})" if gate.lag is not None and 0 < max_lag < gate.lag else ""
            bar.set_postfix_str(
                " ".join(f"{k}={counts[k]}" for k in ("new", "duplicate", "skipped", "rejected") if counts[k]) + held,
                refresh=False,
            )
            bar.update(1)
        if on_row is not None:
            on_row(state)

    def reject(rejects: Any, number: int, key: str, code: str, message: str, extra: dict[str, Any]) -> None:
        with lock:
            rejects.write(json.dumps({"row": number, "key": key, "reason_code": code, "reason": message, **extra}))
            rejects.write("\n")
            rejects.flush()
        count("rejected")

    def fail(message: str) -> None:
        with lock:
            errors.append(message)
        stop.set()

    def take(rejects: Any, row: ManifestRow) -> None:
        gate.wait_for_room()
        if stop.is_set():
            return
        if not row.is_reference and not Path(row.location).is_file():
            reject(rejects, row.row, row.key, "missing_file", f"{row.location} does not exist", {})
            return
        try:
            answer = _submit(client, row, batch, attempts, backoff_s)
        except GatewayError as exc:
            if exc.status_code in STOPPING_STATUSES:
                fail(f"the gateway answered {exc}")  # no row can get through: not this row's fault
                return
            reject(rejects, row.row, row.key, exc.code or f"http_{exc.status_code}", exc.message, {})
            return
        except httpx.HTTPError as exc:
            fail(f"the gateway could not be reached: {exc}")
            return
        except OSError as exc:  # the local file went away or cannot be read
            reject(rejects, row.row, row.key, "unreadable_file", f"{row.location}: {exc}", {})
            return
        gate.note_submitted()
        state = "duplicate" if answer.get("duplicate") else "new"
        journal.record({"key": row.key, "row": row.row, "video_id": answer["video_id"], "state": state})
        count(state)

    interrupted = False
    with rejects_path.open("w", encoding="utf-8") as rejects, ThreadPoolExecutor(concurrency) as pool:
        in_flight: set[Future[None]] = set()
        try:
            for item in collection.rows:
                if stop.is_set():
                    break
                if isinstance(item, RowProblem):
                    reject(rejects, item.row, "", item.reason_code, item.message, {"raw": item.raw})
                    continue
                if item.key in journal.taken:
                    count("skipped")
                    continue
                while len(in_flight) >= concurrency:  # bounded: a 10M-row manifest is never queued whole
                    done, in_flight = wait(in_flight, return_when=FIRST_COMPLETED)
                    for future in done:
                        future.result()
                in_flight.add(pool.submit(take, rejects, item))
            for future in in_flight:
                future.result()
        except KeyboardInterrupt:
            stop.set()
            for future in in_flight:
                future.result()
        interrupted = stop.is_set()
    bar.close()
    journal.close()
    return IngestOutcome(
        batch, journal.path, rejects_path, counts, collection.ignored_columns, interrupted, gate.held_s, errors[:1]
    )


def outcome_json(outcome: IngestOutcome) -> dict[str, Any]:
    data = asdict(outcome)
    data["journal"], data["rejects"] = str(outcome.journal), str(outcome.rejects)
    data["counts"] = dict(outcome.counts)
    return data
