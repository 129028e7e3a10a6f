# aljax: `make reproduce` runs the article's experiment; `make test` runs the tests.
# Both create the virtual environment (.venv) and fetch MNIST (data/) themselves when missing.

PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed-stamp

.PHONY: install data lint docs test reproduce reproduce-table bench bench-quick clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e '.[test,lint,docs]'
	touch $(STAMP)

install: $(STAMP)

data: install
	$(PY) -m aljax.fetch

# ruff (settings in pyproject.toml): unused or undefined names, pycodestyle, bugbear; mypy: the public API
# (aljax/__init__.py's names as tests/typing_api.py uses them; settings in pyproject.toml)
lint: install
	$(PY) -m ruff check aljax tests experiments docs
	$(PY) -m mypy

# The documentation site (mkdocs.yml; pages in docs/, generated ones from docs/hooks.py) into site/,
# every warning an error. `$(VENV)/bin/mkdocs serve` previews it.
docs: install
	NO_MKDOCS_2_WARNING=1 $(PY) -m mkdocs build --strict --quiet

test: install data lint docs
	$(PY) -m pytest -q

reproduce: install data
	$(PY) experiments/reproduce.py

reproduce-table: install data
	$(PY) experiments/reproduce.py --table-only

# `make bench` measures aljax against a NumPy reference (results/bench/); ARGS=--quick for CI size.
bench: install data
	$(PY) experiments/bench.py $(ARGS)

bench-quick: install data
	$(PY) experiments/bench.py --quick

clean:
	rm -rf $(VENV) results/reproduce .pytest_cache site dist

# The strategy study (experiments/study.py): every registered strategy vs random over paired seeds.
.PHONY: data-fashion study study-quick
data-fashion: install
	$(PY) -m aljax.fetch --dataset fashion_mnist

study: install data data-fashion
	$(PY) experiments/study.py

study-quick: install data
	$(PY) experiments/study.py --quick

# Deep Bayesian active learning (experiments/deep.py): Gal 2017 and BatchBALD protocols on MNIST.
# `make deep` runs the CPU mode (a dropout MLP, 16 seeds, 2 cores); MODE=gpu: the published sizes, 16 seeds, one GPU.
.PHONY: deep deep-quick bench-deep
MODE ?= cpu
deep: install data
	$(PY) experiments/deep.py --mode $(MODE)

deep-quick: install
	$(PY) experiments/deep.py --mode quick

# Training-step and MC-scoring throughput, one seed vs vmapped seeds, and PyTorch if installed
# (pip install -e '.[bench]').
bench-deep: install
	$(PY) experiments/bench_deep.py $(ARGS)

# The GPU check (experiments/gpu_check.py, docs/gpu.md): the test suite, 1000 and 10 000 seeds of the
# article's run (c), 1000 seeds of (c) + (d), the deep bench against PyTorch and the NumPy reference,
# into docs/bench/gpu/ (ARGS="--out DIR" elsewhere). On a machine where nothing can be installed, give
# its Python: `ALJAX_DATA=/path/holding/mnist make gpu-check PY=python3` uses the tree as it is (no venv).
.PHONY: gpu-check
GPU_CHECK_NEEDS := $(if $(filter command line,$(origin PY)),,install data)
gpu-check: $(GPU_CHECK_NEEDS)
	XLA_PYTHON_CLIENT_PREALLOCATE=false PYTHONPATH=$(CURDIR)$${PYTHONPATH:+:$$PYTHONPATH} $(PY) experiments/gpu_check.py $(ARGS)
