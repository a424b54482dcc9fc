"""Triton model repositories: ``<repo>/<model>/config.pbtxt`` and ``<repo>/<model>/<version>/model.onnx``.

One writer for both deployments. The embedded PyTriton server reads the same config.pbtxt files
(tensor names, shapes, batching) that NVIDIA Triton's onnxruntime backend reads in production; only the
instance group (CPU here, GPU there) and the batching knobs differ. Configs are Triton's own
``ModelConfig`` protobuf (shipped in tritonclient), written and read with protobuf's text format.
"""

from __future__ import annotations

import shutil
from dataclasses import dataclass
from pathlib import Path

from google.protobuf import text_format
from tritonclient.grpc import model_config_pb2 as mc

from services.pose.contract import ModelSpec, TensorSpec

CONFIG_FILE = "config.pbtxt"
MODEL_FILE = "model.onnx"

_DTYPES = {"UINT8": mc.TYPE_UINT8, "FP32": mc.TYPE_FP32, "INT32": mc.TYPE_INT32}
_DTYPE_NAMES = {v: k for k, v in _DTYPES.items()}


class ModelRepositoryError(RuntimeError):
    """A model directory is missing, or its config or weights are unusable."""


@dataclass(frozen=True)
class Batching:
    """Triton scheduling for one model. Defaults suit the embedded CPU server."""

    max_batch_size: int = 8
    preferred_batch_sizes: tuple[int, ...] = (4, 8)
    max_queue_delay_us: int = 2000
    instance_kind: str = "KIND_CPU"  # KIND_GPU for production
    instance_count: int = 1


def model_config(spec: ModelSpec, batching: Batching) -> mc.ModelConfig:
    config = mc.ModelConfig(
        name=spec.name,
        backend="onnxruntime",
        max_batch_size=batching.max_batch_size,
        input=[_tensor(t, mc.ModelInput) for t in spec.inputs],
        output=[_tensor(t, mc.ModelOutput) for t in spec.outputs],
        instance_group=[
            mc.ModelInstanceGroup(
                kind=mc.ModelInstanceGroup.Kind.Value(batching.instance_kind), count=batching.instance_count
            )
        ],
        dynamic_batching=mc.ModelDynamicBatching(
            preferred_batch_size=list(batching.preferred_batch_sizes),
            max_queue_delay_microseconds=batching.max_queue_delay_us,
        ),
    )
    return config


def render_config(spec: ModelSpec, batching: Batching) -> str:
    return text_format.MessageToString(model_config(spec, batching))


def write_model(
    repository: Path, spec: ModelSpec, onnx_file: Path, batching: Batching = Batching(), version: int = 1
) -> Path:
    """Copies the ONNX file in as ``<spec.name>/<version>/model.onnx`` and writes its config. Returns the model dir."""
    model_dir = repository / spec.name
    (model_dir / str(version)).mkdir(parents=True, exist_ok=True)
    target = model_dir / str(version) / MODEL_FILE
    tmp = target.with_suffix(".tmp")
    shutil.copyfile(onnx_file, tmp)
    tmp.replace(target)
    (model_dir / CONFIG_FILE).write_text(render_config(spec, batching))
    return model_dir


def read_config(model_dir: Path) -> mc.ModelConfig:
    path = model_dir / CONFIG_FILE
    if not path.is_file():
        raise ModelRepositoryError(f"{path} is missing")
    try:
        return text_format.Parse(path.read_text(), mc.ModelConfig())
    except text_format.ParseError as exc:
        raise ModelRepositoryError(f"{path}: {exc}") from exc


def spec_from_config(config: mc.ModelConfig) -> ModelSpec:
    return ModelSpec(
        config.name,
        inputs=tuple(TensorSpec(t.name, _DTYPE_NAMES[t.data_type], tuple(t.dims)) for t in config.input),
        outputs=tuple(TensorSpec(t.name, _DTYPE_NAMES[t.data_type], tuple(t.dims)) for t in config.output),
    )


def latest_version(model_dir: Path) -> Path:
    """The highest numbered version's model file (Triton's default version policy)."""
    versions = sorted((int(p.name), p) for p in model_dir.iterdir() if p.is_dir() and p.name.isdigit())
    if not versions or not (versions[-1][1] / MODEL_FILE).is_file():
        raise ModelRepositoryError(f"{model_dir} has no <version>/{MODEL_FILE}")
    return versions[-1][1] / MODEL_FILE


def models(repository: Path) -> list[Path]:
    """Model directories in a repository (those with a config.pbtxt)."""
    if not repository.is_dir():
        raise ModelRepositoryError(f"model repository {repository} does not exist; run `haic models build`")
    return sorted(p for p in repository.iterdir() if (p / CONFIG_FILE).is_file())


def _tensor(spec: TensorSpec, cls: type) -> object:
    return cls(name=spec.name, data_type=_DTYPES[spec.dtype], dims=list(spec.dims))
