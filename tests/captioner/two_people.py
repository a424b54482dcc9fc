"""A two-person test clip made from real footage: a COMPOSITE of the bundled juggling sample.

No registry package carries real footage of two people moving, full body and large in frame, in one
5 to 20 s shot (the closest, the demo of PyPI `sports2d`, shows two real people but so small that the
pose stage rejects it as `people_too_small`: 2.1% of the frame at the least, 5.4% on average). So this
module builds one, deterministically, from `samples/juggle_one_person.mp4` (SAM 2's demo, Apache-2.0):

* left half: the juggler as filmed, cropped to 640 x 720 around him (his box spans x 549 to 912 over
  the clip, so he stays whole and large);
* right half: the same crop mirrored, started `OFFSET_S` later (so the two do not move in step), with
  the blue garments recoloured: pixels of blue hue (the juggler's blue-gray shirt and navy trousers)
  are turned towards red and saturated. Skin, grass and the white ball keep their colours, so the two
  men differ by garment colour, which the captioner's appearance reader names, and not only by place.

Both people are the same real man, really moving; the composition (side by side, mirrored, recoloured)
is synthetic. Run `.venv/bin/python -m tests.captioner.two_people` to (re)build it and print its path.
"""

from __future__ import annotations

import hashlib
import os
from fractions import Fraction
from pathlib import Path

import av
import cv2
import numpy as np

REPO_ROOT = Path(__file__).resolve().parents[2]
SOURCE = REPO_ROOT / "samples" / "juggle_one_person.mp4"
SOURCE_SHA256 = "60d23773ad50389a5c2df9ba4ab05e9b4d39d21dfa7b75d15b46666ff7a4e2bb"
CACHE_DIR = REPO_ROOT / ".haic" / "test-videos"

CROP_X = (410, 1050)  # 640 px centred on the juggler (box x 549..912 in the recorded tracks)
OFFSET_S = 2.5  # the right-hand man runs this far ahead in the source; the clip lasts 10.29 - 2.5 s
# Recolouring of the right-hand man: OpenCV hue (0..180) of the blue band, its shift, saturation gain.
BLUE_HUE = (90, 135)
HUE_SHIFT = 70  # blue (~110) lands on red (~0)
SATURATION_GAIN = 2.5
MIN_SATURATION = 12  # grays below this have no hue worth turning
CRF = 18
# Bump when the recipe changes: it is part of the cache key.
RECIPE = f"v1 crop={CROP_X} offset={OFFSET_S} hue={BLUE_HUE}+{HUE_SHIFT} gain={SATURATION_GAIN} crf={CRF}"


def recolour(rgb: np.ndarray) -> np.ndarray:
    """Blue-hued pixels turned towards red and saturated; every other pixel unchanged."""
    hsv = cv2.cvtColor(rgb, cv2.COLOR_RGB2HSV)
    h, s = hsv[..., 0].astype(np.int16), hsv[..., 1].astype(np.float32)
    blue = (h >= BLUE_HUE[0]) & (h <= BLUE_HUE[1]) & (s >= MIN_SATURATION)
    hsv[..., 0] = np.where(blue, (h + HUE_SHIFT) % 180, h).astype(np.uint8)
    hsv[..., 1] = np.where(blue, np.minimum(s * SATURATION_GAIN, 255), s).astype(np.uint8)
    return cv2.cvtColor(hsv, cv2.COLOR_HSV2RGB)


def _frames(path: Path, skip: int):
    with av.open(str(path)) as container:
        for i, frame in enumerate(container.decode(video=0)):
            if i >= skip:
                yield frame.to_ndarray(format="rgb24")


def _source_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def build(out: Path, source: Path = SOURCE) -> Path:
    """Writes the composite to `out` (H.264 MP4, same frame rate as the source) and returns it."""
    found = _source_sha256(source)
    if found != SOURCE_SHA256:
        raise RuntimeError(f"{source}: sha256 {found}, expected {SOURCE_SHA256}")
    with av.open(str(source)) as probe:
        rate = probe.streams.video[0].average_rate or Fraction(24)
        height = probe.streams.video[0].height
    skip = round(OFFSET_S * rate)
    x0, x1 = CROP_X
    tmp = out.with_suffix(f".{os.getpid()}.tmp.mp4")
    out.parent.mkdir(parents=True, exist_ok=True)
    with av.open(str(tmp), "w") as container:
        stream = container.add_stream("libx264", rate=rate)
        stream.width, stream.height = 2 * (x1 - x0), height
        stream.pix_fmt = "yuv420p"
        # One thread and fixed settings: the same bytes on every machine with this PyAV.
        stream.options = {"crf": str(CRF), "preset": "medium", "threads": "1", "bf": "0"}
        stream.thread_count = 1
        for left, right in zip(_frames(source, 0), _frames(source, skip), strict=False):
            composite = np.hstack([left[:, x0:x1], recolour(np.ascontiguousarray(right[:, x0:x1][:, ::-1]))])
            for packet in stream.encode(av.VideoFrame.from_ndarray(np.ascontiguousarray(composite), format="rgb24")):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    tmp.replace(out)
    return out


def two_people_clip(cache_dir: Path = CACHE_DIR) -> Path:
    """The composite, built once per recipe into `cache_dir` (.haic/test-videos by default)."""
    key = hashlib.sha256(f"{SOURCE_SHA256} {RECIPE}".encode()).hexdigest()[:12]
    path = cache_dir / f"two_people_{key}.mp4"
    if not path.is_file():
        build(path)
    return path


if __name__ == "__main__":
    print(two_people_clip())
