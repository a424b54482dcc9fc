"""RTMDet / RTMPose wrapping, on random-weight models with the published export signatures.

The fakes have the mmdeploy tensor names, dtypes and shapes (RTMPose: ``input`` [N, 3, 256, 192] ->
``simcc_x`` [N, 17, 384], ``simcc_y`` [N, 17, 512]; RTMDet: ``input`` [N, 3, 640, 640] -> ``dets``
[N, K, 5], ``labels`` [N, K] INT64), in a dynamic-batch and a batch-1 flavour and in opsets 11 and 18,
where Unsqueeze / ReduceMax change form. The decoding is checked on known head outputs against hand
computation and rtmlib's own functions.
"""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from onnx import TensorProto, helper, numpy_helper

from haic_tools.models import openmmlab as om
from services.pose import contract

POSE_H, POSE_W, SPLIT = 256, 192, 2.0
DET_S = 640
IR_FOR_OPSET = {11: 6, 18: 8}


def _model(nodes: list, inputs: list, outputs: list, inits: list, opset: int) -> onnx.ModelProto:
    graph = helper.make_graph(nodes, "end2end", inputs, outputs, inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)], ir_version=IR_FOR_OPSET[opset])
    onnx.checker.check_model(model)
    return model


def _arr(name: str, value: np.ndarray) -> TensorProto:
    return numpy_helper.from_array(np.asarray(value), name)


def fake_rtmpose(
    path: Path,
    *,
    batch: int | str = "batch",
    opset: int = 11,
    seed: int = 0,
    simcc: tuple[np.ndarray, np.ndarray] | None = None,
    height: int = POSE_H,
    width: int = POSE_W,
    bins: tuple[int, int] | None = None,
    output_names: tuple[str, str] = ("simcc_x", "simcc_y"),
) -> Path:
    """RTMPose-shaped network: conv + linear heads with random weights, or, with ``simcc``, heads that
    return the given [17, bins] arrays for every image (the image still flows through the graph)."""
    rng = np.random.default_rng(seed)
    bx, by = bins or (int(width * SPLIT), int(height * SPLIT))
    feat = 17 * (height // 8) * (width // 8)
    reshape_batch = 1 if batch == 1 else 0  # a batch-1 export bakes the 1 in, as torch.onnx does
    inits = [
        _arr("conv_w", rng.normal(0, 0.05, (17, 3, 8, 8)).astype(np.float32)),
        _arr("flat", np.array([reshape_batch, 17, feat // 17], np.int64)),
    ]
    nodes = [
        helper.make_node("Conv", ["input", "conv_w"], ["feat"], strides=[8, 8], kernel_shape=[8, 8]),
        helper.make_node("Reshape", ["feat", "flat"], ["feat3"]),
    ]
    for name, out, n in (("x", output_names[0], bx), ("y", output_names[1], by)):
        if simcc is None:
            inits.append(_arr(f"w_{name}", rng.normal(0, 0.05, (feat // 17, n)).astype(np.float32)))
            nodes.append(helper.make_node("MatMul", ["feat3", f"w_{name}"], [out]))
        else:
            # 0 * features + known values: the network path stays connected but the head is fixed
            inits.append(_arr(f"w_{name}", np.zeros((feat // 17, n), np.float32)))
            inits.append(_arr(f"c_{name}", simcc[0 if name == "x" else 1].astype(np.float32)))
            nodes.append(helper.make_node("MatMul", ["feat3", f"w_{name}"], [f"z_{name}"]))
            nodes.append(helper.make_node("Add", [f"z_{name}", f"c_{name}"], [out]))
    model = _model(
        nodes,
        [helper.make_tensor_value_info("input", TensorProto.FLOAT, [batch, 3, height, width])],
        [
            helper.make_tensor_value_info(output_names[0], TensorProto.FLOAT, [batch, 17, bx]),
            helper.make_tensor_value_info(output_names[1], TensorProto.FLOAT, [batch, 17, by]),
        ],
        inits,
        opset,
    )
    onnx.save(model, str(path))
    return path


def fake_rtmdet(
    path: Path,
    *,
    batch: int | str = "batch",
    opset: int = 11,
    seed: int = 0,
    num_dets: int = 20,
    dets: np.ndarray | None = None,
    labels: np.ndarray | None = None,
    size: tuple[int, int] = (DET_S, DET_S),
) -> Path:
    """RTMDet end2end-shaped network: pooled image -> random dets in input pixels and labels 0..2, or,
    with ``dets`` / ``labels``, those fixed values for every image."""
    rng = np.random.default_rng(seed)
    n = num_dets if dets is None else len(dets)
    keep = 1 if batch == 1 else 0
    inits = [
        _arr("flat", np.array([keep, 3], np.int64)),
        _arr("dets_shape", np.array([keep, n, 5], np.int64)),
        _arr("det_w", rng.normal(0, 1, (3, n * 5)).astype(np.float32) * (dets is None)),
        _arr("lab_w", rng.normal(0, 1, (3, n)).astype(np.float32) * (labels is None)),
        _arr("det_c", np.zeros((n * 5,), np.float32) if dets is None else dets.reshape(-1).astype(np.float32)),
        _arr("lab_c", np.zeros((n,), np.int64) if labels is None else labels.astype(np.int64)),
        _arr("three", np.array(3.0 if labels is None else 0.0, np.float32)),  # labels 0..2, or exactly lab_c
    ]
    nodes = [
        helper.make_node("GlobalAveragePool", ["input"], ["pooled"]),
        helper.make_node("Reshape", ["pooled", "flat"], ["p"]),
        helper.make_node("MatMul", ["p", "det_w"], ["d0"]),
        helper.make_node("Add", ["d0", "det_c"], ["d1"]),
        helper.make_node("Reshape", ["d1", "dets_shape"], ["d2"]),
        helper.make_node("MatMul", ["p", "lab_w"], ["l0"]),
        helper.make_node("Sigmoid", ["l0"], ["l1"]),
        helper.make_node("Mul", ["l1", "three"], ["l2"]),
        helper.make_node("Floor", ["l2"], ["l3"]),
        helper.make_node("Cast", ["l3"], ["l4"], to=TensorProto.INT64),
        helper.make_node("Add", ["l4", "lab_c"], ["labels"]),
    ]
    if dets is None:
        inits.append(_arr("to_px", np.array([size[1], size[0], size[1], size[0], 1], np.float32)))
        nodes += [
            helper.make_node("Sigmoid", ["d2"], ["d3"]),
            helper.make_node("Mul", ["d3", "to_px"], ["dets"]),
        ]
    else:
        nodes.append(helper.make_node("Identity", ["d2"], ["dets"]))
    model = _model(
        nodes,
        [helper.make_tensor_value_info("input", TensorProto.FLOAT, [batch, 3, *size])],
        [
            helper.make_tensor_value_info("dets", TensorProto.FLOAT, [batch, n, 5]),
            helper.make_tensor_value_info("labels", TensorProto.INT64, [batch, n]),
        ],
        inits,
        opset,
    )
    onnx.save(model, str(path))
    return path


def _run(path: Path, feeds: dict[str, np.ndarray], outputs: list[str] | None = None) -> list[np.ndarray]:
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    return session.run(outputs, feeds)


def _run_model(model: onnx.ModelProto, feeds: dict[str, np.ndarray]) -> list[np.ndarray]:
    session = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    return session.run(None, feeds)


def _images(n: int, h: int, w: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (n, h, w, 3), dtype=np.uint8)


def _hand_decode(simcc_x: np.ndarray, simcc_y: np.ndarray) -> np.ndarray:
    """SimCC decoding written out: first argmax / bins, confidence = mean of the maxima, 0 if <= 0."""
    x = np.argmax(simcc_x, axis=-1).astype(np.float32) / np.float32(simcc_x.shape[-1])
    y = np.argmax(simcc_y, axis=-1).astype(np.float32) / np.float32(simcc_y.shape[-1])
    conf = (simcc_x.max(axis=-1) + simcc_y.max(axis=-1)) * np.float32(0.5)
    return np.stack([x, y, np.where(conf > 0, conf, np.float32(0))], axis=-1)


# --- (a) wrapped models run on uint8 batches with the contract's shapes and dtypes


@pytest.mark.parametrize("opset", [11, 18])
@pytest.mark.parametrize("batch", ["batch", 1])
def test_wrapped_rtmpose_meets_the_contract(tmp_path: Path, batch: int | str, opset: int) -> None:
    src = fake_rtmpose(tmp_path / "rtmpose.onnx", batch=batch, opset=opset)
    spec = om.wrap_rtmpose(src, tmp_path / "wrapped.onnx")
    assert spec == contract.pose_spec(POSE_H, POSE_W)
    session = ort.InferenceSession(str(tmp_path / "wrapped.onnx"), providers=["CPUExecutionProvider"])
    (inp,) = session.get_inputs()
    assert (inp.name, inp.type, inp.shape[1:]) == ("image", "tensor(uint8)", [POSE_H, POSE_W, 3])
    assert [o.name for o in session.get_outputs()] == ["keypoints"]
    images = _images(8, POSE_H, POSE_W)
    for n in (1, 8):
        (keypoints,) = session.run(None, {"image": images[:n]})
        assert keypoints.shape == (n, 17, 3) and keypoints.dtype == np.float32
        assert ((keypoints[..., :2] >= 0) & (keypoints[..., :2] < 1)).all()
        assert (keypoints[..., 2] >= 0).all()
    # the batch is per image: image 3 alone decodes as it does inside the batch of 8
    (alone,) = session.run(None, {"image": images[3:4]})
    np.testing.assert_allclose(alone[0], keypoints[3], rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("opset", [11, 18])
@pytest.mark.parametrize("batch", ["batch", 1])
def test_wrapped_rtmdet_meets_the_contract(tmp_path: Path, batch: int | str, opset: int) -> None:
    src = fake_rtmdet(tmp_path / "rtmdet.onnx", batch=batch, opset=opset, num_dets=20)
    spec = om.wrap_rtmdet(src, tmp_path / "wrapped.onnx", max_detections=10)
    assert spec == contract.detector_spec(DET_S, 10)
    session = ort.InferenceSession(str(tmp_path / "wrapped.onnx"), providers=["CPUExecutionProvider"])
    assert [o.name for o in session.get_outputs()] == ["boxes", "scores"]
    images = _images(8, DET_S, DET_S)
    for n in (1, 8):
        boxes, scores = session.run(None, {"image": images[:n]})
        assert boxes.shape == (n, 10, 4) and boxes.dtype == np.float32
        assert scores.shape == (n, 10) and scores.dtype == np.float32
        assert ((boxes >= 0) & (boxes <= 1)).all() and ((scores >= 0) & (scores <= 1)).all()
        assert (np.diff(scores, axis=1) <= 0).all()  # best first
    # against the source run directly, image by image: person scores, best 10, boxes / 640
    source = ort.InferenceSession(str(src), providers=["CPUExecutionProvider"])
    for i in range(8):
        bgr = images[i : i + 1, ..., ::-1].astype(np.float32)
        norm = ((bgr - np.float32(om.RTMDET_MEAN_BGR)) / np.float32(om.RTMDET_STD_BGR)).transpose(0, 3, 1, 2)
        dets, labels = source.run(None, {"input": norm})
        person = np.where(labels[0] == 0, dets[0, :, 4], 0)
        expected = np.sort(np.concatenate([person, np.zeros(10, np.float32)]))[::-1][:10]
        np.testing.assert_allclose(scores[i], expected, rtol=1e-5, atol=1e-6)
        for j in range(10):
            if scores[i, j] > 0:
                row = np.flatnonzero(np.isclose(person, scores[i, j], rtol=1e-5))[0]
                np.testing.assert_allclose(boxes[i, j], np.clip(dets[0, row, :4] / 640, 0, 1), rtol=1e-5, atol=1e-6)


def test_batch_one_sources_are_wrapped_in_a_loop_and_dynamic_ones_are_not(tmp_path: Path) -> None:
    om.wrap_rtmpose(fake_rtmpose(tmp_path / "s.onnx", batch=1), tmp_path / "s_w.onnx")
    om.wrap_rtmpose(fake_rtmpose(tmp_path / "d.onnx"), tmp_path / "d_w.onnx")
    static, dynamic = onnx.load(str(tmp_path / "s_w.onnx")), onnx.load(str(tmp_path / "d_w.onnx"))
    assert [n.op_type for n in static.graph.node].count("Loop") == 1
    assert "Loop" not in [n.op_type for n in dynamic.graph.node]
    for model in (static, dynamic):
        assert model.graph.input[0].type.tensor_type.shape.dim[0].dim_param == "batch"
        assert model.opset_import[0].version == 11 and model.ir_version == 6  # the source's


# --- (b) SimCC decoding on known head outputs


def _peaked(rng: np.random.Generator, bins: int, peaks: list[int], values: list[float]) -> np.ndarray:
    out = rng.uniform(-3.0, -2.0, (17, bins)).astype(np.float32)  # below every planted peak
    for k, (p, v) in enumerate(zip(peaks, values, strict=True)):
        out[k, p] = v
    return out


def test_simcc_decoding_matches_hand_computation_and_rtmlib(tmp_path: Path) -> None:
    rng = np.random.default_rng(5)
    px = [0, 383, 192, 7, 100, 250, 1, 2, 3, 4, 5, 6, 8, 9, 10, 11, 12]
    py = [0, 511, 256, 9, 300, 40, 1, 2, 3, 4, 5, 6, 8, 9, 10, 11, 12]
    vx = [0.9, 0.5, 1.3, 0.2, -0.1, 0.05, 0.7, 0.3, 0.4, 0.6, 0.8, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6]
    vy = [0.8, 0.7, 0.9, -0.6, -0.2, -0.04, 0.7, 0.3, 0.4, 0.6, 0.8, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6]
    sx, sy = _peaked(rng, 384, px, vx), _peaked(rng, 512, py, vy)
    sx[6, 50] = sx[6, 1]  # a tie: the first maximum wins, as numpy's argmax
    decoder = om.build_simcc_decoder(384, 512, opset=11, ir_version=6)
    (ours,) = _run_model(decoder, {"simcc_x": sx[None], "simcc_y": sy[None]})
    # by hand, for the planted peaks
    np.testing.assert_array_equal(ours[0, :, 0], np.array(px, np.float32) / np.float32(384))
    np.testing.assert_array_equal(ours[0, :, 1], np.array(py, np.float32) / np.float32(512))
    conf = (np.array(vx, np.float32) + np.array(vy, np.float32)) * np.float32(0.5)
    np.testing.assert_array_equal(ours[0, :, 2], np.where(conf > 0, conf, 0))
    assert ours[0, 3, 2] == 0 and ours[0, 4, 2] == 0 and ours[0, 5, 2] > 0  # (0.2 - 0.6) / 2 < 0, (0.05 - 0.04) / 2 > 0
    np.testing.assert_array_equal(ours, _hand_decode(sx[None], sy[None]))
    # the same numbers as rtmlib's decoding: locs / split_ratio / input size, and its scores where > 0
    post = pytest.importorskip("rtmlib.tools.pose_estimation.post_processings")
    locs, vals = post.get_simcc_maximum(sx[None].copy(), sy[None].copy())
    valid = vals[0] > 0
    np.testing.assert_allclose(ours[0, valid, :2], locs[0, valid] / SPLIT / [POSE_W, POSE_H], rtol=0, atol=1e-7)
    np.testing.assert_allclose(ours[0, :, 2], np.maximum(vals[0], 0), rtol=0, atol=1e-7)
    assert (locs[0, ~valid] == -1).all()  # rtmlib marks them invalid; the contract says confidence 0


@pytest.mark.parametrize("batch", ["batch", 1])
def test_wrapped_rtmpose_decodes_known_heads_end_to_end(tmp_path: Path, batch: int | str) -> None:
    rng = np.random.default_rng(6)
    sx = _peaked(rng, 384, list(rng.integers(0, 384, 17)), list(rng.uniform(-0.3, 1.2, 17)))
    sy = _peaked(rng, 512, list(rng.integers(0, 512, 17)), list(rng.uniform(-0.3, 1.2, 17)))
    src = fake_rtmpose(tmp_path / "known.onnx", batch=batch, simcc=(sx, sy), opset=18)
    om.wrap_rtmpose(src, tmp_path / "wrapped.onnx")
    (keypoints,) = _run(tmp_path / "wrapped.onnx", {"image": _images(3, POSE_H, POSE_W)})
    expected = _hand_decode(sx, sy)
    for i in range(3):
        np.testing.assert_array_equal(keypoints[i], expected)


# --- (c) in-graph normalisation equals rtmlib's preprocessing


def test_rtmpose_normalisation_equals_rtmlib(tmp_path: Path) -> None:
    rtmpose = pytest.importorskip("rtmlib.tools.pose_estimation.rtmpose")
    pre = pytest.importorskip("rtmlib.tools.pose_estimation.pre_processings")
    frame = _images(1, 480, 640, seed=7)[0]
    bbox = [100.0, 50.0, 300.0, 420.0]
    state = SimpleNamespace(model_input_size=(POSE_W, POSE_H), mean=om.RTMPOSE_MEAN_RGB, std=om.RTMPOSE_STD_RGB)
    theirs, _, _ = rtmpose.RTMPose.preprocess(state, frame, bbox)  # normalised crop, HWC float64
    center, scale = pre.bbox_xyxy2cs(np.array(bbox), padding=1.25)
    crop, _ = pre.top_down_affine((POSE_W, POSE_H), scale, center, frame)  # the same crop, still uint8
    # the whole wrapped model, with the network's input tensor exposed as an extra output
    om.wrap_rtmpose(fake_rtmpose(tmp_path / "p.onnx"), tmp_path / "wrapped.onnx")
    model = onnx.load(str(tmp_path / "wrapped.onnx"))
    model.graph.output.append(helper.make_tensor_value_info("pre/normalized", TensorProto.FLOAT, None))
    _, ours = _run_model(model, {"image": crop[None]})
    np.testing.assert_allclose(ours[0].transpose(1, 2, 0), theirs, rtol=1e-6, atol=1e-5)


def test_rtmdet_normalisation_equals_rtmlib_on_bgr(tmp_path: Path) -> None:
    rtmdet = pytest.importorskip("rtmlib.tools.object_detection.rtmdet")
    rgb = _images(1, DET_S, DET_S, seed=8)[0]
    state = SimpleNamespace(model_input_size=(DET_S, DET_S), mean=om.RTMDET_MEAN_BGR, std=om.RTMDET_STD_BGR)
    # rtmlib is handed OpenCV's BGR frame; the contract hands the wrapper RGB
    theirs, ratio = rtmdet.RTMDet.preprocess(state, np.ascontiguousarray(rgb[..., ::-1]))
    assert ratio == 1.0
    om.wrap_rtmdet(fake_rtmdet(tmp_path / "d.onnx"), tmp_path / "wrapped.onnx")
    model = onnx.load(str(tmp_path / "wrapped.onnx"))
    model.graph.output.append(helper.make_tensor_value_info("pre/normalized", TensorProto.FLOAT, None))
    *_, ours = _run_model(model, {"image": rgb[None]})
    np.testing.assert_allclose(ours[0].transpose(1, 2, 0), theirs, rtol=1e-6, atol=1e-5)


def test_preprocessor_constants() -> None:
    # rtmlib 0.0.16: RTMDet(mean=(103.53, 116.28, 123.675), std=(57.375, 57.12, 58.395)),
    # RTMPose(mean=(123.675, 116.28, 103.53), std=(58.395, 57.12, 57.375))
    assert om.RTMDET_MEAN_BGR == (103.53, 116.28, 123.675) and om.RTMDET_STD_BGR == (57.375, 57.12, 58.395)
    assert om.RTMPOSE_MEAN_RGB == (123.675, 116.28, 103.53) and om.RTMPOSE_STD_RGB == (58.395, 57.12, 57.375)
    pixel = np.array([[[[10, 200, 90]]]], np.uint8)  # R, G, B
    (bgr,) = _run_model(
        om.build_preprocessor(1, 1, om.RTMDET_MEAN_BGR, om.RTMDET_STD_BGR, True, 11, 6), {"image": pixel}
    )
    np.testing.assert_allclose(
        bgr[0, :, 0, 0], [(90 - 103.53) / 57.375, (200 - 116.28) / 57.12, (10 - 123.675) / 58.395], rtol=1e-6
    )


# --- (d) RTMDet box scaling and class filtering on known dets / labels


def test_rtmdet_scales_boxes_and_keeps_persons_only(tmp_path: Path) -> None:
    dets = np.array(
        [
            [64.0, 32.0, 320.0, 608.0, 0.91],  # person
            [0.0, 0.0, 640.0, 640.0, 0.99],  # class 2: zeroed although it scores highest
            [100.0, 200.0, 164.0, 300.0, 0.40],  # person
            [-5.0, 600.0, 700.0, 650.0, 0.75],  # person reaching past the input: clipped to [0, 1]
            [10.0, 10.0, 20.0, 20.0, 0.50],  # class 1
        ],
        np.float32,
    )
    labels = np.array([0, 2, 0, 0, 1])
    decoder = om.build_rtmdet_decoder(640, 4, opset=11, ir_version=6)
    boxes, scores = _run_model(
        decoder, {"dets": np.stack([dets, dets[::-1]]), "labels": np.stack([labels, labels[::-1]])}
    )
    for b in range(2):
        np.testing.assert_allclose(scores[b], [0.91, 0.75, 0.40, 0.0], rtol=1e-7)
        np.testing.assert_allclose(
            boxes[b, :3],
            [[0.1, 0.05, 0.5, 0.95], [0.0, 600 / 640, 1.0, 1.0], [100 / 640, 200 / 640, 164 / 640, 300 / 640]],
            rtol=1e-6,
        )
    # more detections than K: the K best persons survive, whatever their order in dets
    many = np.array([[i, i, i + 10, i + 10, s] for i, s in enumerate(np.linspace(0.1, 0.9, 9))], np.float32)
    boxes, scores = _run_model(decoder, {"dets": many[None], "labels": np.zeros((1, 9), np.int64)})
    np.testing.assert_allclose(scores[0], [0.9, 0.8, 0.7, 0.6], rtol=1e-6)
    np.testing.assert_allclose(boxes[0, 0], np.array([8, 8, 18, 18]) / 640, rtol=1e-6)
    # no detections at all (mmdeploy can return N = 0): K empty slots
    boxes, scores = _run_model(decoder, {"dets": np.zeros((2, 0, 5), np.float32), "labels": np.zeros((2, 0), np.int64)})
    assert boxes.shape == (2, 4, 4) and not boxes.any() and not scores.any()


@pytest.mark.parametrize("batch", ["batch", 1])
def test_wrapped_rtmdet_on_known_dets_end_to_end(tmp_path: Path, batch: int | str) -> None:
    dets = np.array([[64, 32, 320, 608, 0.8], [300, 100, 500, 400, 0.95], [0, 0, 10, 10, 0.6]], np.float32)
    src = fake_rtmdet(tmp_path / "known.onnx", batch=batch, dets=dets, labels=np.array([0, 5, 0]))
    om.wrap_rtmdet(src, tmp_path / "wrapped.onnx", max_detections=5)
    boxes, scores = _run(tmp_path / "wrapped.onnx", {"image": _images(4, DET_S, DET_S)})
    for i in range(4):
        np.testing.assert_allclose(scores[i], [0.8, 0.6, 0, 0, 0], rtol=1e-6)
        np.testing.assert_allclose(boxes[i, :2], [[0.1, 0.05, 0.5, 0.95], [0, 0, 10 / 640, 10 / 640]], rtol=1e-6)


# --- the source signature is checked, and errors say what is wrong


def test_rejects_sources_that_are_not_the_published_exports(tmp_path: Path) -> None:
    out = tmp_path / "out.onnx"
    with pytest.raises(om.SourceModelError, match="does not exist"):
        om.wrap_rtmpose(tmp_path / "missing.onnx", out)
    (tmp_path / "junk.onnx").write_bytes(b"not a model")
    with pytest.raises(om.SourceModelError, match="not a readable ONNX"):
        om.wrap_rtmpose(tmp_path / "junk.onnx", out)
    renamed = fake_rtmpose(tmp_path / "renamed.onnx", output_names=("simcc_x", "heat_y"))
    with pytest.raises(om.SourceModelError, match="missing output simcc_y"):
        om.wrap_rtmpose(renamed, out)
    with pytest.raises(om.SourceModelError, match="missing output dets, labels"):
        om.wrap_rtmdet(fake_rtmpose(tmp_path / "pose.onnx"), out)
    uneven = fake_rtmpose(tmp_path / "uneven.onnx", bins=(384, 256 * 3))
    with pytest.raises(om.SourceModelError, match=r"split ratios 2\.0 and 3\.0"):
        om.wrap_rtmpose(uneven, out)
    with pytest.raises(om.SourceModelError, match="square"):
        om.wrap_rtmdet(fake_rtmdet(tmp_path / "wide.onnx", size=(384, 640)), out)
    with pytest.raises(om.SourceModelError, match="batch must be 1 or dynamic"):
        om.wrap_rtmpose(fake_rtmpose(tmp_path / "b4.onnx", batch=4), out)
    assert not out.exists()


def test_rejects_wrong_input_signatures(tmp_path: Path) -> None:
    def with_input(name: str, elem: int, dims: list) -> Path:
        model = onnx.load(str(fake_rtmpose(tmp_path / "base.onnx")))
        model.graph.input[0].CopyFrom(helper.make_tensor_value_info(name, elem, dims))
        path = tmp_path / f"{name}_{elem}_{len(dims)}.onnx"
        onnx.save(model, str(path))
        return path

    out = tmp_path / "out.onnx"
    with pytest.raises(om.SourceModelError, match=r"\[N, 3, H, W\].*input FLOAT \[batch, 3, 256\]"):
        om.wrap_rtmpose(with_input("input", TensorProto.FLOAT, ["batch", 3, 256]), out)
    with pytest.raises(om.SourceModelError, match=r"\[batch, 3, h, w\] has no fixed H and W; pass the size"):
        om.wrap_rtmpose(with_input("input", TensorProto.FLOAT, ["batch", 3, "h", "w"]), out)
    with pytest.raises(om.SourceModelError, match=r"not the 384 x 288 given"):
        om.wrap_rtmpose(with_input("input", TensorProto.FLOAT, ["batch", 3, 256, 192]), out, input_size=(384, 288))
    with pytest.raises(om.SourceModelError, match=r"must be FLOAT.*FLOAT16"):
        om.wrap_rtmpose(with_input("input", TensorProto.FLOAT16, ["batch", 3, 256, 192]), out)
    with pytest.raises(om.SourceModelError, match="named 'images'"):
        om.wrap_rtmpose(with_input("images", TensorProto.FLOAT, ["batch", 3, 256, 192]), out)


def test_an_export_with_symbolic_height_and_width_takes_the_given_size(tmp_path: Path) -> None:
    # mmdeploy's dynamic detection configs leave H and W symbolic; the contract needs S fixed
    model = onnx.load(
        str(fake_rtmdet(tmp_path / "d.onnx", dets=np.array([[64, 64, 128, 320, 0.9]], np.float32), labels=np.zeros(1)))
    )
    model.graph.input[0].CopyFrom(helper.make_tensor_value_info("input", TensorProto.FLOAT, ["b", 3, "h", "w"]))
    onnx.save(model, str(tmp_path / "hw.onnx"))
    with pytest.raises(om.SourceModelError, match="no fixed H and W"):
        om.wrap_rtmdet(tmp_path / "hw.onnx", tmp_path / "out.onnx")
    spec = om.wrap_rtmdet(tmp_path / "hw.onnx", tmp_path / "out.onnx", max_detections=3, input_size=320)
    assert spec == contract.detector_spec(320, 3)
    boxes, scores = _run(tmp_path / "out.onnx", {"image": _images(2, 320, 320)})
    np.testing.assert_allclose(boxes[:, 0], [[0.2, 0.2, 0.4, 1.0]] * 2, rtol=1e-6)
    np.testing.assert_allclose(scores[:, 0], [0.9, 0.9], rtol=1e-6)


def test_rejects_old_opsets_and_bad_max_detections(tmp_path: Path) -> None:
    model = onnx.load(str(fake_rtmdet(tmp_path / "d.onnx")))
    model.opset_import[0].version = 10
    onnx.save(model, str(tmp_path / "old.onnx"))
    with pytest.raises(om.SourceModelError, match="opset 10"):
        om.wrap_rtmdet(tmp_path / "old.onnx", tmp_path / "out.onnx")
    with pytest.raises(ValueError, match="max_detections"):
        om.wrap_rtmdet(tmp_path / "d.onnx", tmp_path / "out.onnx", max_detections=0)


def test_a_dynamic_declaration_over_a_batch_one_graph_fails_the_build_check(tmp_path: Path) -> None:
    # declared dynamic, but a Reshape bakes in batch 1: batch 2 cannot run, and the build says so
    model = onnx.load(str(fake_rtmpose(tmp_path / "s.onnx", batch=1)))
    for value in (*model.graph.input, *model.graph.output):
        value.type.tensor_type.shape.dim[0].dim_param = "batch"
    onnx.save(model, str(tmp_path / "lying.onnx"))
    with pytest.raises(om.WrappedModelError, match="does not run at batch 2"):
        om.wrap_rtmpose(tmp_path / "lying.onnx", tmp_path / "out.onnx")
