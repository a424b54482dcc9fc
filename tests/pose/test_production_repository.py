"""The production model repository in docker/triton/models matches what the code renders and holds the
contract models on GPU instances."""

from __future__ import annotations

from haic_tools.models.production import PRODUCTION_REPOSITORY, render_production_configs
from services.pose.contract import FACE_ATTRIBUTES, FACE_DETECTOR, PERSON_DETECTOR, POSE_ESTIMATOR
from services.pose.repository import models, read_config, spec_from_config


def test_committed_configs_are_current() -> None:
    for relative, text in render_production_configs().items():
        path = PRODUCTION_REPOSITORY / relative
        assert path.is_file() and path.read_text() == text, (
            f"{path} is stale: run `python -m haic_tools.models.production`"
        )


def test_production_models_are_the_contract_models_on_gpu() -> None:
    configs = {p.name: read_config(p) for p in models(PRODUCTION_REPOSITORY)}
    assert set(configs) == {PERSON_DETECTOR, POSE_ESTIMATOR, FACE_DETECTOR, FACE_ATTRIBUTES}
    for config in configs.values():
        assert config.backend == "onnxruntime"
        assert config.dynamic_batching.preferred_batch_size
        assert [g.kind for g in config.instance_group] == [config.instance_group[0].KIND_GPU]
    detector = spec_from_config(configs[PERSON_DETECTOR])
    assert detector.inputs[0].dims == (640, 640, 3)
    assert spec_from_config(configs[POSE_ESTIMATOR]).outputs[0].dims == (17, 3)
    # the face models are the embedded build's: same tensors as haic_tools/models/build.py writes
    assert spec_from_config(configs[FACE_DETECTOR]).inputs[0].dims == (256, 256, 3)
    assert spec_from_config(configs[FACE_ATTRIBUTES]).inputs[0].dims == (224, 224, 3)
