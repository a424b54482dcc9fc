"""Image geometry between video frames and the two pose models' inputs.

Detector: the frame is scaled to fit S x S (aspect kept) and placed at the top-left corner with zero
padding, so a box comes back to frame pixels by one division per axis and no offset.

Pose estimator: the top-down crop of RTMPose (rtmlib ``bbox_xyxy2cs`` + ``top_down_affine``): the box
is enlarged by a padding factor around its centre, widened or heightened to the model's W / H aspect,
and that region is warped onto the W x H input. Keypoints come back through the inverse affine.

Coordinates are continuous pixel coordinates in OpenCV's convention: ``cv2.warpAffine`` samples
output pixel (i, j) at ``M^-1 (i, j)``, so pixel indices and point coordinates share one frame.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np


class GeometryError(ValueError):
    """An image or box that the geometry cannot work with (wrong shape, dtype or empty size)."""


@dataclass(frozen=True)
class Letterbox:
    """How a frame was placed in the detector's S x S input."""

    size: int  # S
    frame_height: int
    frame_width: int
    scale_x: float  # input pixels per frame pixel, from the resized width actually used
    scale_y: float

    def boxes_to_frame(self, boxes: np.ndarray) -> np.ndarray:
        """Boxes [N, 4] as fractions of S -> frame pixels, clipped to the frame."""
        boxes = np.asarray(boxes, dtype=np.float64).reshape(-1, 4) * self.size
        out = boxes / np.array([self.scale_x, self.scale_y, self.scale_x, self.scale_y])
        out[:, 0::2] = np.clip(out[:, 0::2], 0, self.frame_width)
        out[:, 1::2] = np.clip(out[:, 1::2], 0, self.frame_height)
        return out.astype(np.float32)

    def points_to_frame(self, points: np.ndarray) -> np.ndarray:
        """Points [N, 2+] whose x, y are fractions of S -> frame pixels (further columns kept as they are)."""
        out = np.asarray(points, dtype=np.float32).copy()
        out[:, 0] *= self.size / self.scale_x
        out[:, 1] *= self.size / self.scale_y
        return out


def check_frame(frame: np.ndarray) -> None:
    if not isinstance(frame, np.ndarray) or frame.dtype != np.uint8 or frame.ndim != 3 or frame.shape[2] != 3:
        shape = getattr(frame, "shape", None)
        dtype = getattr(frame, "dtype", type(frame).__name__)
        raise GeometryError(f"expected an RGB uint8 image [H, W, 3], got {dtype} {shape}")
    if frame.shape[0] == 0 or frame.shape[1] == 0:
        raise GeometryError(f"empty image {frame.shape}")


def letterbox(frame: np.ndarray, size: int) -> tuple[np.ndarray, Letterbox]:
    """Scales the frame to fit size x size, top-left, zero padding (the detector contract's input)."""
    check_frame(frame)
    h, w = frame.shape[:2]
    ratio = min(size / h, size / w)
    # round, not floor: 1920 * (640 / 1920) may land just under 640
    new_w = min(size, max(1, round(w * ratio)))
    new_h = min(size, max(1, round(h * ratio)))
    out = np.zeros((size, size, 3), dtype=np.uint8)
    if (new_w, new_h) == (w, h):
        out[:h, :w] = frame
    else:
        out[:new_h, :new_w] = cv2.resize(np.ascontiguousarray(frame), (new_w, new_h), interpolation=cv2.INTER_LINEAR)
    return out, Letterbox(size, h, w, new_w / w, new_h / h)


def box_to_center_scale(boxes: np.ndarray, padding: float, aspect: float) -> tuple[np.ndarray, np.ndarray]:
    """Boxes [N, 4] x1, y1, x2, y2 -> centres [N, 2] and scales [N, 2] (w, h) of the crop region.

    The box is multiplied by ``padding`` and then grown along one axis to width / height = ``aspect``
    (the model's W / H), as rtmlib's ``bbox_xyxy2cs`` followed by ``top_down_affine`` does, so the
    crop is never squashed.
    """
    boxes = np.asarray(boxes, dtype=np.float64).reshape(-1, 4)
    center = np.stack([boxes[:, 0] + boxes[:, 2], boxes[:, 1] + boxes[:, 3]], axis=1) * 0.5
    bw = (boxes[:, 2] - boxes[:, 0]) * padding
    bh = (boxes[:, 3] - boxes[:, 1]) * padding
    wide = bw > bh * aspect
    scale = np.stack([np.where(wide, bw, bh * aspect), np.where(wide, bw / aspect, bh)], axis=1)
    return center, scale


def center_scale_to_box(center: np.ndarray, scale: np.ndarray) -> np.ndarray:
    """The crop region as boxes [N, 4]."""
    center = np.asarray(center, dtype=np.float64).reshape(-1, 2)
    half = np.asarray(scale, dtype=np.float64).reshape(-1, 2) / 2
    return np.concatenate([center - half, center + half], axis=1)


def warp_matrix(center: np.ndarray, scale: np.ndarray, width: int, height: int) -> np.ndarray:
    """2 x 3 affine mapping the region (center, scale) of a frame onto a width x height image.

    Closed form of rtmlib's ``get_warp_matrix`` at rotation 0: the centre goes to (W/2, H/2) and the
    region's width and height to W and H.
    """
    cx, cy = (float(v) for v in np.asarray(center, dtype=np.float64).reshape(2))
    sw, sh = (float(v) for v in np.asarray(scale, dtype=np.float64).reshape(2))
    if sw <= 0 or sh <= 0:
        raise GeometryError(f"crop region has no area: scale {sw} x {sh}")
    kx, ky = width / sw, height / sh
    return np.array([[kx, 0.0, width / 2 - kx * cx], [0.0, ky, height / 2 - ky * cy]])


def invert_affine(matrix: np.ndarray) -> np.ndarray:
    """Inverse of a 2 x 3 affine."""
    full = np.vstack([np.asarray(matrix, dtype=np.float64).reshape(2, 3), [0.0, 0.0, 1.0]])
    return np.linalg.inv(full)[:2]


def apply_affine(points: np.ndarray, matrix: np.ndarray) -> np.ndarray:
    """Points [..., 2] through a 2 x 3 affine."""
    points = np.asarray(points, dtype=np.float64)
    m = np.asarray(matrix, dtype=np.float64)
    return points @ m[:, :2].T + m[:, 2]


def crop(frame: np.ndarray, matrix: np.ndarray, width: int, height: int) -> np.ndarray:
    """The width x height crop that ``matrix`` (frame -> crop) selects; outside the frame is zero."""
    check_frame(frame)
    return cv2.warpAffine(
        np.ascontiguousarray(frame),
        np.asarray(matrix, dtype=np.float64),
        (width, height),
        flags=cv2.INTER_LINEAR,
        borderMode=cv2.BORDER_CONSTANT,
        borderValue=(0, 0, 0),
    )


def keypoints_to_frame(keypoints: np.ndarray, inverse: np.ndarray, width: int, height: int) -> np.ndarray:
    """Keypoints [K, 3] as (x / W, y / H, confidence) of a crop -> frame pixels and the same confidence.

    ``inverse`` is the crop -> frame affine (``invert_affine(warp_matrix(...))``).
    """
    keypoints = np.asarray(keypoints, dtype=np.float64)
    crop_px = keypoints[..., :2] * np.array([width, height], dtype=np.float64)
    out = np.empty(keypoints.shape, dtype=np.float32)
    out[..., :2] = apply_affine(crop_px, inverse)
    out[..., 2] = keypoints[..., 2]
    return out
