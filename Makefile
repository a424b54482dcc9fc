# Set-up and everyday commands. `make demo` and `make test` do all the set-up on a fresh clone.
PYTHON ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: install demo up test lint protos bench clean

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

install: $(STAMP)

# Starts broker + services, uploads the bundled sample, prints its outcome, stays up until Ctrl-C.
demo: install
	$(BIN)/haic up --submit-sample

up: install
	$(BIN)/haic up

lint: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

# Unit tests, tests against a real tansu broker, and the end-to-end test of the launched stack.
test: lint
	$(BIN)/pytest

protos: install
	$(BIN)/haic protos

bench: install
	$(BIN)/python bench/scene_split.py
	$(BIN)/python bench/upload_throughput.py

clean:
	rm -rf $(VENV) .haic .pytest_cache .ruff_cache
