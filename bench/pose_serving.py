"""Serving overhead of the embedded Triton: the pose models through Triton against the same ONNX in-process.

    .venv/bin/python bench/pose_serving.py [--repository DIR] [--threads 1] [--seconds 5]

The repository defaults to the one `haic models build` writes (<models_dir>/repository). For each of
person_detector and pose_estimator, frames/s at batch 1 and batch 8 of:

- in-process: `OnnxRuntimeInference`, one onnxruntime session in this process;
- triton: `TritonInference` against an `EmbeddedTriton` started here (gRPC on localhost, PyTriton's
  Python backend, onnxruntime session in the server process), one request in flight at a time, so
  both sides do the same work one call after another;
- triton 8x1 (batch 8 rows only): the 8 images as 8 concurrent single-image requests, which Triton's
  dynamic batcher merges (preferred sizes and queue delay from config.pbtxt).

Both sides build their sessions with the same `onnx_backend.create_session` and the same intra-op
thread count (--threads; inter-op 1, sequential), and run the same onnxruntime release. Inputs are
random uint8 images at each model's input size. After a warm-up, the sides of one row group are
called in turn (one call each per round) for --seconds per side, so other load on the machine and
clock drift hit them alike; frames/s = frames / time spent in that side's calls, p50 = median wall
time of one call. CPU ms/frame counts every process that works: this one for in-process; the
server's process tree plus this client for Triton. overhead = in-process frames/s / Triton frames/s
(1.00 means serving is free). The load average printed first says how busy the machine was.
"""

from __future__ import annotations

import argparse
import os
import resource
import statistics
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

REPO_ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO_ROOT))

from services.core.settings import Settings  # noqa: E402
from services.pose.contract import PERSON_DETECTOR, POSE_ESTIMATOR  # noqa: E402
from services.pose.onnx_backend import OnnxRuntimeInference  # noqa: E402
from services.pose.repository import read_config  # noqa: E402
from services.pose.triton_client import TritonInference  # noqa: E402
from services.pose.triton_process import EmbeddedTriton, ProcessId, TritonPorts  # noqa: E402

BATCHES = (1, 8)
TICKS = os.sysconf("SC_CLK_TCK")


@dataclass(frozen=True)
class Measurement:
    frames_per_s: float
    p50_ms: float
    cpu_ms_per_frame: float


def _tree_cpu_s(tree: list[ProcessId]) -> float:
    """User + system CPU seconds of the processes still running in the server's tree."""
    total = 0
    for process in tree:
        try:
            fields = Path(f"/proc/{process.pid}/stat").read_text().rsplit(")", 1)[1].split()
        except FileNotFoundError:
            continue
        total += int(fields[11]) + int(fields[12])  # utime, stime
    return total / TICKS


def _self_cpu_s() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def compare(
    sides: dict[str, Callable[[], object]], trees: dict[str, list[ProcessId]], frames_per_call: int, seconds: float
) -> dict[str, Measurement]:
    """Calls the sides in turn, one call each per round, for `seconds` per side, so that drift and
    other load on the machine hit every side alike."""
    for call in sides.values():
        for _ in range(3):  # warm-up: sessions' first runs, gRPC channel, server-side allocations
            call()
    latencies: dict[str, list[float]] = {side: [] for side in sides}
    cpu = dict.fromkeys(sides, 0.0)
    deadline = time.perf_counter() + seconds * len(sides)
    while time.perf_counter() < deadline:
        for side, call in sides.items():
            cpu_before = _self_cpu_s() + _tree_cpu_s(trees[side])
            started = time.perf_counter()
            call()
            latencies[side].append(time.perf_counter() - started)
            cpu[side] += _self_cpu_s() + _tree_cpu_s(trees[side]) - cpu_before
    results = {}
    for side, values in latencies.items():
        frames = frames_per_call * len(values)
        results[side] = Measurement(frames / sum(values), statistics.median(values) * 1000, cpu[side] / frames * 1000)
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repository", type=Path, default=None, help="model repository (default: haic models build's)")
    parser.add_argument("--threads", type=int, default=1, help="onnxruntime intra-op threads, both sides")
    parser.add_argument("--seconds", type=float, default=5.0, help="measured time per side and figure")
    args = parser.parse_args()
    settings = Settings()
    repository = args.repository or settings.models_dir / "repository"
    names = [m for m in (PERSON_DETECTOR, POSE_ESTIMATOR) if (repository / m).is_dir()]
    if not names:
        sys.exit(f"no pose models in {repository}; run `haic models build` or pass --repository")

    print(f"repository {repository.resolve()}")
    print(
        f"onnxruntime intra-op threads: {args.threads} on both sides (inter-op 1, sequential); "
        f"{os.cpu_count()} CPUs; sides called in turn, {args.seconds:g} s each; load average {os.getloadavg()[0]:.2f}"
    )
    local = OnnxRuntimeInference(repository, threads=args.threads)
    server = EmbeddedTriton(repository, settings.triton_python, TritonPorts.free(), threads=args.threads)
    with server:
        print(f"embedded Triton ready in {server.ready_s:.1f} s ({len(server.tree)} processes)")
        header = (
            f"{'model':16}{'batch':>6}{'side':>14}{'frames/s':>10}{'p50 ms':>9}{'CPU ms/frame':>14}{'overhead':>10}"
        )
        print(header)
        print("-" * len(header))
        for name in names:
            config = read_config(repository / name)
            height, width = local.input_size(name)
            for batch in BATCHES:
                if batch > max(config.max_batch_size, 1):
                    continue
                images = np.random.default_rng(batch).integers(0, 256, (batch, height, width, 3), dtype=np.uint8)
                clients = [
                    TritonInference(server.url, timeout_s=60, retries=settings.triton_retries, max_batch_size=batch)
                ]
                sides: dict[str, Callable[[], object]] = {
                    "in-process": lambda: local.infer(name, images),  # noqa: B023
                    "triton": lambda c=clients[0]: c.infer(name, images),  # noqa: B023
                }
                if batch > 1:
                    clients.append(
                        TritonInference(server.url, timeout_s=60, retries=settings.triton_retries, max_batch_size=1)
                    )
                    sides[f"triton {batch}x1"] = lambda c=clients[1]: c.infer(name, images)  # noqa: B023
                trees = {side: [] if side == "in-process" else server.tree for side in sides}
                measured = compare(sides, trees, batch, args.seconds)
                for client in clients:
                    client.close()
                baseline = measured["in-process"].frames_per_s
                for side, m in measured.items():
                    overhead = "" if side == "in-process" else f"{baseline / m.frames_per_s:.2f}"
                    print(
                        f"{name:16}{batch:>6}{side:>14}{m.frames_per_s:>10.1f}{m.p50_ms:>9.2f}"
                        f"{m.cpu_ms_per_frame:>14.2f}{overhead:>10}"
                    )
    print("overhead = in-process frames/s / Triton frames/s; the aim is <= 1.15 at batch 8")


if __name__ == "__main__":
    main()
