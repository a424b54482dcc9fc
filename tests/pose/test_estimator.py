"""PoseEstimator against real contract models run by onnxruntime from a model repository.

Two kinds of models:
- small contract graphs with known behaviour: a detector that boxes the bright region of channel 0,
  and a pose model that puts keypoints on the brightest pixel of each channel. A frame with a
  bright rectangle and dots at known places must come back with that box and those points.
- the RTMDet / RTMPose wrappers applied to the signature-identical fakes of test_openmmlab, to run
  the production path (several persons per frame, batching, NMS, class filter).
"""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from haic_tools.models import openmmlab as om
from services.core.settings import Settings
from services.pose import contract, geometry
from services.pose.estimator import Detection, PersonEvidence, PoseEstimator, PoseModelOutputError, nms
from services.pose.onnx_backend import OnnxRuntimeInference
from services.pose.repository import Batching, write_model
from tests.pose import detector_only, pose_estimator
from tests.pose.test_openmmlab import fake_rtmdet, fake_rtmpose

DET_S = 320
POSE_H, POSE_W = 256, 192


class RecordingBackend:
    """OnnxRuntimeInference that remembers the batch size of every call."""

    def __init__(self, repository: Path) -> None:
        self.inner = OnnxRuntimeInference(repository, threads=1)
        self.calls: list[tuple[str, int]] = []

    def input_size(self, model: str) -> tuple[int, int]:
        return self.inner.input_size(model)

    def infer(self, model: str, images: np.ndarray) -> dict[str, np.ndarray]:
        self.calls.append((model, len(images)))
        return self.inner.infer(model, images)

    def batches(self, model: str) -> list[int]:
        return [n for name, n in self.calls if name == model]


def _c(name: str, value: np.ndarray | float | int | list) -> onnx.TensorProto:
    return numpy_helper.from_array(np.asarray(value), name)


def _save(tmp_path: Path, name: str, nodes: list, inits: list, inputs: list, outputs: list) -> Path:
    graph = helper.make_graph(nodes, name, inputs, outputs, inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)], ir_version=7)
    onnx.checker.check_model(model)
    path = tmp_path / f"{name}.onnx"
    onnx.save(model, str(path))
    return path


def bright_region_detector(tmp_path: Path, size: int = DET_S, k: int = 3) -> Path:
    """Contract detector: one box around the pixels with red > 127 (score 1), K - 1 empty slots."""
    n = helper.make_node
    nodes = [
        n("Cast", ["image"], ["f"], to=TensorProto.FLOAT),
        n("Gather", ["f", "zero"], ["red"], axis=3),  # [B, S, S]
        n("Greater", ["red", "thresh"], ["m"]),
        n("Cast", ["m"], ["mask"], to=TensorProto.FLOAT),
        n("ReduceMax", ["mask"], ["col"], axes=[1], keepdims=0),  # [B, S]: any bright pixel in column x
        n("ReduceMax", ["mask"], ["row"], axes=[2], keepdims=0),
    ]
    for axis in ("col", "row"):
        nodes += [
            n("ArgMax", [axis], [f"{axis}_first"], axis=1, keepdims=1),
            n("Slice", [axis, "rev_start", "rev_end", "one_axis", "rev_step"], [f"{axis}_rev"]),
            n("ArgMax", [f"{axis}_rev"], [f"{axis}_r"], axis=1, keepdims=1),
            n("Sub", ["size_i", f"{axis}_r"], [f"{axis}_end"]),  # last bright index + 1
        ]
    nodes += [
        n("Concat", ["col_first", "row_first", "col_end", "row_end"], ["box_i"], axis=1),
        n("Cast", ["box_i"], ["box_px"], to=TensorProto.FLOAT),
        n("Div", ["box_px", "size_f"], ["box"]),
        n("Unsqueeze", ["box", "one_axis"], ["box3"]),
        n("Pad", ["box3", "pad_boxes"], ["boxes"]),
        n("ReduceMax", ["col"], ["found"], axes=[1], keepdims=1),
        n("Pad", ["found", "pad_scores"], ["scores"]),
    ]
    inits = [
        _c("zero", np.array(0, np.int64)),
        _c("thresh", np.array(127.0, np.float32)),
        _c("rev_start", np.array([-1], np.int64)),
        _c("rev_end", np.array([-(size + 1)], np.int64)),
        _c("rev_step", np.array([-1], np.int64)),
        _c("one_axis", np.array([1], np.int64)),
        _c("size_i", np.array(size, np.int64)),
        _c("size_f", np.array(size, np.float32)),
        _c("pad_boxes", np.array([0, 0, 0, 0, k - 1, 0], np.int64)),
        _c("pad_scores", np.array([0, 0, 0, k - 1], np.int64)),
    ]
    return _save(
        tmp_path,
        "bright_detector",
        nodes,
        inits,
        [helper.make_tensor_value_info("image", TensorProto.UINT8, ["b", size, size, 3])],
        [
            helper.make_tensor_value_info("boxes", TensorProto.FLOAT, ["b", k, 4]),
            helper.make_tensor_value_info("scores", TensorProto.FLOAT, ["b", k]),
        ],
    )


def brightest_pixel_pose(tmp_path: Path, height: int = POSE_H, width: int = POSE_W, num_keypoints: int = 17) -> Path:
    """Contract pose model: keypoint k is the brightest pixel of channel k % 3 (first in raster order),
    as (x / W, y / H, value / 255)."""
    n = helper.make_node
    nodes = [n("Cast", ["image"], ["f"], to=TensorProto.FLOAT)]
    per_channel = []
    for c in range(3):
        nodes += [
            n("Gather", ["f", f"ch{c}"], [f"plane{c}"], axis=3),
            n("Reshape", [f"plane{c}", "flat_shape"], [f"flat{c}"]),
            n("ArgMax", [f"flat{c}"], [f"idx{c}"], axis=1, keepdims=1),
            n("Div", [f"idx{c}", "w_i"], [f"y{c}_i"]),  # integer division
            n("Mod", [f"idx{c}", "w_i"], [f"x{c}_i"]),
            n("Cast", [f"x{c}_i"], [f"x{c}"], to=TensorProto.FLOAT),
            n("Cast", [f"y{c}_i"], [f"y{c}"], to=TensorProto.FLOAT),
            n("Div", [f"x{c}", "w_f"], [f"fx{c}"]),
            n("Div", [f"y{c}", "h_f"], [f"fy{c}"]),
            n("ReduceMax", [f"flat{c}"], [f"max{c}"], axes=[1], keepdims=1),
            n("Div", [f"max{c}", "full"], [f"conf{c}"]),
            n("Concat", [f"fx{c}", f"fy{c}", f"conf{c}"], [f"kp{c}"], axis=1),  # [B, 3]
            n("Unsqueeze", [f"kp{c}", "one_axis"], [f"kp{c}_3"]),  # [B, 1, 3]
        ]
        per_channel.append(f"kp{c}_3")
    nodes += [
        n("Concat", per_channel, ["by_channel"], axis=1),  # [B, 3, 3]
        n("Gather", ["by_channel", "which"], ["keypoints"], axis=1),
    ]
    inits = [_c(f"ch{c}", np.array(c, np.int64)) for c in range(3)] + [
        _c("flat_shape", np.array([0, height * width], np.int64)),
        _c("w_i", np.array(width, np.int64)),
        _c("w_f", np.array(width, np.float32)),
        _c("h_f", np.array(height, np.float32)),
        _c("full", np.array(255.0, np.float32)),
        _c("one_axis", np.array([1], np.int64)),
        _c("which", np.array([k % 3 for k in range(num_keypoints)], np.int64)),
    ]
    return _save(
        tmp_path,
        "brightest_pose",
        nodes,
        inits,
        [helper.make_tensor_value_info("image", TensorProto.UINT8, ["b", height, width, 3])],
        [helper.make_tensor_value_info("keypoints", TensorProto.FLOAT, ["b", num_keypoints, 3])],
    )


@pytest.fixture
def known_repo(tmp_path: Path) -> Path:
    repo = tmp_path / "repo"
    write_model(repo, contract.detector_spec(DET_S, 3), bright_region_detector(tmp_path), Batching(max_batch_size=8))
    write_model(repo, contract.pose_spec(POSE_H, POSE_W), brightest_pixel_pose(tmp_path), Batching(max_batch_size=8))
    return repo


def _scene(h: int, w: int, box: tuple[int, int, int, int], dots: list[tuple[int, int]]) -> np.ndarray:
    """Red 200 rectangle (the person) and one 255 dot per channel (red, green, blue) inside it."""
    frame = np.zeros((h, w, 3), dtype=np.uint8)
    x1, y1, x2, y2 = box
    frame[y1:y2, x1:x2, 0] = 200
    for channel, (x, y) in enumerate(dots):
        frame[y, x, channel] = 255
    return frame


@pytest.mark.parametrize(
    ("h", "w", "box", "dots"),
    [
        (720, 1280, (400, 120, 500, 280), [(430, 150), (470, 260), (401, 121)]),  # landscape
        (1280, 720, (100, 700, 220, 880), [(110, 710), (200, 800), (150, 879)]),  # portrait
        (200, 300, (40, 20, 120, 150), [(50, 30), (100, 140), (80, 90)]),  # smaller than the detector input
    ],
)
def test_known_models_give_back_the_box_and_the_dots(
    known_repo: Path, h: int, w: int, box: tuple[int, int, int, int], dots: list[tuple[int, int]]
) -> None:
    backend = RecordingBackend(known_repo)
    estimator = pose_estimator(backend, detector_only(0.5), pose_crop_padding=1.25, max_batch_size=4)
    frame = _scene(h, w, box, dots)
    (people,) = estimator.analyze([frame])
    assert len(people) == 1
    person = people[0]
    # the detector sees the rectangle at 320 / max(h, w) of its size: one input pixel of slack
    slack = max(h, w) / DET_S + 0.5
    np.testing.assert_allclose(person.box, box, atol=slack)
    assert person.box.dtype == np.float32 and person.score == 1.0
    assert person.keypoints.shape == (17, 3) and person.keypoints.dtype == np.float32
    # the crop upsamples here (box smaller than 192 x 256), so the brightest crop pixel is within half a
    # crop pixel of the dot, less than that in frame pixels
    for k in range(17):
        np.testing.assert_allclose(person.keypoints[k, :2], dots[k % 3], atol=0.75)
        # bilinear sampling spreads a one-pixel dot over its neighbours: the peak is dimmer, never zero
        assert 0.2 < person.keypoints[k, 2] <= 1.0
    assert backend.batches(contract.PERSON_DETECTOR) == [1] and backend.batches(contract.POSE_ESTIMATOR) == [1]


def test_keypoints_come_back_through_the_inverse_affine_when_the_crop_downsamples(known_repo: Path) -> None:
    # a person much larger than the 192 x 256 input: dots are blobs so they survive the downsampling
    h, w, box = 1080, 1920, (700, 100, 1100, 1000)
    frame = _scene(h, w, box, [])
    yy, xx = np.mgrid[0:h, 0:w]
    dots = [(800, 300), (1000, 900), (900, 550)]
    for channel, (x, y) in enumerate(dots):
        blob = 255 * np.exp(-((xx - x) ** 2 + (yy - y) ** 2) / (2 * 6.0**2))
        frame[..., channel] = np.maximum(frame[..., channel], blob.astype(np.uint8))
    backend = RecordingBackend(known_repo)
    (people,) = pose_estimator(backend, detector_only(0.5), pose_crop_padding=1.25).analyze([frame])
    (person,) = people
    _, scale = geometry.box_to_center_scale(person.box, 1.25, POSE_W / POSE_H)
    frame_px_per_crop_px = scale[0, 0] / POSE_W  # 843.75 / 192, about 4.4
    assert frame_px_per_crop_px > 4
    # the brightest crop pixel is within half a crop pixel of the blob's centre on each axis
    for k in range(17):
        np.testing.assert_allclose(person.keypoints[k, :2], dots[k % 3], atol=frame_px_per_crop_px / 2 + 0.1)


def test_an_empty_frame_has_nobody_and_skips_the_pose_model(known_repo: Path) -> None:
    backend = RecordingBackend(known_repo)
    result = pose_estimator(backend, detector_only(0.5)).analyze([np.zeros((480, 640, 3), np.uint8)] * 3)
    assert result == [[], [], []]
    assert backend.batches(contract.PERSON_DETECTOR) == [3] and backend.batches(contract.POSE_ESTIMATOR) == []
    assert pose_estimator(backend, detector_only(0.5)).analyze([]) == []


# --- the production path: wrapped RTMDet / RTMPose fakes


# dets in the 640 x 640 RTMDet input; frames below are 1280 x 720, letterboxed at scale 0.5 into 640 x 360
DETS = np.array(
    [
        [64, 32, 320, 300, 0.90],  # person A
        [70, 40, 322, 298, 0.85],  # duplicate of A (IoU > 0.5): suppressed by the estimator's NMS
        [400, 100, 480, 340, 0.70],  # person B
        [500, 10, 600, 200, 0.95],  # a dog: zeroed by the wrapper
        [10, 10, 60, 100, 0.25],  # person C below min_person_score
        [100, 380, 200, 600, 0.80],  # person D in the zero padding below the frame: no area, dropped
        [330, 50, 380, 150, 0.60],  # person E
        [560, 200, 632, 352, 0.50],  # person F
    ],
    np.float32,
)
LABELS = np.array([0, 0, 0, 16, 0, 0, 0, 0])


@pytest.fixture
def rtm_repo(tmp_path: Path) -> Path:
    repo = tmp_path / "repo"
    det_spec = om.wrap_rtmdet(
        fake_rtmdet(tmp_path / "rtmdet.onnx", dets=DETS, labels=LABELS), tmp_path / "det.onnx", max_detections=10
    )
    pose_spec = om.wrap_rtmpose(fake_rtmpose(tmp_path / "rtmpose.onnx", batch=1, seed=3), tmp_path / "pose.onnx")
    write_model(repo, det_spec, tmp_path / "det.onnx", Batching(max_batch_size=8))
    write_model(repo, pose_spec, tmp_path / "pose.onnx", Batching(max_batch_size=8))
    return repo


def test_rtm_models_detect_persons_in_frame_pixels(rtm_repo: Path) -> None:
    backend = RecordingBackend(rtm_repo)
    estimator = pose_estimator(backend, detector_only(0.3), max_batch_size=3, nms_iou=0.5)
    frames = [np.random.default_rng(i).integers(0, 256, (720, 1280, 3), dtype=np.uint8) for i in range(7)]
    detections = estimator.detect(frames)
    # A, B, E, F in score order, each box doubled (letterbox scale 0.5); F clipped at the frame bottom
    expected = np.array([[128, 64, 640, 600], [800, 200, 960, 680], [660, 100, 760, 300], [1120, 400, 1264, 704]])
    for found in detections:
        assert [d.score for d in found] == pytest.approx([0.90, 0.70, 0.60, 0.50])
        np.testing.assert_allclose(np.stack([d.box for d in found]), expected, rtol=1e-5)
    assert backend.batches(contract.PERSON_DETECTOR) == [3, 3, 1]


def test_rtm_models_batch_persons_across_frames(rtm_repo: Path) -> None:
    backend = RecordingBackend(rtm_repo)
    estimator = pose_estimator(backend, detector_only(0.3), pose_crop_padding=1.25, max_batch_size=5, nms_iou=0.5)
    frames = [np.random.default_rng(10 + i).integers(0, 256, (720, 1280, 3), dtype=np.uint8) for i in range(3)]
    people = estimator.analyze(frames)
    assert [len(p) for p in people] == [4, 4, 4]
    # 12 persons in pose batches of at most 5, persons of different frames sharing a batch
    assert backend.batches(contract.POSE_ESTIMATOR) == [5, 5, 2]
    assert backend.batches(contract.PERSON_DETECTOR) == [3]
    # each person's keypoints: the pose model run here on rtmlib's crop, mapped back with rtmlib's formula
    pose = backend.inner
    for frame, persons in zip(frames, people, strict=True):
        for person in persons:
            center, scale = geometry.box_to_center_scale(person.box, 1.25, POSE_W / POSE_H)
            matrix = geometry.warp_matrix(center[0], scale[0], POSE_W, POSE_H)
            crop = geometry.crop(frame, matrix, POSE_W, POSE_H)
            (raw,) = pose.infer(contract.POSE_ESTIMATOR, crop[None]).values()
            in_input = raw[0, :, :2] * [POSE_W, POSE_H]
            expected = in_input / [POSE_W, POSE_H] * scale[0] + center[0] - scale[0] / 2
            np.testing.assert_allclose(person.keypoints[:, :2], expected, rtol=1e-5, atol=1e-3)
            np.testing.assert_array_equal(person.keypoints[:, 2], raw[0, :, 2])


def test_crops_equal_rtmlib_top_down_affine(rtm_repo: Path) -> None:
    pre = pytest.importorskip("rtmlib.tools.pose_estimation.pre_processings")
    backend = RecordingBackend(rtm_repo)
    estimator = pose_estimator(backend, detector_only(0.3), pose_crop_padding=1.25)
    frame = np.random.default_rng(4).integers(0, 256, (720, 1280, 3), dtype=np.uint8)
    seen: list[np.ndarray] = []
    original = backend.infer

    def keep_crops(model: str, images: np.ndarray) -> dict[str, np.ndarray]:
        if model == contract.POSE_ESTIMATOR:
            seen.extend(images)
        return original(model, images)

    backend.infer = keep_crops  # type: ignore[method-assign]
    (persons,) = estimator.analyze([frame])
    for person, crop in zip(persons, seen, strict=True):
        c, s = pre.bbox_xyxy2cs(person.box.astype(np.float64), padding=1.25)
        theirs, _ = pre.top_down_affine((POSE_W, POSE_H), s, c, frame)
        assert np.abs(crop.astype(int) - theirs.astype(int)).max() <= 1


# --- small pieces and errors


def test_nms_keeps_the_best_of_overlapping_boxes() -> None:
    boxes = np.array([[0, 0, 10, 10], [1, 1, 11, 11], [20, 20, 30, 30], [0, 0, 10, 10.5]], np.float32)
    assert nms(boxes, np.array([0.5, 0.9, 0.4, 0.3]), iou=0.5) == [1, 2]
    # 0 and 1 overlap at IoU 0.68, 0 and 3 at 0.95
    assert nms(boxes, np.array([0.5, 0.9, 0.4, 0.3]), iou=0.9) == [1, 0, 2]
    assert nms(boxes, np.array([0.5, 0.9, 0.4, 0.3]), iou=0.96) == [1, 0, 2, 3]
    assert nms(np.zeros((0, 4)), np.zeros(0), iou=0.5) == []


def test_from_settings_takes_the_pose_fields(known_repo: Path) -> None:
    settings = Settings(min_person_score=0.6, pose_crop_padding=1.5, triton_max_batch_size=2, person_nms_iou=0.7)
    estimator = PoseEstimator.from_settings(OnnxRuntimeInference(known_repo), settings)
    assert (estimator.min_person_score, estimator.pose_crop_padding, estimator.max_batch_size) == (0.6, 1.5, 2)
    assert estimator.nms_iou == 0.7 and estimator.evidence == PersonEvidence.from_settings(settings)


def test_input_errors(known_repo: Path) -> None:
    estimator = pose_estimator(OnnxRuntimeInference(known_repo), detector_only(0.3))
    with pytest.raises(geometry.GeometryError, match="uint8"):
        estimator.detect([np.zeros((10, 10, 3), np.float32)])
    with pytest.raises(ValueError, match="2 frames but detections for 1"):
        estimator.estimate([np.zeros((10, 10, 3), np.uint8)] * 2, [[]])
    with pytest.raises(ValueError, match="max_batch_size"):
        pose_estimator(OnnxRuntimeInference(known_repo), detector_only(0.3), max_batch_size=0)


def test_a_pose_model_off_the_contract_is_reported(tmp_path: Path) -> None:
    # a model registered with the contract's spec whose graph returns 5 keypoints
    repo = tmp_path / "repo"
    write_model(repo, contract.pose_spec(POSE_H, POSE_W), brightest_pixel_pose(tmp_path, num_keypoints=5))
    backend = SimpleNamespace(
        input_size=OnnxRuntimeInference(repo).input_size,
        infer=OnnxRuntimeInference(repo).infer,
    )
    estimator = pose_estimator(backend, detector_only(0.3))
    detection = Detection(np.array([10, 10, 50, 90], np.float32), 0.9)
    with pytest.raises(PoseModelOutputError, match=r"keypoints has shape \(1, 5, 3\), expected \[1, 17, 3\]"):
        estimator.estimate([np.zeros((100, 100, 3), np.uint8)], [[detection]])
