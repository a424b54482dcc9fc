"""The `haic` command line against a launched stack: up, submit --wait, status, tail, and a clean stop."""

from __future__ import annotations

import json
import os
import re
import select
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from clients.cli import main
from haic_tools.launcher import LocalStack, StackPorts
from services.core.settings import Settings
from services.pose.triton_process import is_running, process_tree
from tests.conftest import REPO_ROOT
from tests.kafka_helpers import wait_until

pytestmark = [pytest.mark.e2e, pytest.mark.kafka]


def test_submit_wait_status_and_tail(
    tmp_path: Path, shared_videos: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    settings = Settings(data_dir=tmp_path / "haic", api_keys=["cli-key"])
    with LocalStack(settings, StackPorts.free()) as stack:
        monkeypatch.setenv("HAIC_API_KEY", "cli-key")
        monkeypatch.setenv("HAIC_KAFKA_BOOTSTRAP_SERVERS", stack.bootstrap_servers)
        video = shared_videos / "slideshow_three_stills.mp4"
        gateway = ["--gateway", stack.gateway_url]
        assert main([*gateway, "submit", str(video), "--description", "People pose", "--wait"]) == 0
        out = capsys.readouterr().out
        # three frozen stills: each clip passes the filter and is rejected by the pose stage
        assert "submitted slideshow_three_stills.mp4" in out and ": rejected" in out
        assert out.count("rejected  pose.") == 3, out
        video_id = out.split("video ", 1)[1].split(",", 1)[0]

        assert main([*gateway, "status", video_id, "--json"]) == 0
        status = json.loads(capsys.readouterr().out)
        assert status["status"] == "rejected" and len(status["clips"]) == 3

        assert main(["tail", "haic.clips.candidate.v1", "--from-beginning", "--max", "3"]) == 0
        lines = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
        assert {line["key"] for line in lines} == {video_id}
        # JSON of proto3 omits zero values: clip 0 has no clip_index field.
        assert sorted(line["event"]["span"].get("clip_index", 0) for line in lines) == [0, 1, 2]

        juggle = shared_videos / "juggle_one_person.mp4"
        assert main([*gateway, "submit", str(juggle), "--description", "A man juggles", "--wait"]) == 0
        out = capsys.readouterr().out
        assert ": completed" in out and "caption of clip 0 (judge passed):" in out, out
        assert "    The main character is one person." in out

        assert main(["tail", "haic.captions.v1", "--from-beginning", "--max", "1"]) == 0
        [line] = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
        caption = line["event"]
        assert caption["judgement"]["passed"] is True
        assert caption["text"].startswith("The main character is one person."), caption

        # The README's consumer example, as written, against this stack's broker.
        printed = _run_readme_consumer(stack.bootstrap_servers)
        assert printed.startswith(caption["video_id"]) and "The main character is one person." in printed

        not_a_video = tmp_path / "notes.txt"
        not_a_video.write_text("not a video")
        assert main([*gateway, "submit", str(not_a_video)]) == 1
        assert "415 not_a_video" in capsys.readouterr().err


def _run_readme_consumer(bootstrap_servers: str, timeout_s: float = 60.0) -> str:
    """Runs the README's kafka-python example until it prints its first caption line; stops it by pid."""
    readme = (REPO_ROOT / "README.md").read_text()
    section = readme.split("### Consuming the captions", 1)[1]
    snippet = re.search(r"```python\n(.*?)```", section, re.S).group(1)  # type: ignore[union-attr]
    snippet = snippet.replace('"127.0.0.1:9092"', repr(bootstrap_servers))
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    process = subprocess.Popen([sys.executable, "-c", snippet], stdout=subprocess.PIPE, text=True, env=env)
    try:
        ready, _, _ = select.select([process.stdout], [], [], timeout_s)
        assert ready, "the README consumer printed nothing"
        return process.stdout.readline()  # type: ignore[union-attr]
    finally:
        process.kill()
        process.wait(10)


def _children(pid: int) -> set[int]:
    found: set[int] = set()
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == pid:
            found.add(int(stat.parent.name))
    return found


def test_up_stops_every_child_on_sigterm(tmp_path: Path) -> None:
    env = {
        **os.environ,
        "HAIC_DATA_DIR": str(tmp_path / "haic"),
        "HAIC_MODELS_DIR": str(REPO_ROOT / Settings().models_dir),  # the models built for the other tests
        "PYTHONPATH": str(REPO_ROOT),
    }
    launcher = subprocess.Popen(
        [sys.executable, "-m", "clients.cli", "up", "--free-ports"],
        cwd=tmp_path,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        assert launcher.stdout is not None
        for line in launcher.stdout:
            if "stack is up" in line:
                break
        children = _children(launcher.pid)
        assert len(children) == 8  # broker, Triton, gateway, filter, pose, captioner, qagen, scoring
        tree = [p for p in process_tree(launcher.pid) if p.pid != launcher.pid]
        assert "tritonserver" in {p.name for p in tree}
        launcher.send_signal(signal.SIGTERM)
        assert launcher.wait(60) == 0
        assert wait_until(lambda: not any(is_running(p) for p in tree), timeout_s=10)
    finally:
        launcher.kill()
