"""`haic report` against a gateway under uvicorn: the printed funnel, the JSON, and a self-contained HTML page."""

from __future__ import annotations

import json
from collections.abc import Iterator
from html.parser import HTMLParser
from pathlib import Path

import pytest

from clients.cli import main
from clients.report_html import format_table, render_html
from services.core.bus import EventProducer
from services.core.settings import Settings
from tests.gateway.conftest import (
    API_KEY,
    GatewayServer,
    accepted,
    candidate,
    rejected,
    span,
    upload_over_http,
)
from tests.kafka_helpers import wait_until

HOSTILE = "<script>alert(1)</script>"


class _Page(HTMLParser):
    """Tags, external references and text of a page."""

    def __init__(self) -> None:
        super().__init__()
        self.tags: list[str] = []
        self.external: list[str] = []
        self.text: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append(tag)
        for name, value in attrs:
            if name in ("src", "href") and value and not value.startswith("#"):
                self.external.append(f"{tag} {name}={value}")

    def handle_data(self, data: str) -> None:
        self.text.append(data)


def _parse(html: str) -> _Page:
    page = _Page()
    page.feed(html)
    page.close()
    return page


def _report(distribution_count: int) -> dict:
    values = [0.05, 0.2, 0.4][:distribution_count]
    return {
        "generated_at": "2026-12-04T21:00:00Z",
        "since": None,
        "until": None,
        "video_ids": None,
        "videos_in": 2,
        "yield_percent": 50.0,
        "funnel": [
            {"step": "videos_in", "description": "videos uploaded", "videos": 2, "percent": 100.0, "clips": None},
            {"step": "caption_passed", "description": "judge passed", "videos": 1, "percent": 50.0, "clips": 1},
        ],
        "rejections": [
            {"level": "clip", "stage": "pose.x", "reason_code": HOSTILE, "videos": 1, "percent": 50.0, "clips": 2}
        ],
        "distributions": [
            {
                "key": "keypoint_l1_max",
                "label": "keypoint L1",
                "count": len(values),
                "threshold": 0.1,
                "min": min(values, default=None),
                "p10": None,
                "p50": None,
                "p90": None,
                "max": max(values, default=None),
                "bin_edges": [0.0, 0.25, 0.5] if values else [],
                "bin_counts": [2, 1] if values else [],
            }
        ],
        "stage_times": [{"stage": "pose", "videos": 1, "p50_s": 1.5, "p90_s": 2.0}],
    }


def test_html_is_self_contained_with_inline_plots_and_escaped_text() -> None:
    html = render_html(_report(3))
    page = _parse(html)
    assert "svg" in page.tags and "table" in page.tags
    assert page.external == []  # no script, stylesheet or image from elsewhere
    assert "script" not in page.tags and HOSTILE not in html
    assert HOSTILE in "".join(page.text)  # shown as text
    empty = _parse(render_html(_report(0)))
    assert "svg" not in empty.tags and "No clip has pose measurements yet." in "".join(empty.text)
    table = format_table(_report(3))
    assert "50.00%" in table and "keypoint_l1_max" in table


@pytest.fixture
def server(gateway_settings: Settings) -> Iterator[GatewayServer]:
    with GatewayServer(gateway_settings) as running:
        yield running


@pytest.mark.kafka
def test_haic_report_prints_writes_json_and_html(
    server: GatewayServer,
    gateway_settings: Settings,
    shared_videos: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    video_id = upload_over_http(server.url, shared_videos / "juggle_one_person.mp4")["video_id"]
    kept, dropped = span(video_id, 0, 2, 0.0, 5.0), span(video_id, 1, 2, 5.0, 10.0)
    producer = EventProducer(gateway_settings, "test")
    try:
        accept = accepted(video_id, kept)
        accept.message.values.update({"keypoint_l1_max": 0.3, "people_max": 1.0, "min_keypoint_l1": 0.1})
        no_action = rejected(video_id, dropped, "pose.human_action", HOSTILE, {"keypoint_l1_max": 0.02})
        producer.deliver([candidate(video_id, kept), candidate(video_id, dropped), accept, no_action])
    finally:
        producer.close()
    monkeypatch.setenv("HAIC_API_KEY", API_KEY)
    out_json, out_html = tmp_path / "report.json", tmp_path / "report.html"

    def settled() -> bool:
        assert main(["--gateway", server.url, "report", "--json", str(out_json), "--html", str(out_html)]) == 0
        return json.loads(out_json.read_text())["funnel"][2]["videos"] == 1 and bool(
            json.loads(out_json.read_text())["rejections"]
        )

    wait_until(settled, 30, "the report to count the pose outcomes")
    printed = capsys.readouterr().out
    report = json.loads(out_json.read_text())
    assert report["videos_in"] == 1
    assert {d["key"]: d["count"] for d in report["distributions"]}["keypoint_l1_max"] == 2
    assert "videos with a clip accepted by the pose stage" in printed and "100.00%" in printed
    html = out_html.read_text(encoding="utf-8")
    page = _parse(html)
    assert "svg" in page.tags and page.external == [] and HOSTILE not in html
    assert HOSTILE in "".join(page.text)

    assert main(["--gateway", server.url, "report", "--since", "not a time"]) == 1
    assert "422" in capsys.readouterr().err
