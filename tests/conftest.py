"""Shared fixtures: a real tansu broker on a free port, settings pointing at it, the shared videos."""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from services.captioner.local_llm import LocalLlmServer
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


@pytest.fixture
def broker(tmp_path: Path) -> Iterator[EmbeddedBroker]:
    """A fresh tansu broker per test (it starts in milliseconds), so tests never see each other's events."""
    with EmbeddedBroker(free_port(), log_path=tmp_path / "tansu.log") as running:
        yield running


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
