# The two README commands. Each creates .venv if missing and installs the CPU-only
# dependencies (the local torch==2.13.0 CPU build first, so no multi-GB CUDA wheel is fetched).
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
TORCH_SPEC ?= torch==2.13.0
CORES ?= 2

.PHONY: smoke test test-fast lint bench clean-results

$(VENV)/.installed: pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q "$(TORCH_SPEC)"
	$(PY) -m pip install -q -e ".[test]"
	touch $@

# (1) the main job on a CPU-sized default
smoke: $(VENV)/.installed
	PATH=$(CURDIR)/$(VENV)/bin:$$PATH $(PY) -m snakemake --cores $(CORES) --configfile config/smoke.yaml

# (2) the test suite (CI runs exactly this)
test: $(VENV)/.installed
	PATH=$(CURDIR)/$(VENV)/bin:$$PATH $(PY) -m pytest

# (3) the fast lane for development: everything but the slow and GPU tests (a few minutes)
test-fast: $(VENV)/.installed
	PATH=$(CURDIR)/$(VENV)/bin:$$PATH $(PY) -m pytest -m "not slow and not gpu"

lint: $(VENV)/.installed
	$(VENV)/bin/ruff check drama analysis tests workflow benchmarks
