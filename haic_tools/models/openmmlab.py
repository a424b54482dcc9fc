"""Wraps OpenMMLab's RTMDet and RTMPose ONNX exports (mmdeploy / rtmlib) into the pose contract.

The published graphs take normalised float NCHW tensors and return raw heads; the contract takes
uint8 NHWC RGB pixels and returns normalised boxes and keypoints. The wrapper adds both ends in the
graph, in the source model's own opset and IR version, so Triton serves one ONNX file per model:

RTMDet (mmdeploy end2end, NMS inside)
    ``input`` FP32 [B, 3, S, S], BGR, (x - (103.53, 116.28, 123.675)) / (57.375, 57.12, 58.395)
    ``dets`` FP32 [B, N, 5] x1, y1, x2, y2, score in input pixels; ``labels`` INT64 [B, N]
    -> ``boxes`` [B, K, 4] / S and ``scores`` [B, K], non-person labels scored 0, best K first.
RTMPose (SimCC head)
    ``input`` FP32 [B, 3, H, W], RGB, (x - (123.675, 116.28, 103.53)) / (58.395, 57.12, 57.375)
    ``simcc_x`` FP32 [B, 17, W * r], ``simcc_y`` FP32 [B, 17, H * r] (split ratio r, 2.0 published)
    -> ``keypoints`` [B, 17, 3]: argmax / (W * r), argmax / (H * r), and the confidence rtmlib's
    ``get_simcc_maximum`` gives (mean of the two axis maxima), 0 where that is <= 0.

Channel orders follow the training configs: mmdet's RTMDet is trained on BGR (bgr_to_rgb=False),
mmpose's RTMPose on RGB (bgr_to_rgb=True). rtmlib feeds OpenCV's BGR frames to both (rtmlib issue
#48); the contract's RGB input is swapped for RTMDet only.

A source exported with a fixed batch of 1 is run once per image inside an ONNX Loop, so every
wrapped model takes a dynamic batch; a dynamic-batch export runs the batch in one pass.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import onnx
from onnx import TensorProto, compose, helper, numpy_helper

from services.pose.contract import BOXES, IMAGE, KEYPOINTS, NUM_KEYPOINTS, SCORES, ModelSpec, detector_spec, pose_spec

# mmdet RTMDet configs (data_preprocessor, bgr_to_rgb=False); rtmlib RTMDet defaults, BGR order
RTMDET_MEAN_BGR = (103.53, 116.28, 123.675)
RTMDET_STD_BGR = (57.375, 57.12, 58.395)
# mmpose RTMPose configs (bgr_to_rgb=True); rtmlib RTMPose defaults, RGB order
RTMPOSE_MEAN_RGB = (123.675, 116.28, 103.53)
RTMPOSE_STD_RGB = (58.395, 57.12, 57.375)
COCO_PERSON_LABEL = 0

MIN_OPSET = 11  # mmdeploy exports at 11; the ops added here need Pad / Clip / TopK with tensor inputs
SOURCE_INPUT = "input"
SIMCC_X = "simcc_x"
SIMCC_Y = "simcc_y"
DETS = "dets"
LABELS = "labels"
_NORMALIZED = "pre/normalized"
_NET_PREFIX = "net/"
_BATCH = "batch"


class SourceModelError(ValueError):
    """The ONNX file is not the OpenMMLab export it was given as: a name, dtype or shape differs."""


class WrappedModelError(RuntimeError):
    """The wrapped graph does not run, or its outputs break the contract (a bug or an unusual export)."""


Dim = int | str | None  # a fixed size, a symbolic name, or unknown


@dataclass(frozen=True)
class _Tensor:
    name: str
    elem_type: int
    dims: tuple[Dim, ...]

    def describe(self) -> str:
        dtype = TensorProto.DataType.Name(self.elem_type)
        return f"{self.name} {dtype} [{', '.join('?' if d is None else str(d) for d in self.dims)}]"


@dataclass(frozen=True)
class _Source:
    model: onnx.ModelProto
    input: _Tensor
    outputs: dict[str, _Tensor]
    opset: int
    height: int
    width: int
    static_batch: bool  # exported with batch 1: wrapped in a Loop


def _tensor(value: onnx.ValueInfoProto) -> _Tensor:
    t = value.type.tensor_type
    dims: list[Dim] = []
    for d in t.shape.dim:
        if d.HasField("dim_value"):
            dims.append(d.dim_value)
        elif d.HasField("dim_param"):
            dims.append(d.dim_param)
        else:
            dims.append(None)
    return _Tensor(value.name, t.elem_type, tuple(dims))


def _load_source(path: Path, kind: str, outputs: tuple[str, ...], size: tuple[int, int] | None) -> _Source:
    """Reads and checks the export. ``size`` (H, W) is required where the export leaves H and W symbolic
    (mmdeploy's dynamic-shape configs) and must agree with them where it fixes them."""
    if not Path(path).is_file():
        raise SourceModelError(f"{kind} model {path} does not exist")
    try:
        model = onnx.load(str(path))
    except Exception as exc:  # onnx raises DecodeError, OSError, ... for a file that is not ONNX
        raise SourceModelError(f"{kind} model {path} is not a readable ONNX file: {exc}") from exc
    graph = model.graph
    initializers = {i.name for i in graph.initializer}
    inputs = [_tensor(v) for v in graph.input if v.name not in initializers]
    if len(inputs) != 1:
        raise SourceModelError(f"{kind} {path}: expected one image input, found {[i.describe() for i in inputs]}")
    image = inputs[0]
    if image.name != SOURCE_INPUT:
        raise SourceModelError(f"{kind} {path}: input is named {image.name!r}, the export names it {SOURCE_INPUT!r}")
    if image.elem_type != TensorProto.FLOAT:
        raise SourceModelError(f"{kind} {path}: input must be FLOAT, got {image.describe()}")
    if len(image.dims) != 4 or image.dims[1] != 3:
        raise SourceModelError(f"{kind} {path}: input must be [N, 3, H, W], got {image.describe()}")
    h, w = image.dims[2:]
    if isinstance(h, int) and isinstance(w, int) and h > 0 and w > 0:
        if size is not None and tuple(size) != (h, w):
            raise SourceModelError(f"{kind} {path}: input is {image.describe()}, not the {size[0]} x {size[1]} given")
        height, width = h, w
    elif size is not None and min(size) > 0:
        height, width = size
    else:
        raise SourceModelError(
            f"{kind} {path}: input {image.describe()} has no fixed H and W; pass the size it was trained at"
        )
    batch = image.dims[0]
    if isinstance(batch, int) and batch not in (0, 1):
        raise SourceModelError(f"{kind} {path}: input batch must be 1 or dynamic, got {image.describe()}")
    found = {v.name: _tensor(v) for v in graph.output}
    missing = [name for name in outputs if name not in found]
    if missing:
        raise SourceModelError(f"{kind} {path}: missing output {', '.join(missing)}; outputs are {sorted(found)}")
    opset = next((o.version for o in model.opset_import if o.domain in ("", "ai.onnx")), 0)
    if opset < MIN_OPSET:
        raise SourceModelError(f"{kind} {path}: opset {opset} is older than {MIN_OPSET}; re-export with mmdeploy")
    return _Source(model, image, {n: found[n] for n in outputs}, opset, height, width, static_batch=batch == 1)


class _Graph:
    """Collects nodes and constants for a pre- or post-processing graph in a given opset."""

    def __init__(self, prefix: str, opset: int) -> None:
        self.prefix = prefix
        self.opset = opset
        self.nodes: list[onnx.NodeProto] = []
        self.initializers: list[TensorProto] = []
        self._count = 0

    def _name(self, hint: str) -> str:
        self._count += 1
        return f"{self.prefix}{hint}_{self._count}"

    def const(self, hint: str, value: np.ndarray) -> str:
        name = self._name(hint)
        self.initializers.append(numpy_helper.from_array(np.asarray(value), name))
        return name

    def op(self, op_type: str, inputs: list[str], output: str | None = None, **attrs: Any) -> str:
        return self.op_multi(op_type, inputs, [output or self._name(op_type.lower())], **attrs)[0]

    def op_multi(self, op_type: str, inputs: list[str], outputs: list[str], **attrs: Any) -> list[str]:
        self.nodes.append(helper.make_node(op_type, inputs, outputs, name=self._name(op_type), **attrs))
        return outputs

    def unsqueeze(self, x: str, axes: list[int], output: str | None = None) -> str:
        if self.opset >= 13:  # axes became an input in opset 13
            return self.op("Unsqueeze", [x, self.const("axes", np.array(axes, np.int64))], output)
        return self.op("Unsqueeze", [x], output, axes=axes)

    def squeeze(self, x: str, axes: list[int], output: str | None = None) -> str:
        if self.opset >= 13:
            return self.op("Squeeze", [x, self.const("axes", np.array(axes, np.int64))], output)
        return self.op("Squeeze", [x], output, axes=axes)

    def reduce_max(self, x: str, axis: int) -> str:
        if self.opset >= 18:  # axes became an input in opset 18
            return self.op("ReduceMax", [x, self.const("axes", np.array([axis], np.int64))], keepdims=0)
        return self.op("ReduceMax", [x], axes=[axis], keepdims=0)

    def model(
        self, name: str, inputs: list[onnx.ValueInfoProto], outputs: list[onnx.ValueInfoProto], ir_version: int
    ) -> onnx.ModelProto:
        graph = helper.make_graph(self.nodes, name, inputs, outputs, self.initializers)
        return helper.make_model(graph, opset_imports=[helper.make_opsetid("", self.opset)], ir_version=ir_version)


def build_preprocessor(
    height: int,
    width: int,
    mean: tuple[float, ...],
    std: tuple[float, ...],
    bgr: bool,
    opset: int,
    ir_version: int,
    batch: Dim = _BATCH,
) -> onnx.ModelProto:
    """uint8 ``image`` [B, H, W, 3] RGB -> float [B, 3, H, W] ``pre/normalized``: (x - mean) / std per channel,
    mean and std given in the network's channel order (BGR when ``bgr``)."""
    g = _Graph("pre/", opset)
    x = g.op("Cast", [IMAGE], to=TensorProto.FLOAT)
    if bgr:
        x = g.op("Gather", [x, g.const("bgr", np.array([2, 1, 0], np.int64))], axis=3)
    x = g.op("Sub", [x, g.const("mean", np.array(mean, np.float32))])
    x = g.op("Div", [x, g.const("std", np.array(std, np.float32))])
    g.op("Transpose", [x], _NORMALIZED, perm=[0, 3, 1, 2])
    return g.model(
        "preprocess",
        [helper.make_tensor_value_info(IMAGE, TensorProto.UINT8, [batch, height, width, 3])],
        [helper.make_tensor_value_info(_NORMALIZED, TensorProto.FLOAT, [batch, 3, height, width])],
        ir_version,
    )


def build_simcc_decoder(
    bins_x: int, bins_y: int, opset: int, ir_version: int, batch: Dim = _BATCH, num_keypoints: int = NUM_KEYPOINTS
) -> onnx.ModelProto:
    """``simcc_x`` [B, K, bins_x], ``simcc_y`` [B, K, bins_y] -> ``keypoints`` [B, K, 3].

    x = argmax / bins_x, which is rtmlib's argmax / split_ratio / W since bins_x = W * split_ratio (same for
    y); ArgMax takes the first maximum like numpy. Confidence is the mean of the two axis maxima (rtmlib
    0.0.16 ``get_simcc_maximum``), and 0 where that mean is <= 0, where rtmlib marks the location invalid.
    """
    g = _Graph("post/", opset)
    coords = []
    maxima = []
    for name, bins in ((SIMCC_X, bins_x), (SIMCC_Y, bins_y)):
        index = g.op("ArgMax", [name], axis=2, keepdims=0)
        position = g.op("Cast", [index], to=TensorProto.FLOAT)
        coords.append(g.op("Div", [position, g.const("bins", np.array(bins, np.float32))]))
        maxima.append(g.reduce_max(name, 2))
    mean = g.op("Mul", [g.op("Add", maxima), g.const("half", np.array(0.5, np.float32))])
    confidence = g.op("Relu", [mean])  # equals max(mean, 0): <= 0 becomes exactly 0
    columns = [g.unsqueeze(v, [2]) for v in (*coords, confidence)]
    g.op("Concat", columns, KEYPOINTS, axis=2)
    return g.model(
        "simcc_decode",
        [
            helper.make_tensor_value_info(SIMCC_X, TensorProto.FLOAT, [batch, num_keypoints, bins_x]),
            helper.make_tensor_value_info(SIMCC_Y, TensorProto.FLOAT, [batch, num_keypoints, bins_y]),
        ],
        [helper.make_tensor_value_info(KEYPOINTS, TensorProto.FLOAT, [batch, num_keypoints, 3])],
        ir_version,
    )


def build_rtmdet_decoder(
    size: int,
    max_detections: int,
    opset: int,
    ir_version: int,
    batch: Dim = _BATCH,
    labels_type: int = TensorProto.INT64,
    num_dets: Dim = "num_dets",
) -> onnx.ModelProto:
    """``dets`` [B, N, 5] (input pixels), ``labels`` [B, N] -> ``boxes`` [B, K, 4] as fractions of ``size``
    (clipped to [0, 1]) and ``scores`` [B, K].

    Scores of labels other than COCO person (0) become 0; the list is padded with zero rows and the K best
    kept (TopK), so truncation drops the weakest detections and never a person for another class.
    """
    g = _Graph("post/", opset)
    k = max_detections
    score = g.op("Gather", [DETS, g.const("score_col", np.array(4, np.int64))], axis=2)  # [B, N]
    box = g.op(
        "Slice",
        [
            DETS,
            g.const("starts", np.array([0], np.int64)),
            g.const("ends", np.array([4], np.int64)),
            g.const("axes", np.array([2], np.int64)),
        ],
    )  # [B, N, 4]
    labels = LABELS if labels_type == TensorProto.INT64 else g.op("Cast", [LABELS], to=TensorProto.INT64)
    person = g.op("Equal", [labels, g.const("person", np.array(COCO_PERSON_LABEL, np.int64))])
    score = g.op("Where", [person, score, g.const("zero", np.array(0.0, np.float32))])
    score = g.op("Pad", [score, g.const("pads", np.array([0, 0, 0, k], np.int64))])
    box = g.op("Pad", [box, g.const("pads", np.array([0, 0, 0, 0, k, 0], np.int64))])
    _, best_index = g.op_multi(
        "TopK",
        [score, g.const("k", np.array([k], np.int64))],
        [SCORES, g.prefix + "top_index"],
        axis=1,
        largest=1,
        sorted=1,
    )
    index = g.op("Expand", [g.unsqueeze(best_index, [2]), g.const("shape", np.array([1, 1, 4], np.int64))])
    best_box = g.op("GatherElements", [box, index], axis=1)
    fraction = g.op("Div", [best_box, g.const("size", np.array(size, np.float32))])
    g.op("Clip", [fraction, g.const("lo", np.array(0.0, np.float32)), g.const("hi", np.array(1.0, np.float32))], BOXES)
    return g.model(
        "rtmdet_decode",
        [
            helper.make_tensor_value_info(DETS, TensorProto.FLOAT, [batch, num_dets, 5]),
            helper.make_tensor_value_info(LABELS, labels_type, [batch, num_dets]),
        ],
        [
            helper.make_tensor_value_info(BOXES, TensorProto.FLOAT, [batch, k, 4]),
            helper.make_tensor_value_info(SCORES, TensorProto.FLOAT, [batch, k]),
        ],
        ir_version,
    )


def _compose(pre: onnx.ModelProto, source: _Source, post: onnx.ModelProto, outputs: list[str]) -> onnx.ModelProto:
    """pre -> source network (names prefixed ``net/``) -> post."""
    net = source.model
    head = compose.merge_models(pre, net, io_map=[(_NORMALIZED, SOURCE_INPUT)], prefix2=_NET_PREFIX)
    io_map = [(_NET_PREFIX + name, name) for name in source.outputs]
    return compose.merge_models(head, post, io_map=io_map, outputs=outputs)


def _loop_over_batch(single: onnx.ModelProto, opset: int, out_dims: dict[str, tuple[int, ...]]) -> onnx.ModelProto:
    """A batch-1 contract model -> one taking a dynamic batch, running ``single`` per image in a Loop."""
    one = compose.add_prefix(single, "one/")
    height, width = (d.dim_value for d in single.graph.input[0].type.tensor_type.shape.dim[1:3])
    body = _Graph("step/", opset)
    frame = body.op("Gather", [IMAGE, "step/i"], axis=0)  # [H, W, 3] of the outer ``image``
    body.unsqueeze(frame, [0], "one/" + IMAGE)
    body.nodes.extend(one.graph.node)
    body.initializers.extend(one.graph.initializer)
    step_outputs = [body.squeeze("one/" + name, [0], "step/" + name) for name in out_dims]
    body.op("Identity", ["step/cond_in"], "step/cond_out")
    body_graph = helper.make_graph(
        body.nodes,
        "per_image",
        [
            helper.make_tensor_value_info("step/i", TensorProto.INT64, []),
            helper.make_tensor_value_info("step/cond_in", TensorProto.BOOL, []),
        ],
        [helper.make_tensor_value_info("step/cond_out", TensorProto.BOOL, [])]
        + [
            helper.make_tensor_value_info(name, TensorProto.FLOAT, list(dims))
            for name, dims in zip(step_outputs, out_dims.values(), strict=True)
        ],
        body.initializers,
    )
    outer = _Graph("loop/", opset)
    shape = outer.op("Shape", [IMAGE])
    count = outer.op("Gather", [shape, outer.const("batch_axis", np.array(0, np.int64))], axis=0)
    outer.nodes.append(helper.make_node("Loop", [count, ""], list(out_dims), name="loop/per_image", body=body_graph))
    model = outer.model(
        single.graph.name,
        [helper.make_tensor_value_info(IMAGE, TensorProto.UINT8, [_BATCH, height, width, 3])],
        [helper.make_tensor_value_info(name, TensorProto.FLOAT, [_BATCH, *dims]) for name, dims in out_dims.items()],
        single.ir_version,
    )
    # keep the source's other domains (mmdeploy custom ops) importable inside the body
    del model.opset_import[:]
    model.opset_import.extend(single.opset_import)
    model.functions.extend(single.functions)
    return model


def _finish(model: onnx.ModelProto, source: _Source, out_dims: dict[str, tuple[int, ...]], doc: str) -> onnx.ModelProto:
    if source.static_batch:
        model = _loop_over_batch(model, source.opset, out_dims)
    model.producer_name = "haic haic_tools.models.openmmlab"
    model.graph.name = "contract"
    model.doc_string = doc
    try:
        onnx.checker.check_model(model)
    except onnx.checker.ValidationError as exc:
        raise WrappedModelError(f"wrapped graph is invalid: {exc}") from exc
    return model


def _verify(path: Path, spec: ModelSpec) -> None:
    """Runs the saved file at batch 2 on black images: catches exports whose declared batch is dynamic
    but whose graph is not, before Triton loads them."""
    import onnxruntime as ort  # only the build step needs a session

    image = spec.inputs[0]
    try:
        session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
        names = [t.name for t in spec.outputs]
        values = session.run(names, {image.name: np.zeros((2, *image.dims), np.uint8)})
    except Exception as exc:  # onnxruntime raises its own exception classes for load and run failures
        raise WrappedModelError(f"{path} does not run at batch 2: {exc}") from exc
    for tensor, value in zip(spec.outputs, values, strict=True):
        if value.shape != (2, *tensor.dims) or value.dtype != tensor.numpy_dtype():
            raise WrappedModelError(
                f"{path}: {tensor.name} is {value.dtype} {value.shape}, contract says "
                f"{tensor.numpy_dtype()} {(2, *tensor.dims)}"
            )


def _save(model: onnx.ModelProto, dst: Path) -> None:
    dst = Path(dst)
    dst.parent.mkdir(parents=True, exist_ok=True)
    tmp = dst.with_suffix(dst.suffix + ".tmp")
    onnx.save(model, str(tmp))
    tmp.replace(dst)


def wrap_rtmdet(
    src: Path, dst: Path, max_detections: int = 100, input_size: int | None = None, verify: bool = True
) -> ModelSpec:
    """RTMDet end2end ONNX (mmdeploy, NMS in the graph) -> contract ``person_detector`` at ``dst``.

    ``input_size`` (S) is needed only for an export with symbolic height and width; ``verify`` runs the
    result once at batch 2 so a broken export fails here rather than in Triton.
    """
    if max_detections < 1:
        raise ValueError(f"max_detections must be >= 1, got {max_detections}")
    source = _load_source(src, "RTMDet", (DETS, LABELS), None if input_size is None else (input_size, input_size))
    height, width = source.height, source.width
    if height != width:
        raise SourceModelError(f"RTMDet {src}: input must be square (the contract's S x S), got {height} x {width}")
    dets, labels = source.outputs[DETS], source.outputs[LABELS]
    if dets.elem_type != TensorProto.FLOAT or len(dets.dims) != 3 or dets.dims[2] != 5:
        raise SourceModelError(f"RTMDet {src}: dets must be FLOAT [N, K, 5], got {dets.describe()}")
    if labels.elem_type not in (TensorProto.INT64, TensorProto.INT32) or len(labels.dims) != 2:
        raise SourceModelError(f"RTMDet {src}: labels must be INT64 or INT32 [N, K], got {labels.describe()}")
    batch: Dim = 1 if source.static_batch else _BATCH
    ir = source.model.ir_version
    pre = build_preprocessor(height, width, RTMDET_MEAN_BGR, RTMDET_STD_BGR, True, source.opset, ir, batch)
    post = build_rtmdet_decoder(height, max_detections, source.opset, ir, batch, labels.elem_type, dets.dims[1])
    spec = detector_spec(height, max_detections)
    model = _compose(pre, source, post, [BOXES, SCORES])
    doc = (
        f"RTMDet {Path(src).name} wrapped to the pose contract: uint8 RGB [B, {height}, {width}, 3] -> BGR, "
        f"mean {RTMDET_MEAN_BGR}, std {RTMDET_STD_BGR}; boxes / {height}, person (label 0) only, top {max_detections}"
    )
    _save(_finish(model, source, {BOXES: (max_detections, 4), SCORES: (max_detections,)}, doc), dst)
    if verify:
        _verify(Path(dst), spec)
    return spec


def wrap_rtmpose(src: Path, dst: Path, input_size: tuple[int, int] | None = None, verify: bool = True) -> ModelSpec:
    """RTMPose SimCC ONNX (mmdeploy / rtmlib) -> contract ``pose_estimator`` at ``dst``.

    ``input_size`` (H, W) is needed only for an export with symbolic height and width.
    """
    source = _load_source(src, "RTMPose", (SIMCC_X, SIMCC_Y), input_size)
    height, width = source.height, source.width
    bins: dict[str, int] = {}
    for name, tensor in source.outputs.items():
        ok = tensor.elem_type == TensorProto.FLOAT and len(tensor.dims) == 3 and tensor.dims[1] == NUM_KEYPOINTS
        if not ok or not isinstance(tensor.dims[2], int):
            raise SourceModelError(
                f"RTMPose {src}: {name} must be FLOAT [N, {NUM_KEYPOINTS}, bins] with fixed bins, "
                f"got {tensor.describe()}"
            )
        bins[name] = tensor.dims[2]
    ratio_x, ratio_y = bins[SIMCC_X] / width, bins[SIMCC_Y] / height
    if ratio_x != ratio_y or ratio_x < 1:
        raise SourceModelError(
            f"RTMPose {src}: simcc_x has {bins[SIMCC_X]} bins for width {width} and simcc_y {bins[SIMCC_Y]} for "
            f"height {height}; the split ratios {ratio_x} and {ratio_y} must be equal and >= 1"
        )
    batch: Dim = 1 if source.static_batch else _BATCH
    ir = source.model.ir_version
    pre = build_preprocessor(height, width, RTMPOSE_MEAN_RGB, RTMPOSE_STD_RGB, False, source.opset, ir, batch)
    post = build_simcc_decoder(bins[SIMCC_X], bins[SIMCC_Y], source.opset, ir, batch)
    spec = pose_spec(height, width)
    model = _compose(pre, source, post, [KEYPOINTS])
    doc = (
        f"RTMPose {Path(src).name} wrapped to the pose contract: uint8 RGB [B, {height}, {width}, 3], "
        f"mean {RTMPOSE_MEAN_RGB}, std {RTMPOSE_STD_RGB}; SimCC split ratio {ratio_x}, "
        "keypoints (x / W, y / H, mean of axis maxima)"
    )
    _save(_finish(model, source, {KEYPOINTS: (NUM_KEYPOINTS, 3)}, doc), dst)
    if verify:
        _verify(Path(dst), spec)
    return spec
