"""Settings come from HAIC_ variables; the paper's thresholds are the defaults."""

from __future__ import annotations

import pytest

from services.core.settings import (
    CONCERNS,
    CaptionerServiceSettings,
    FilterServiceSettings,
    LongScenePolicy,
    QAServiceSettings,
    Settings,
    load,
    settings_table,
)
from tests.conftest import REPO_ROOT


def test_paper_defaults() -> None:
    s = Settings()
    assert (s.min_clip_s, s.max_clip_s, s.long_scene_policy) == (5.0, 20.0, LongScenePolicy.drop)
    assert (s.existence_frames, s.min_people, s.max_people, s.min_person_area_ratio) == (16, 1, 5, 0.10)
    assert (s.action_fps, s.min_keypoint_l1, s.min_affine_residual) == (1.0, 0.085, 0.0016)


def test_environment_overrides(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HAIC_API_KEYS", "alpha, beta")
    monkeypatch.setenv("HAIC_LONG_SCENE_POLICY", "split")
    monkeypatch.setenv("HAIC_MIN_SHORT_SIDE_PX", "480")
    s = Settings()
    assert s.api_keys == ["alpha", "beta"]
    assert s.long_scene_policy is LongScenePolicy.split
    assert s.min_short_side_px == 480


def test_invalid_value_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HAIC_LONG_SCENE_POLICY", "shorten")
    with pytest.raises(ValueError, match="long_scene_policy"):
        Settings()


def test_readme_lists_every_setting() -> None:
    readme = (REPO_ROOT / "README.md").read_text()
    missing = [line.split("|")[1].strip() for line in settings_table().splitlines()[2:] if line not in readme]
    assert not missing, f"README's configuration table is out of date for {missing}; paste `haic config`"


def test_each_process_reads_only_its_concerns() -> None:
    filter_settings = FilterServiceSettings()
    assert (
        "min_clip_s" in FilterServiceSettings.model_fields
        and "kafka_bootstrap_servers" in type(filter_settings).model_fields
    )
    assert (
        "api_keys" not in FilterServiceSettings.model_fields and "mllm_model" not in FilterServiceSettings.model_fields
    )
    assert "min_keypoint_score" in CaptionerServiceSettings.model_fields  # the captioner reads the pose tracks' scores
    assert "triton_url" not in QAServiceSettings.model_fields
    # every setting belongs to exactly one concern, and Settings composes them all
    declared = [name for concern in CONCERNS for name in concern.model_fields if name in _own_fields(concern)]
    assert sorted(declared) == sorted(Settings.model_fields) and len(declared) == len(set(declared))
    assert isinstance(load(FilterServiceSettings), FilterServiceSettings)


def _own_fields(concern: type) -> set[str]:
    inherited = {n for base in concern.__mro__[1:] for n in getattr(base, "model_fields", {})}
    return set(concern.model_fields) - inherited


def test_a_narrow_composition_reads_the_same_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HAIC_MIN_CLIP_S", "6")
    monkeypatch.setenv("HAIC_QA_CATEGORIES", "count, attribute")
    assert FilterServiceSettings().min_clip_s == Settings().min_clip_s == 6.0
    assert QAServiceSettings().qa_categories == ["count", "attribute"]
