"""The embedded Triton against a real tritonserver (PyTriton under .venv-triton).

Tiny contract-conforming ONNX models (built here with onnx.helper) stand in for the real ones, so
these tests check serving, not vision: outputs through Triton equal onnxruntime in-process, batches
are split and kept in order, the dynamic batcher merges concurrent requests, and no process of the
server's tree outlives a stop, a killed parent or a killed server.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper
from prometheus_client import REGISTRY

from haic_tools.models.build import BuildReport
from services.core.broker import free_port
from services.pose.contract import (
    BOXES,
    IMAGE,
    KEYPOINTS,
    NUM_KEYPOINTS,
    PERSON_DETECTOR,
    POSE_ESTIMATOR,
    SCORES,
    detector_spec,
    pose_spec,
)
from services.pose.onnx_backend import OnnxRuntimeInference
from services.pose.repository import Batching, models, write_model
from services.pose.triton_client import TritonInference, TritonInferenceError, TritonUnavailableError
from services.pose.triton_process import (
    REPO_ROOT,
    EmbeddedTriton,
    TritonEnvironmentError,
    TritonPorts,
    TritonRepositoryError,
    TritonStartError,
    find_python,
    is_running,
    remove_orphaned_shared_memory,
)

pytestmark = pytest.mark.triton

DETECTOR_SIZE = 64
MAX_DETECTIONS = 10
POSE_HEIGHT, POSE_WIDTH = 48, 32
MAX_BATCH = 8
# A long queue delay makes the batcher's merging of concurrent requests certain, not a matter of timing.
BATCHING = Batching(max_batch_size=MAX_BATCH, preferred_batch_sizes=(4, 8), max_queue_delay_us=50_000)
TRITON_PYTHON = Path(".venv-triton/bin/python")


def _save(graph: onnx.GraphProto, path: Path) -> Path:
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    onnx.save(model, path)
    return path


def _pixel_stats(names: list[str]) -> list[onnx.NodeProto]:
    """image uint8 [N, H, W, 3] -> `stats` [N, 6]: per-channel mean and max, scaled to [0, 1]."""
    return [
        helper.make_node("Cast", [IMAGE], ["pixels"], to=TensorProto.FLOAT),
        helper.make_node("Div", ["pixels", "c255"], ["scaled"]),
        helper.make_node("ReduceMean", ["scaled"], ["mean"], axes=[1, 2], keepdims=0),
        helper.make_node("ReduceMax", ["scaled"], ["max"], axes=[1, 2], keepdims=0),
        helper.make_node("Concat", ["mean", "max"], names, axis=1),
    ]


def tiny_detector(path: Path) -> Path:
    """boxes and scores as fixed projections of the image's mean and max pixel values."""
    rng = np.random.default_rng(1)
    nodes = [
        *_pixel_stats(["stats"]),
        helper.make_node("MatMul", ["stats", "w_scores"], ["logits"]),
        helper.make_node("Sigmoid", ["logits"], [SCORES]),
        helper.make_node("MatMul", ["stats", "w_boxes"], ["box_logits"]),
        helper.make_node("Sigmoid", ["box_logits"], ["flat_boxes"]),
        helper.make_node("Reshape", ["flat_boxes", "boxes_shape"], [BOXES]),
    ]
    graph = helper.make_graph(
        nodes,
        "tiny_detector",
        [helper.make_tensor_value_info(IMAGE, TensorProto.UINT8, ["N", DETECTOR_SIZE, DETECTOR_SIZE, 3])],
        [
            helper.make_tensor_value_info(BOXES, TensorProto.FLOAT, ["N", MAX_DETECTIONS, 4]),
            helper.make_tensor_value_info(SCORES, TensorProto.FLOAT, ["N", MAX_DETECTIONS]),
        ],
        [
            numpy_helper.from_array(np.array(255, np.float32), "c255"),
            numpy_helper.from_array(rng.normal(size=(6, MAX_DETECTIONS)).astype(np.float32), "w_scores"),
            numpy_helper.from_array(rng.normal(size=(6, MAX_DETECTIONS * 4)).astype(np.float32), "w_boxes"),
            numpy_helper.from_array(np.array([-1, MAX_DETECTIONS, 4], np.int64), "boxes_shape"),
        ],
    )
    return _save(graph, path)


def tiny_pose(path: Path) -> Path:
    """17 keypoints (x, y, confidence) as fixed projections of the crop's pixel statistics."""
    rng = np.random.default_rng(2)
    nodes = [
        *_pixel_stats(["stats"]),
        helper.make_node("MatMul", ["stats", "w_keypoints"], ["logits"]),
        helper.make_node("Sigmoid", ["logits"], ["flat"]),
        helper.make_node("Reshape", ["flat", "keypoints_shape"], [KEYPOINTS]),
    ]
    graph = helper.make_graph(
        nodes,
        "tiny_pose",
        [helper.make_tensor_value_info(IMAGE, TensorProto.UINT8, ["N", POSE_HEIGHT, POSE_WIDTH, 3])],
        [helper.make_tensor_value_info(KEYPOINTS, TensorProto.FLOAT, ["N", NUM_KEYPOINTS, 3])],
        [
            numpy_helper.from_array(np.array(255, np.float32), "c255"),
            numpy_helper.from_array(rng.normal(size=(6, NUM_KEYPOINTS * 3)).astype(np.float32), "w_keypoints"),
            numpy_helper.from_array(np.array([-1, NUM_KEYPOINTS, 3], np.int64), "keypoints_shape"),
        ],
    )
    return _save(graph, path)


def build_tiny_repository(root: Path) -> Path:
    repository = root / "repository"
    write_model(repository, detector_spec(DETECTOR_SIZE, MAX_DETECTIONS), tiny_detector(root / "det.onnx"), BATCHING)
    write_model(repository, pose_spec(POSE_HEIGHT, POSE_WIDTH), tiny_pose(root / "pose.onnx"), BATCHING)
    return repository


def images(n: int, height: int, width: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (n, height, width, 3), dtype=np.uint8)


def metric(name: str, **labels: str) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


def triton_metric(server: EmbeddedTriton, name: str, model: str) -> float:
    """A counter from tritonserver's own Prometheus endpoint."""
    import httpx

    text = httpx.get(f"http://{server.address}:{server.ports.metrics}/metrics", timeout=5).text
    for line in text.splitlines():
        if line.startswith(name + "{") and f'model="{model}"' in line:
            return float(line.rsplit(" ", 1)[1])
    raise AssertionError(f"{name} for {model} not in Triton's metrics")


def _gone(pids: list[tuple[int, int]], timeout_s: float) -> list[int]:
    """Waits until none of the (pid, start time) processes runs; returns those still running."""
    from services.pose.triton_process import ProcessId

    processes = [ProcessId(pid, start, "") for pid, start in pids]
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        left = [p.pid for p in processes if is_running(p)]
        if not left:
            return []
        time.sleep(0.2)
    return [p.pid for p in processes if is_running(p)]


@pytest.fixture(scope="module")
def triton_python() -> Path:
    try:
        return find_python(TRITON_PYTHON)
    except TritonEnvironmentError as exc:
        pytest.skip(str(exc))


@pytest.fixture(scope="module")
def tiny_repository(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_tiny_repository(tmp_path_factory.mktemp("tiny-models"))


@pytest.fixture(scope="module")
def triton_server(triton_python: Path, tiny_repository: Path) -> Iterator[EmbeddedTriton]:
    """One embedded Triton for the module, serving the tiny models with one intra-op thread."""
    with EmbeddedTriton(tiny_repository, triton_python, TritonPorts.free(), threads=1) as server:
        yield server


@pytest.fixture
def client(triton_server: EmbeddedTriton) -> Iterator[TritonInference]:
    with TritonInference(triton_server.url, timeout_s=10, retries=3, max_batch_size=MAX_BATCH) as c:
        yield c


def test_server_runs_the_tree_we_expect(triton_server: EmbeddedTriton) -> None:
    names = [p.name for p in triton_server.tree]
    assert "tritonserver" in names, names
    assert any(n.startswith("triton_python") for n in names), names  # one backend stub per model instance
    assert triton_server.ready_s < 60


def test_input_size_comes_from_model_metadata(client: TritonInference, tiny_repository: Path) -> None:
    assert client.input_size(PERSON_DETECTOR) == (DETECTOR_SIZE, DETECTOR_SIZE)
    assert client.input_size(POSE_ESTIMATOR) == (POSE_HEIGHT, POSE_WIDTH)
    assert OnnxRuntimeInference(tiny_repository).input_size(POSE_ESTIMATOR) == (POSE_HEIGHT, POSE_WIDTH)


def test_outputs_through_triton_equal_onnxruntime_in_process(client: TritonInference, tiny_repository: Path) -> None:
    local = OnnxRuntimeInference(tiny_repository, threads=1)
    frames = images(5, DETECTOR_SIZE, DETECTOR_SIZE)
    crops = images(3, POSE_HEIGHT, POSE_WIDTH, seed=1)
    served, expected = client.infer(PERSON_DETECTOR, frames), local.infer(PERSON_DETECTOR, frames)
    assert set(served) == {BOXES, SCORES}
    assert served[BOXES].shape == (5, MAX_DETECTIONS, 4) and served[SCORES].shape == (5, MAX_DETECTIONS)
    for name in (BOXES, SCORES):
        assert served[name].dtype == np.float32
        np.testing.assert_allclose(served[name], expected[name], rtol=1e-6, atol=1e-7)
    served_pose = client.infer(POSE_ESTIMATOR, crops)[KEYPOINTS]
    assert served_pose.shape == (3, NUM_KEYPOINTS, 3)
    np.testing.assert_allclose(served_pose, local.infer(POSE_ESTIMATOR, crops)[KEYPOINTS], rtol=1e-6, atol=1e-7)


def test_a_batch_of_20_goes_in_requests_of_at_most_max_batch_and_comes_back_in_order(
    client: TritonInference, triton_server: EmbeddedTriton, tiny_repository: Path
) -> None:
    frames = images(20, DETECTOR_SIZE, DETECTOR_SIZE, seed=7)
    requests_before = metric("haic_triton_batch_size_count", model=PERSON_DETECTOR)
    images_before = metric("haic_triton_batch_size_sum", model=PERSON_DETECTOR)
    at_most_8_before = metric("haic_triton_batch_size_bucket", model=PERSON_DETECTOR, le="8.0")
    served_before = triton_metric(triton_server, "nv_inference_count", PERSON_DETECTOR)

    served = client.infer(PERSON_DETECTOR, frames)

    assert metric("haic_triton_batch_size_count", model=PERSON_DETECTOR) - requests_before == 3  # 8 + 8 + 4
    assert metric("haic_triton_batch_size_sum", model=PERSON_DETECTOR) - images_before == 20
    assert metric("haic_triton_batch_size_bucket", model=PERSON_DETECTOR, le="8.0") - at_most_8_before == 3
    assert triton_metric(triton_server, "nv_inference_count", PERSON_DETECTOR) - served_before == 20
    # In order: each image's result equals that image run alone in-process.
    local = OnnxRuntimeInference(tiny_repository, threads=1)
    one_by_one = [local.infer(PERSON_DETECTOR, frames[i : i + 1])[SCORES][0] for i in range(20)]
    # (batched and single matrix products round differently in the last bits)
    np.testing.assert_allclose(served[SCORES], np.stack(one_by_one), rtol=1e-5, atol=1e-6)


def test_the_dynamic_batcher_merges_concurrent_requests(triton_server: EmbeddedTriton) -> None:
    # max_batch_size=1 on the client: eight single-image requests in flight at once.
    with TritonInference(triton_server.url, timeout_s=10, retries=3, max_batch_size=1) as single:
        executions_before = triton_metric(triton_server, "nv_inference_exec_count", POSE_ESTIMATOR)
        count_before = triton_metric(triton_server, "nv_inference_count", POSE_ESTIMATOR)
        single.infer(POSE_ESTIMATOR, images(8, POSE_HEIGHT, POSE_WIDTH))
    assert triton_metric(triton_server, "nv_inference_count", POSE_ESTIMATOR) - count_before == 8
    assert triton_metric(triton_server, "nv_inference_exec_count", POSE_ESTIMATOR) - executions_before < 8


def test_empty_batch_and_bad_input(client: TritonInference) -> None:
    empty = client.infer(POSE_ESTIMATOR, np.zeros((0, POSE_HEIGHT, POSE_WIDTH, 3), np.uint8))
    assert empty[KEYPOINTS].shape == (0, NUM_KEYPOINTS, 3)
    with pytest.raises(ValueError, match="expected images"):
        client.infer(POSE_ESTIMATOR, np.zeros((1, 10, 10, 3), np.uint8))
    with pytest.raises(TritonInferenceError) as error:
        client.infer("no_such_model", np.zeros((1, 8, 8, 3), np.uint8))
    assert error.value.model == "no_such_model"


def test_stop_leaves_no_process_and_then_requests_fail_as_unavailable(
    triton_python: Path, tiny_repository: Path
) -> None:
    server = EmbeddedTriton(tiny_repository, triton_python, TritonPorts.free(), threads=1).start()
    tree = list(server.tree)
    client = TritonInference(server.url, timeout_s=5, retries=3, max_batch_size=MAX_BATCH, backoff_s=0.05)
    client.input_size(PERSON_DETECTOR)  # metadata cached: the request below goes to infer
    server.stop()
    assert [p for p in tree if is_running(p)] == []
    errors_before = sum(
        metric("haic_triton_errors_total", model=PERSON_DETECTOR, code=code)
        for code in ("UNAVAILABLE", "DEADLINE_EXCEEDED")
    )
    started = time.monotonic()
    with pytest.raises(TritonUnavailableError) as error:
        client.infer(PERSON_DETECTOR, images(1, DETECTOR_SIZE, DETECTOR_SIZE))
    assert error.value.model == PERSON_DETECTOR
    errors = sum(
        metric("haic_triton_errors_total", model=PERSON_DETECTOR, code=code)
        for code in ("UNAVAILABLE", "DEADLINE_EXCEEDED")
    )
    assert errors - errors_before == 3  # every attempt failed, then the typed error
    assert time.monotonic() - started >= 0.05 + 0.1  # the backoff ran between attempts
    client.close()


_HOLDER = """
import json, sys, time
from pathlib import Path
from services.pose.triton_process import EmbeddedTriton, TritonPorts
server = EmbeddedTriton(
    Path(sys.argv[1]), Path(sys.argv[2]), TritonPorts.free(), workspace=Path(sys.argv[3]), threads=1
).start()
print(json.dumps({"child": server.process.pid, "tree": [[p.pid, p.start, p.name] for p in server.tree]}), flush=True)
time.sleep(600)
"""


def _start_holder(repository: Path, python: Path, workspace: Path) -> tuple[subprocess.Popen[str], dict]:
    holder = subprocess.Popen(
        [sys.executable, "-c", _HOLDER, str(repository), str(python), str(workspace)],
        stdout=subprocess.PIPE,
        text=True,
        cwd=REPO_ROOT,
    )
    assert holder.stdout is not None
    line = holder.stdout.readline()
    assert line, f"holder exited with {holder.wait()}"
    return holder, json.loads(line)


def test_a_killed_parent_leaves_no_tritonserver(triton_python: Path, tiny_repository: Path, tmp_path: Path) -> None:
    """SIGKILL the process that holds EmbeddedTriton: PDEATHSIG stops the child, which stops tritonserver."""
    holder, info = _start_holder(tiny_repository, triton_python, tmp_path / "workspace")
    tree = [(pid, start) for pid, start, _ in info["tree"]]
    assert "tritonserver" in [name for _, _, name in info["tree"]]
    os.kill(holder.pid, signal.SIGKILL)
    holder.wait()
    assert _gone(tree, timeout_s=30) == []
    # It was the orderly stop (PDEATHSIG's SIGTERM handled by the child), not a kill.
    log = (tmp_path / "workspace" / "triton.log").read_text()
    assert "SIGTERM received; stopping tritonserver" in log and "haic.triton_server: stopped" in log


def test_a_killed_server_process_leaves_no_tritonserver(triton_python: Path, tiny_repository: Path) -> None:
    """SIGKILL the PyTriton process itself: tritonserver (the grandchild) goes too, and stop() confirms it."""
    server = EmbeddedTriton(tiny_repository, triton_python, TritonPorts.free(), threads=1).start()
    tree = [(p.pid, p.start) for p in server.tree]
    assert server.process is not None and server.alive
    os.kill(server.process.pid, signal.SIGKILL)
    server.process.wait()
    assert not server.alive  # what `haic up` watches
    server.stop()
    assert _gone(tree, timeout_s=1) == []


def test_a_port_in_use_fails_fast(triton_python: Path, tiny_repository: Path, tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        # EmbeddedTriton names the port before starting anything.
        with pytest.raises(TritonStartError, match=f"gRPC port 127.0.0.1:{port} is not free"):
            EmbeddedTriton(tiny_repository, triton_python, TritonPorts(port, free_port(), free_port())).start()
        # The server itself, should the port be taken between that check and tritonserver's bind, exits at
        # once (PyTriton alone would wait 120 s for a server that is gone).
        started = time.monotonic()
        server = subprocess.run(
            [str(triton_python), "-m", "services.pose.triton_server", "--repository", str(tiny_repository),
             "--grpc-port", str(port), "--http-port", str(free_port()), "--metrics-port", str(free_port()),
             "--workspace", str(tmp_path)],
            cwd=REPO_ROOT, env={**os.environ, "PYTHONPATH": str(REPO_ROOT)}, capture_output=True, text=True,
            timeout=90,
        )  # fmt: skip
    assert server.returncode == 3, server.stdout[-2000:] + server.stderr[-2000:]
    assert time.monotonic() - started < 60
    assert "tritonserver exited during start-up" in server.stderr
    assert [p for p in Path("/proc").iterdir() if p.name.isdigit() and _is_tritonserver_on(p, port)] == []


def _is_tritonserver_on(proc: Path, grpc_port: int) -> bool:
    try:
        argv = (proc / "cmdline").read_bytes().split(b"\0")
    except OSError:
        return False
    return bool(argv) and argv[0].endswith(b"/tritonserver") and str(grpc_port).encode() in argv


def test_missing_repository_and_interpreter_are_typed_errors(triton_python: Path, tmp_path: Path) -> None:
    with pytest.raises(TritonRepositoryError, match="haic models build"):
        EmbeddedTriton(tmp_path / "nowhere", triton_python).start()
    (tmp_path / "empty").mkdir()
    with pytest.raises(TritonRepositoryError, match="haic models build"):
        EmbeddedTriton(tmp_path / "empty", triton_python).start()
    with pytest.raises(TritonEnvironmentError, match="make install"):
        EmbeddedTriton(tmp_path, tmp_path / "no-venv" / "bin" / "python").start()


@pytest.mark.models
def test_the_built_models_through_triton_equal_onnxruntime_in_process(
    built_models: BuildReport, triton_python: Path
) -> None:
    """Every model `haic models build` makes (tensor names, dtypes, shapes of the real graphs) serves as it runs."""
    repository = built_models.repository
    local = OnnxRuntimeInference(repository, threads=1)
    with (
        EmbeddedTriton(repository, triton_python, TritonPorts.free(), threads=1) as server,
        TritonInference(server.url, timeout_s=60, retries=3, max_batch_size=MAX_BATCH) as client,
    ):
        assert sorted(server.models) == sorted(d.name for d in models(repository))
        for name in server.models:
            height, width = client.input_size(name)
            assert (height, width) == local.input_size(name)
            batch = images(3, height, width, seed=3)
            served, expected = client.infer(name, batch), local.infer(name, batch)
            assert served.keys() == expected.keys(), name
            for output, value in expected.items():
                assert served[output].shape == value.shape and served[output].dtype == value.dtype, (name, output)
                np.testing.assert_allclose(served[output], value, rtol=1e-5, atol=1e-5, err_msg=f"{name}.{output}")


def test_shared_memory_of_a_stopped_server_is_removed_and_a_live_ones_kept(tmp_path: Path) -> None:
    # PyTriton's regions are named after the server's Python process; a crashed server's stay in /dev/shm.
    dead = subprocess.Popen(["true"])
    dead.wait()
    orphan = tmp_path / f"pytrtion{dead.pid}-0123abcd-region"
    live = tmp_path / f"pytrtion{os.getpid()}-0123abcd-region"
    other = tmp_path / "PostgreSQL.1234"
    for path in (orphan, live, other):
        path.write_bytes(b"\0" * 16)
    assert remove_orphaned_shared_memory(tmp_path) == [orphan.name]
    assert not orphan.exists() and live.exists() and other.exists()
