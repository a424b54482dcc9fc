"""contract.InferenceBackend over Triton's gRPC API (tritonclient), with retries and Prometheus metrics.

The same client talks to the embedded PyTriton server and to NVIDIA Triton in production. A batch of
N images becomes ceil(N / max_batch_size) requests sent at once (async_infer), so Triton's dynamic
batcher can merge them with other clients' requests; results come back in the order of the images.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TypeVar

import numpy as np
import tritonclient.grpc as grpcclient
from prometheus_client import Counter, Histogram
from tritonclient.utils import InferenceServerException

from services.core.bus import DependencyUnavailableError
from services.pose.contract import IMAGE, PERSON_DETECTOR, POSE_ESTIMATOR

log = logging.getLogger(__name__)

T = TypeVar("T")

REQUEST_SECONDS = Histogram(
    "haic_triton_request_seconds",
    "Latency of one Triton inference request (one chunk of at most max_batch_size images), retries excluded",
    ["model"],
    buckets=(0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30),
)
BATCH_SIZE = Histogram(
    "haic_triton_batch_size", "Images per Triton inference request", ["model"], buckets=(1, 2, 4, 8, 16, 32, 64)
)
ERRORS = Counter("haic_triton_errors_total", "Failed Triton requests by gRPC status code", ["model", "code"])

# Transient: the server is down, restarting, overloaded or slow. Anything else (bad shape, unknown
# model) would fail the same way again.
RETRYABLE = frozenset({"UNAVAILABLE", "DEADLINE_EXCEEDED", "RESOURCE_EXHAUSTED"})


class TritonUnavailableError(DependencyUnavailableError):
    """Triton did not answer after every retry; the clip is fine and waits for the server to come back."""

    def __init__(self, model: str, code: str, message: str) -> None:
        super().__init__(f"Triton unavailable for {model or 'the server'}: {code}: {message}")
        self.model = model
        self.code = code


class TritonInferenceError(RuntimeError):
    """Triton answered with an error that retrying cannot fix (bad input, unknown model, model failure)."""

    def __init__(self, model: str, code: str, message: str) -> None:
        super().__init__(f"Triton inference on {model} failed: {code}: {message}")
        self.model = model
        self.code = code


def status_code(error: InferenceServerException) -> str:
    """'StatusCode.UNAVAILABLE' -> 'UNAVAILABLE'."""
    return str(error.status() or "UNKNOWN").rsplit(".", 1)[-1]


@dataclass(frozen=True)
class _Metadata:
    input_shape: tuple[int, ...]  # without the batch dimension
    outputs: dict[str, tuple[str, tuple[int, ...]]]  # name -> (Triton datatype, shape without batch)


_NUMPY = {"UINT8": np.uint8, "FP32": np.float32, "INT32": np.int32, "INT64": np.int64, "FP16": np.float16}


class TritonInference:
    """InferenceBackend on a Triton server. Thread-safe: the gRPC client may be shared between threads."""

    def __init__(
        self,
        url: str,
        *,
        timeout_s: float,
        retries: int,
        max_batch_size: int,
        backoff_s: float = 0.25,
    ) -> None:
        """timeout_s, retries and max_batch_size: the service passes HAIC_TRITON_TIMEOUT_S, HAIC_TRITON_RETRIES
        and HAIC_TRITON_MAX_BATCH_SIZE. backoff_s, the first wait before a retry (doubling each time), is the
        client's own pacing, not a tunable of the pipeline."""
        if max_batch_size < 1 or retries < 1:
            raise ValueError("max_batch_size and retries must be at least 1")
        self.url = url
        self.timeout_s = timeout_s
        self.retries = retries
        self.max_batch_size = max_batch_size
        self.backoff_s = backoff_s
        self._client = grpcclient.InferenceServerClient(url)
        self._metadata: dict[str, _Metadata] = {}
        self._lock = threading.Lock()

    # --- metadata -------------------------------------------------------------------------------

    def _model_metadata(self, model: str) -> _Metadata:
        with self._lock:
            cached = self._metadata.get(model)
        if cached is not None:
            return cached
        reply = self._call(model, lambda: self._client.get_model_metadata(model, client_timeout=self.timeout_s))
        inputs = {t.name: tuple(t.shape[1:]) for t in reply.inputs}
        if IMAGE not in inputs:
            raise TritonInferenceError(model, "INVALID_MODEL", f"no {IMAGE!r} input; inputs are {sorted(inputs)}")
        meta = _Metadata(inputs[IMAGE], {t.name: (t.datatype, tuple(t.shape[1:])) for t in reply.outputs})
        with self._lock:
            self._metadata[model] = meta
        return meta

    def input_size(self, model: str) -> tuple[int, int]:
        shape = self._model_metadata(model).input_shape
        return int(shape[0]), int(shape[1])

    # --- inference ------------------------------------------------------------------------------

    def infer(self, model: str, images: np.ndarray) -> dict[str, np.ndarray]:
        meta = self._model_metadata(model)
        images = np.ascontiguousarray(images, dtype=np.uint8)
        if images.ndim != 4 or images.shape[1:] != meta.input_shape:
            raise ValueError(
                f"{model}: expected images [N, {', '.join(map(str, meta.input_shape))}], got {images.shape}"
            )
        if len(images) == 0:
            return {name: np.zeros((0, *shape), _NUMPY[dtype]) for name, (dtype, shape) in meta.outputs.items()}
        chunks = [images[i : i + self.max_batch_size] for i in range(0, len(images), self.max_batch_size)]
        results: list[grpcclient.InferResult | None] = [None] * len(chunks)
        done: queue.Queue[tuple[int, grpcclient.InferResult | None, InferenceServerException | None]] = queue.Queue()
        attempts = [0] * len(chunks)
        started = [0.0] * len(chunks)

        def submit(index: int) -> None:
            attempts[index] += 1
            started[index] = time.perf_counter()
            chunk = chunks[index]
            tensor = grpcclient.InferInput(IMAGE, list(chunk.shape), "UINT8")
            tensor.set_data_from_numpy(chunk)
            try:
                self._client.async_infer(
                    model,
                    [tensor],
                    callback=lambda result, error: done.put((index, result, error)),
                    client_timeout=self.timeout_s,
                )
            except InferenceServerException as error:
                done.put((index, None, error))

        # Every chunk goes out before any answer is awaited: the server batches them together.
        for index in range(len(chunks)):
            submit(index)
        pending = len(chunks)
        while pending:
            index, result, error = done.get()
            if error is None:
                REQUEST_SECONDS.labels(model).observe(time.perf_counter() - started[index])
                BATCH_SIZE.labels(model).observe(len(chunks[index]))
                results[index] = result
                pending -= 1
                continue
            code = status_code(error)
            ERRORS.labels(model, code).inc()
            if code not in RETRYABLE and self._server_ready():
                raise TritonInferenceError(model, code, error.message() or str(error))
            if attempts[index] >= self.retries:
                raise TritonUnavailableError(model, code, error.message() or str(error))
            delay = self.backoff_s * 2 ** (attempts[index] - 1)
            log.warning("Triton %s: %s on attempt %d; retrying in %.2f s", model, code, attempts[index], delay)
            time.sleep(delay)
            submit(index)
        return {name: np.concatenate([r.as_numpy(name) for r in results if r is not None]) for name in meta.outputs}

    # --- health ---------------------------------------------------------------------------------

    def _call(self, model: str, fn: Callable[[], T]) -> T:
        """A unary call with the same retry policy as inference."""
        for attempt in range(1, self.retries + 1):
            try:
                return fn()
            except InferenceServerException as error:
                code = status_code(error)
                ERRORS.labels(model, code).inc()
                if code not in RETRYABLE and self._server_ready():
                    raise TritonInferenceError(model, code, error.message() or str(error)) from error
                if attempt == self.retries:
                    raise TritonUnavailableError(model, code, error.message() or str(error)) from error
                time.sleep(self.backoff_s * 2 ** (attempt - 1))
        raise AssertionError("unreachable")

    def _server_ready(self) -> bool:
        """Whether an error is the request's or the server's: a server that went away in the middle of a call
        (CANCELLED, INTERNAL "Socket closed") or is loading its models again after a restart (strict
        readiness) is unavailable, and the message waits for it instead of counting an attempt toward the
        dead-letter topic. A server that is ready and still refuses means the request is at fault."""
        try:
            return bool(self._client.is_server_ready(client_timeout=min(self.timeout_s, 2.0)))
        except InferenceServerException:
            return False

    def is_ready(self, models: tuple[str, ...] = (PERSON_DETECTOR, POSE_ESTIMATOR)) -> bool:
        try:
            if not self._client.is_server_ready(client_timeout=min(self.timeout_s, 2.0)):
                return False
            return all(self._client.is_model_ready(m, client_timeout=min(self.timeout_s, 2.0)) for m in models)
        except InferenceServerException:
            return False

    def wait_ready(self, timeout_s: float, models: tuple[str, ...] = (PERSON_DETECTOR, POSE_ESTIMATOR)) -> None:
        """Returns once the server and the models are ready; TritonUnavailableError after timeout_s."""
        deadline = time.monotonic() + timeout_s
        while not self.is_ready(models):
            if time.monotonic() > deadline:
                raise TritonUnavailableError(
                    ",".join(models), "UNAVAILABLE", f"{self.url} not ready after {timeout_s} s"
                )
            time.sleep(0.2)

    def close(self) -> None:
        self._client.close()

    def __enter__(self) -> TritonInference:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
