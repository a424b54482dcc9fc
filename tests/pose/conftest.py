"""Pose fixtures shared by the test modules of this package."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from haic_tools.models.build import BuildReport, build_model_repository
from services.core.settings import LongScenePolicy, Settings

REPO_ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="session")
def models_settings() -> Settings:
    """Settings whose models_dir is the one `haic up` and `make models` use (.haic/models), unless
    HAIC_TEST_MODELS_DIR says otherwise.

    The build is keyed by its manifest, so a fresh clone builds once, in about a minute, and the
    end-to-end tests, the demo and later sessions reuse the repository.
    """
    models_dir = Path(os.environ.get("HAIC_TEST_MODELS_DIR") or REPO_ROOT / Settings().models_dir)
    return Settings(models_dir=models_dir, pose_model_family="movenet", triton_max_batch_size=8)


@pytest.fixture(scope="session")
def built_models(models_settings: Settings) -> BuildReport:
    """The embedded default's model repository (CenterNet, MoveNet thunder, MoveNet multipose), built once
    per session; `report.repository` is the Triton model repository."""
    return build_model_repository(models_settings)


@pytest.fixture(scope="module")
def shared_store_settings(
    models_settings: Settings, shared_videos: Path, tmp_path_factory: pytest.TempPathFactory
) -> Settings:
    """The models' settings with the shared videos as the store. The long pedestrian scene is cut into
    windows so that it reaches the pose stage (labels.json: its people are too small even then)."""
    return models_settings.model_copy(
        update={
            "data_dir": tmp_path_factory.mktemp("haic"),
            "storage_url": str(shared_videos),
            "long_scene_policy": LongScenePolicy.split,
        }
    )
