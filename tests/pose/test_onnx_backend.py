"""The in-process onnxruntime sessions (the embedded Triton server's and the benchmarks'): how they are made."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper

from services.pose.onnx_backend import create_session


def _doubler(path: Path) -> Path:
    """A one-node graph y = x + x over a batch of any size."""
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", 4])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, ["batch", 4])
    graph = helper.make_graph([helper.make_node("Add", ["x", "x"], ["y"])], "doubler", [x], [y])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.save(model, path)
    return path


def test_sessions_run_without_a_memory_arena_that_keeps_every_peak(tmp_path: Path) -> None:
    session = create_session(_doubler(tmp_path / "doubler.onnx"), threads=1)
    options = session.get_session_options()
    assert options.enable_cpu_mem_arena is False  # the arena grew Triton from 232 to 1859 MiB over a batch
    assert options.intra_op_num_threads == 1 and options.inter_op_num_threads == 1
    for batch in (1, 7, 3):  # varying batch sizes, as Triton's dynamic batcher sends them
        (out,) = session.run(None, {"x": np.ones((batch, 4), np.float32)})
        assert out.shape == (batch, 4) and np.all(out == 2)
