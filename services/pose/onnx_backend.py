"""In-process onnxruntime inference over a Triton model repository.

The baseline the serving benchmark compares Triton against, and the backend model checks use. The
embedded Triton server builds its sessions with the same `create_session`, so both sides run the
same graph with the same thread settings. Imports only numpy, onnxruntime and the repository
reader, so the Triton interpreter (.venv-triton, numpy<2) can load it too.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import onnxruntime as ort

from services.pose.contract import IMAGE, ModelSpec
from services.pose.repository import ModelRepositoryError, latest_version, read_config, spec_from_config


def create_session(model_file: Path, threads: int | None = None) -> ort.InferenceSession:
    """A CPU session; `threads` caps intra-op threads (None: onnxruntime's default, one per core)."""
    options = ort.SessionOptions()
    if threads:
        options.intra_op_num_threads = threads
    # One operator at a time: parallelism comes from intra-op threads and, on Triton, from batching.
    options.inter_op_num_threads = 1
    options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    # Idle pool threads sleep instead of spinning: the server runs several sessions and the pose
    # service beside them, and spinning threads would take CPU from whichever model is working.
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    # No CPU memory arena: with batches of varying size the arena keeps every peak it ever held, and the
    # Triton server grew from 232 to 1859 MiB over a 90-video batch (bench/throughput.py); without it five
    # models stay near 400 MiB at the same speed.
    options.enable_cpu_mem_arena = False
    return ort.InferenceSession(str(model_file), sess_options=options, providers=["CPUExecutionProvider"])


def check_session(session: ort.InferenceSession, spec: ModelSpec, model_file: Path) -> None:
    """The ONNX graph must carry the tensor names its config.pbtxt states."""
    graph_inputs = {i.name for i in session.get_inputs()}
    graph_outputs = {o.name for o in session.get_outputs()}
    missing = [t.name for t in spec.inputs if t.name not in graph_inputs]
    missing += [t.name for t in spec.outputs if t.name not in graph_outputs]
    if missing:
        raise ModelRepositoryError(
            f"{model_file}: tensors {missing} of config.pbtxt are not in the graph "
            f"(inputs {sorted(graph_inputs)}, outputs {sorted(graph_outputs)})"
        )


@dataclass
class _Loaded:
    spec: ModelSpec
    session: ort.InferenceSession
    max_batch_size: int


class OnnxRuntimeInference:
    """contract.InferenceBackend run in this process; sessions are opened on first use."""

    def __init__(self, repository_dir: Path, threads: int | None = None) -> None:
        self.repository_dir = Path(repository_dir)
        self.threads = threads
        self._models: dict[str, _Loaded] = {}
        self._lock = threading.Lock()

    def _model(self, name: str) -> _Loaded:
        with self._lock:
            loaded = self._models.get(name)
            if loaded is None:
                model_dir = self.repository_dir / name
                config = read_config(model_dir)
                spec = spec_from_config(config)
                model_file = latest_version(model_dir)
                session = create_session(model_file, self.threads)
                check_session(session, spec, model_file)
                loaded = self._models[name] = _Loaded(spec, session, config.max_batch_size)
            return loaded

    def input_size(self, model: str) -> tuple[int, int]:
        spec = self._model(model).spec
        image = next(t for t in spec.inputs if t.name == IMAGE)
        return image.dims[0], image.dims[1]

    def infer(self, model: str, images: np.ndarray) -> dict[str, np.ndarray]:
        loaded = self._model(model)
        images = np.ascontiguousarray(images, dtype=np.uint8)
        if images.ndim != 4:
            raise ValueError(f"{model}: expected images [N, H, W, 3], got shape {images.shape}")
        if len(images) == 0:
            return {t.name: np.zeros((0, *t.dims), t.numpy_dtype()) for t in loaded.spec.outputs}
        # The same request sizes Triton sees (max_batch_size per call), so both sides run equal batches.
        step = loaded.max_batch_size or 1
        names = [t.name for t in loaded.spec.outputs]
        parts: dict[str, list[np.ndarray]] = {name: [] for name in names}
        for start in range(0, len(images), step):
            outputs = loaded.session.run(names, {IMAGE: images[start : start + step]})
            for name, value in zip(names, outputs, strict=True):
                parts[name].append(value)
        return {name: np.concatenate(values) for name, values in parts.items()}

    def close(self) -> None:
        with self._lock:
            self._models.clear()
