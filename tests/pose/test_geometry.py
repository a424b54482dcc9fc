"""Letterbox and top-down crop geometry, checked by round trips and against rtmlib where it is installed."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest

from services.pose import geometry as g

POSE_W, POSE_H = 192, 256


def _rect_frame(h: int, w: int, box: tuple[int, int, int, int]) -> np.ndarray:
    frame = np.zeros((h, w, 3), dtype=np.uint8)
    x1, y1, x2, y2 = box
    frame[y1:y2, x1:x2] = 255
    return frame


@pytest.mark.parametrize(("h", "w"), [(1080, 1920), (1920, 1080), (480, 640), (640, 640), (300, 200), (17, 1000)])
def test_letterbox_places_the_frame_top_left_and_maps_boxes_back(h: int, w: int) -> None:
    box = (w // 5, h // 4, w // 5 + max(2, w // 3), h // 4 + max(2, h // 2))
    image, lb = g.letterbox(_rect_frame(h, w, box), 640)
    assert image.shape == (640, 640, 3) and image.dtype == np.uint8
    # the long side fills the input, the rest is zero
    assert max(round(w * lb.scale_x), round(h * lb.scale_y)) == 640
    assert not image[round(h * lb.scale_y) :, :].any() and not image[:, round(w * lb.scale_x) :].any()
    # the white rectangle's extent in the input, as a box in fractions of S, comes back to the frame box
    ys, xs = np.nonzero(image[..., 0] > 127)
    found = np.array([[xs.min(), ys.min(), xs.max() + 1, ys.max() + 1]]) / 640
    back = lb.boxes_to_frame(found)[0]
    tolerance = 1.0 / min(lb.scale_x, lb.scale_y) + 0.5  # one input pixel, in frame pixels
    np.testing.assert_allclose(back, box, atol=tolerance)


def test_letterbox_boxes_are_clipped_to_the_frame() -> None:
    _, lb = g.letterbox(np.zeros((360, 640, 3), dtype=np.uint8), 640)
    # a box reaching into the zero padding below the frame ends at the frame's bottom edge
    back = lb.boxes_to_frame(np.array([[-0.1, 0.2, 1.2, 0.9]]))[0]
    np.testing.assert_allclose(back, [0, 128, 640, 360])


def test_letterbox_matches_rtmlib_resize() -> None:
    rtmdet = pytest.importorskip("rtmlib.tools.object_detection.rtmdet")
    rng = np.random.default_rng(0)
    frame = rng.integers(0, 256, (720, 1280, 3), dtype=np.uint8)
    ours, lb = g.letterbox(frame, 640)
    theirs, ratio = rtmdet.RTMDet.preprocess(SimpleNamespace(model_input_size=(640, 640), mean=None), frame)
    assert lb.scale_x == pytest.approx(ratio) and lb.scale_y == pytest.approx(ratio)
    # same pixels where the frame is; rtmlib pads with 114, the contract with 0
    np.testing.assert_array_equal(ours[:360], theirs[:360])
    assert not ours[360:].any() and (theirs[360:] == 114).all()


def test_rejects_what_is_not_an_rgb_uint8_image() -> None:
    with pytest.raises(g.GeometryError, match="uint8"):
        g.letterbox(np.zeros((10, 10, 3), dtype=np.float32), 64)
    with pytest.raises(g.GeometryError, match=r"\[H, W, 3\]"):
        g.letterbox(np.zeros((10, 10), dtype=np.uint8), 64)
    with pytest.raises(g.GeometryError, match="empty"):
        g.letterbox(np.zeros((0, 10, 3), dtype=np.uint8), 64)


def test_center_scale_pads_and_fixes_the_aspect() -> None:
    aspect = POSE_W / POSE_H  # 0.75
    boxes = np.array(
        [
            [100, 100, 200, 500],  # tall: 100 x 400 -> height rules: 1.25 * 400 = 500, width 375
            [0, 0, 400, 100],  # wide: 400 x 100 -> width rules: 500, height 666.67
            [10, 20, 40, 60],  # exactly 3:4 -> 37.5 x 50
        ],
        dtype=np.float64,
    )
    center, scale = g.box_to_center_scale(boxes, 1.25, aspect)
    np.testing.assert_allclose(center, [[150, 300], [200, 50], [25, 40]])
    np.testing.assert_allclose(scale, [[375, 500], [500, 500 / aspect], [37.5, 50]])
    np.testing.assert_allclose(scale[:, 0] / scale[:, 1], aspect)
    region = g.center_scale_to_box(center, scale)
    np.testing.assert_allclose(region[0], [150 - 187.5, 50, 150 + 187.5, 550])


def test_center_scale_and_warp_match_rtmlib() -> None:
    pre = pytest.importorskip("rtmlib.tools.pose_estimation.pre_processings")
    rng = np.random.default_rng(1)
    frame = rng.integers(0, 256, (480, 640, 3), dtype=np.uint8)
    for box in ([50.5, 60.25, 210.0, 400.0], [300, 100, 620, 180], [0, 0, 640, 480]):
        c_theirs, s_theirs = pre.bbox_xyxy2cs(np.array(box), padding=1.25)
        crop_theirs, s_fixed = pre.top_down_affine((POSE_W, POSE_H), s_theirs, c_theirs, frame)
        center, scale = g.box_to_center_scale(np.array(box), 1.25, POSE_W / POSE_H)
        np.testing.assert_allclose(center[0], c_theirs)
        np.testing.assert_allclose(scale[0], s_fixed)
        m = g.warp_matrix(center[0], scale[0], POSE_W, POSE_H)
        np.testing.assert_allclose(m, pre.get_warp_matrix(c_theirs, s_fixed, 0, (POSE_W, POSE_H)), rtol=1e-5, atol=1e-3)
        np.testing.assert_allclose(
            g.invert_affine(m), pre.get_warp_matrix(c_theirs, s_fixed, 0, (POSE_W, POSE_H), inv=True), atol=1e-3
        )
        ours = g.crop(frame, m, POSE_W, POSE_H)
        assert ours.shape == (POSE_H, POSE_W, 3)
        # rtmlib's matrix is float32 from cv2.getAffineTransform; a rare pixel may round the other way
        assert np.abs(ours.astype(int) - crop_theirs.astype(int)).max() <= 1


def test_keypoints_back_to_the_frame_match_rtmlib_postprocess() -> None:
    rtmpose = pytest.importorskip("rtmlib.tools.pose_estimation.rtmpose")
    post = pytest.importorskip("rtmlib.tools.pose_estimation.post_processings")
    rng = np.random.default_rng(2)
    simcc_x = rng.random((1, 17, POSE_W * 2)).astype(np.float32)
    simcc_y = rng.random((1, 17, POSE_H * 2)).astype(np.float32)
    center, scale = g.box_to_center_scale(np.array([120.0, 40.0, 260.0, 410.0]), 1.25, POSE_W / POSE_H)
    state = SimpleNamespace(model_input_size=(POSE_W, POSE_H))
    theirs, _ = rtmpose.RTMPose.postprocess(state, (simcc_x, simcc_y), center[0], scale[0])
    locs, vals = post.get_simcc_maximum(simcc_x, simcc_y)
    fractions = np.concatenate([locs[0] / 2 / [POSE_W, POSE_H], vals[0][:, None]], axis=1)
    inverse = g.invert_affine(g.warp_matrix(center[0], scale[0], POSE_W, POSE_H))
    ours = g.keypoints_to_frame(fractions, inverse, POSE_W, POSE_H)
    np.testing.assert_allclose(ours[:, :2], theirs[0], atol=1e-3)
    np.testing.assert_allclose(ours[:, 2], vals[0])


def test_a_point_goes_into_the_crop_and_back() -> None:
    rng = np.random.default_rng(3)
    for _ in range(50):
        x1, y1 = rng.uniform(0, 500, 2)
        box = np.array([x1, y1, x1 + rng.uniform(5, 400), y1 + rng.uniform(5, 400)])
        center, scale = g.box_to_center_scale(box, 1.25, POSE_W / POSE_H)
        m = g.warp_matrix(center[0], scale[0], POSE_W, POSE_H)
        points = rng.uniform(box[:2], box[2:], (17, 2))
        in_crop = g.apply_affine(points, m)
        # the padded box lies inside the crop
        assert (in_crop >= 0).all() and (in_crop <= [POSE_W, POSE_H]).all()
        fractions = np.concatenate([in_crop / [POSE_W, POSE_H], np.ones((17, 1))], axis=1)
        back = g.keypoints_to_frame(fractions, g.invert_affine(m), POSE_W, POSE_H)
        np.testing.assert_allclose(back[:, :2], points, rtol=1e-6, atol=1e-3)


def test_crop_content_lands_where_the_affine_says() -> None:
    # a single bright pixel in the frame appears in the crop at the affine image of its position
    frame = np.zeros((400, 700, 3), dtype=np.uint8)
    frame[233, 411] = 255
    center, scale = g.box_to_center_scale(np.array([380.0, 150.0, 470.0, 330.0]), 1.0, POSE_W / POSE_H)
    m = g.warp_matrix(center[0], scale[0], POSE_W, POSE_H)
    out = g.crop(frame, m, POSE_W, POSE_H)
    y, x = np.unravel_index(np.argmax(out[..., 0]), out.shape[:2])
    np.testing.assert_allclose([x, y], g.apply_affine(np.array([411.0, 233.0]), m), atol=1.0)


def test_warp_rejects_an_empty_region() -> None:
    with pytest.raises(g.GeometryError, match="no area"):
        g.warp_matrix(np.array([10.0, 10.0]), np.array([0.0, 5.0]), POSE_W, POSE_H)
