# Two commands on a fresh machine: `make train` and `make test` (each installs what it needs).
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
# The real MNIST files when they sit beside the repo (as on our CI machines), else data/ (downloaded).
DATA ?= $(if $(wildcard ../shared/data/MNIST/raw),../shared/data,data)

.PHONY: install train test test-fast gpu-check

install: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q -e '.[dev]'
	touch $@

train: install
	$(PY) -m mnist_lit.train data.root=$(DATA) $(ARGS)

test: install
	$(PY) -m pytest -q $(ARGS)

test-fast: install  # the unit tests, a minute or two: no subprocess, real-data or end-to-end runs
	$(PY) -m pytest -q -m "not slow" $(ARGS)

gpu-check: install  # on a machine with a CUDA GPU: GPU tests, benchmarks, time to accuracy (about 5 minutes)
	PY=$(PY) DATA=$(DATA) bash .ci/gpu-check
