# `make train` and `make test` each set up .venv first (only when pyproject.toml changed).
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
# e.g. TORCH_INDEX=https://download.pytorch.org/whl/cpu: torch's CPU wheels, no CUDA libraries
# (their +cpu versions rank above PyPI's, so pip takes them from that index)
TORCH_INDEX ?=

.PHONY: help install train smoke test test-slow test-all sweep report bench bench-gpu notebooks lint format clean

## This list: each target and what it does
help:
	@awk '/^## /{text=substr($$0, 4); next} /^[a-z-]+:/{if (text) printf "  %-11s %s\n", substr($$1, 1, length($$1)-1), text; text=""}' $(MAKEFILE_LIST)

## Create .venv and install the project with its dev tools (again only when pyproject.toml changed)
install: $(STAMP)

$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[dev]' $(if $(TORCH_INDEX),--extra-index-url $(TORCH_INDEX))
	touch $(STAMP)

## Train the default DCGAN on the bundled digits (CPU, a few minutes); extra overrides: ARGS="..."
train: install
	$(PY) -m src.train $(ARGS)

## Proves the install in seconds: a few batches of a tiny-width run (outputs/smoke/...)
smoke: install
	$(PY) -m src.train debug=fast task_name=smoke model.generator.ngf=8 model.discriminator.ndf=8 logger=csv $(ARGS)

## The default test suite (no `slow` tests), one pytest-xdist worker per core (at most 8)
test: install
	$(PY) -m pytest -q -n auto --maxprocesses=8 $(ARGS)

## Only the slow tests (CI runs them after `make test`)
test-slow: install
	$(PY) -m pytest -q -m slow $(ARGS)

## Every test, including the slow ones (multi-process DDP, sweeps, notebooks)
test-all: install
	$(PY) -m pytest -q -m "" $(ARGS)

## A small Optuna search minimising val/fid (6 trials of 10 epochs; conf/hparams_search/optuna.yaml)
sweep: install
	$(PY) -m src.train hparams_search=optuna hydra.sweeper.n_trials=6 hydra.sweeper.sampler.n_startup_trials=4 trainer.max_epochs=10 $(ARGS)

## A sweep's report.html and report.png (metric heatmap, loss curves, sample grids): SWEEP=<multirun dir>
report: install
	$(PY) -m src.report $(SWEEP) $(ARGS)

## Throughput: the PyTorch DCGAN example's loop vs ours, side by side (CPU, ~4 min); ends with ratio=
bench: install
	$(PY) -m experiments.throughput.bench $(ARGS)

## The same on a GPU (bf16, compile variants too)
bench-gpu: install
	$(PY) -m experiments.throughput.bench --device cuda $(ARGS)

## Executes the notebooks in place, so the repository shows their outputs (~1 min here)
notebooks: install
	WANDB_MODE=offline $(VENV)/bin/jupyter-execute --inplace --timeout=900 notebooks/01_quickstart.ipynb notebooks/02_evaluate.ipynb

## ruff check and ruff format --check
lint: install
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

## ruff's fixes and formatting, in place
format: install
	$(VENV)/bin/ruff check --fix .
	$(VENV)/bin/ruff format .

## Remove outputs, sweeps, W&B files and caches of this checkout
clean:
	rm -rf outputs multirun wandb .pytest_cache .ruff_cache experiments/*/.cache
	find . -name __pycache__ -type d -prune -exec rm -rf {} +
