# The two README commands. Each creates .venv if missing and installs the CPU-only
# dependencies (the local torch==2.13.0 CPU build first, so no multi-GB CUDA wheel is fetched).
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
TORCH_SPEC ?= torch==2.13.0
CORES ?= 2
# apt-get needs root: sudo when not root (CI images usually run as root)
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)

.PHONY: smoke test test-fast lint bench clean-results chromium

$(VENV)/.installed: pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q "$(TORCH_SPEC)"
	$(PY) -m pip install -q -e ".[test]"
	touch $@

# (1) the main job on a CPU-sized default (profiles/cpu: one thread per run, no GPU requested)
smoke: $(VENV)/.installed
	PATH=$(CURDIR)/$(VENV)/bin:$$PATH $(PY) -m snakemake --cores $(CORES) \
		--configfile config/smoke.yaml --workflow-profile profiles/cpu

# (2) the test suite (CI runs exactly this). The report test renders the Snakemake report in
# headless Chromium (Debian package `chromium`), installed here when missing.
test: $(VENV)/.installed chromium
	PATH=$(CURDIR)/$(VENV)/bin:$$PATH $(PY) -m pytest

# (3) the fast lane for development: everything but the slow and GPU tests (a few minutes)
test-fast: $(VENV)/.installed
	PATH=$(CURDIR)/$(VENV)/bin:$$PATH $(PY) -m pytest -m "not slow and not gpu"

chromium:
	@command -v chromium >/dev/null 2>&1 || command -v chromium-browser >/dev/null 2>&1 || \
		{ $(SUDO) apt-get update -qq && DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq chromium; } || \
		echo "warning: could not install chromium; tests/test_report.py will say why it skips"

lint: $(VENV)/.installed
	$(VENV)/bin/ruff check drama analysis tests workflow benchmarks tools
	$(VENV)/bin/snakefmt --check Snakefile workflow/
	PATH=$(CURDIR)/$(VENV)/bin:$$PATH $(PY) -m snakemake --lint

# Short CPU benchmarks (each prints its numbers; a few minutes in all on 2 cores).
bench: $(VENV)/.installed
	$(PY) benchmarks/env_throughput.py
	$(PY) benchmarks/replay_sampling.py
	$(PY) benchmarks/sequence_speed.py
	$(PY) benchmarks/world_model_update.py
	$(PY) tools/investigations/conv_layout.py
	$(PY) benchmarks/analysis_speed.py

# Delete every workflow output under results/ (training runs included!) except its README.
clean-results:
	find results -mindepth 1 -maxdepth 1 ! -name README.md -exec rm -rf {} +
