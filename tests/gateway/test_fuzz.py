"""Schemathesis against a running gateway (uvicorn on a real port, Kafka behind it), from its own OpenAPI.

Every operation in the document gets bounded, derandomized examples, valid and invalid (huge integers,
odd strings, missing fields), and every check: no 5xx, only documented statuses and content types,
bodies that match the documented schemas. The event stream is described as `text/event-stream`, so it
is checked like the rest. A seeded, settled video gives the id-taking operations a 200 to check too.

One allowance (schemathesis.toml): POST /v1/videos may refuse a schema-valid body, since random bytes in
the `file` part are not a video (415/422, as documented). The stateful phase is off: no generated upload
is a video, so there is nothing to follow, and following an unsettled video's event stream never ends.
"""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from xml.etree import ElementTree

import pytest
import requests

from services.core.bus import EventProducer
from services.core.settings import Settings
from services.gateway.app import MAX_OFFSET, MAX_PAGE_SIZE
from tests.kafka_helpers import wait_until

from .conftest import AUTH, GatewayServer, candidate, span, upload_over_http
from .review_data import publish, reviewable_clip

pytestmark = pytest.mark.kafka

MAX_EXAMPLES = 30


@pytest.fixture
def gateway_server(gateway_settings: Settings, tmp_path: Path) -> Iterator[GatewayServer]:
    # References only into an empty folder: fuzzed URLs must not make the gateway wait on the network.
    (tmp_path / "references").mkdir()
    settings = gateway_settings.model_copy(update={"reference_roots": [str(tmp_path / "references")]})
    with GatewayServer(settings) as server:
        yield server


@pytest.fixture
def seeded_video(gateway_server: GatewayServer, gateway_settings: Settings, shared_videos: Path) -> tuple[str, str]:
    """A video settled as completed with one candidate clip (the test's final stage is the filter), and a captioned
    clip with QA (the review desk's operations read it); the latter's id is the seeded clip id."""
    video_id = upload_over_http(gateway_server.url, shared_videos / "juggle_one_person.mp4")["video_id"]
    clip = span(video_id, 0, 1, 0.0, 6.0)
    reviewable = reviewable_clip(gateway_settings)
    producer = EventProducer(gateway_settings, "test")
    try:
        producer.deliver([candidate(video_id, clip)])
        publish(producer, reviewable)
    finally:
        producer.close()

    def settled() -> bool:
        body = requests.get(f"{gateway_server.url}/v1/videos/{video_id}", headers=AUTH, timeout=10).json()
        return body.get("settled") is True

    def reviewable_in_catalog() -> bool:
        url = f"{gateway_server.url}/v1/review/clips/{reviewable.clip_id}"
        return requests.get(url, headers=AUTH, timeout=10).status_code == 200

    wait_until(settled, 30, f"{video_id} to settle")
    wait_until(reviewable_in_catalog, 30, "the captioned clip in the catalog")
    # The clip's first video request cuts it (seconds of CPU), later ones serve the cut: cut it before the fuzzer
    # times its responses.
    cut = requests.get(f"{gateway_server.url}/v1/review/clips/{reviewable.clip_id}/video", headers=AUTH, timeout=300)
    assert cut.status_code == 200, cut.text[:500]
    return video_id, reviewable.clip_id


def _document_with_seeded_examples(url: str, video_id: str, clip_id: str) -> dict:
    """The gateway's own document, with the seeded ids as path parameter examples (so a 200 is checked too)."""
    document = requests.get(f"{url}/openapi.json", timeout=10).json()
    for operations in document["paths"].values():
        for operation in operations.values():
            for parameter in operation.get("parameters", []):
                seeded = {"video_id": video_id, "clip_id": clip_id}.get(parameter["name"])
                if parameter["in"] == "path" and seeded is not None:
                    parameter["example"] = seeded
    return document


def _warned(output: str, warning: str) -> set[str]:
    """The operations listed under one of the CLI's warnings (`  - METHOD /path` lines after its title)."""
    if warning not in output:
        return set()
    block = output[output.index(warning) :].split("\n\n", 2)[1]
    return {line.strip()[2:] for line in block.splitlines() if line.strip().startswith("- ")}


def test_every_operation_holds_under_the_fuzzer(
    gateway_server: GatewayServer, seeded_video: tuple[str, str], tmp_path: Path
) -> None:
    # The CLI rather than schemathesis' pytest plugin: the plugin's lazy loader reads a pytest-internal
    # attribute (Function._nodeid) that pytest 9 no longer has.
    document = tmp_path / "openapi.json"
    document.write_text(json.dumps(_document_with_seeded_examples(gateway_server.url, *seeded_video)))
    command = [
        str(Path(sys.executable).parent / "schemathesis"),
        "--config-file",
        str(Path(__file__).with_name("schemathesis.toml")),
        "run",
        str(document),
        "--url",
        gateway_server.url,
        "--checks",
        "all",
        "--mode",
        "all",
        "--phases",
        "examples,coverage,fuzzing",
        "--max-examples",
        str(MAX_EXAMPLES),
        "--generation-deterministic",
        "--workers",
        "1",
        "--header",
        f"Authorization: {AUTH['Authorization']}",
        # a stream that did not end fails its call instead of hanging the test
        "--request-timeout",
        "30",
        "--report",
        "junit",
        "--report-junit-path",
        str(tmp_path / "junit.xml"),
        "--no-color",
    ]
    # in tmp_path: the CLI keeps replay files in ./.schemathesis
    run = subprocess.run(command, capture_output=True, text=True, timeout=600, check=False, cwd=tmp_path)
    assert run.returncode == 0, run.stdout[-20000:] + run.stderr[-5000:]
    print(run.stdout[run.stdout.find("WARNINGS") :])  # the figures (cases generated, phases) with -s / -rA
    # An operation that mostly refused schema-valid data means the document is looser than the API. Only the
    # upload and the registration may: the document cannot say that the `file` part must be a video, or that
    # a reference must lie inside the allowed roots (schemathesis.toml).
    mismatched = _warned(run.stdout, "Schema validation mismatch")
    assert mismatched <= {"POST /v1/videos", "POST /v1/videos/by-reference"}, run.stdout[-5000:]
    tested = ElementTree.parse(tmp_path / "junit.xml").getroot().iter("testcase")
    tested_names = {case.get("name") for case in tested}
    # every operation of the document was exercised (the report names each one)
    expected = {
        f"{method.upper()} {path}" for path, ops in json.loads(document.read_text())["paths"].items() for method in ops
    }
    assert expected <= tested_names, (expected - tested_names, run.stdout[-5000:])


def test_the_issue_inputs_are_refused_with_documented_statuses(
    gateway_server: GatewayServer, seeded_video: tuple[str, str]
) -> None:
    """The inputs Schemathesis found answering 500 or breaking the stream, now 422 before the database."""
    url, (video_id, clip_id) = gateway_server.url, seeded_video
    huge = requests.get(
        f"{url}/v1/videos", params={"offset": 1493430652983513448448, "limit": 10033660}, headers=AUTH, timeout=10
    )
    assert huge.status_code == 422, huge.text
    page = requests.get(f"{url}/v1/videos", params={"offset": MAX_OFFSET, "limit": 10033660}, headers=AUTH, timeout=10)
    assert page.status_code == 200 and page.json()["limit"] == MAX_PAGE_SIZE and page.json()["items"] == []

    events = f"{url}/v1/videos/{video_id}/events"
    assert requests.get(events, params={"after": 106591726113986379776}, headers=AUTH, timeout=10).status_code == 422
    # A Last-Event-ID the gateway never sent (too large, or not ASCII digits) is ignored: the whole log replays.
    for last_event_id in ("106591726113986379776", "²", "-1"):
        stream = requests.get(events, headers={**AUTH, "Last-Event-ID": last_event_id}, timeout=10)
        assert stream.status_code == 200 and stream.headers["content-type"].startswith("text/event-stream")
        assert "event: haic.videos.v1" in stream.text and "event: settled" in stream.text

    assert requests.get(f"{url}/v1/videos/vid_%00x", headers=AUTH, timeout=10).status_code == 422
    assert requests.get(f"{url}/v1/clips/{'c' * 129}", headers=AUTH, timeout=10).status_code == 422
    assert requests.get(f"{url}/v1/clips/{clip_id}", headers=AUTH, timeout=10).status_code == 200
