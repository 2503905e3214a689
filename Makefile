# Two commands on a fresh machine: `make train` and `make test` (each installs what it needs).
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
# The real MNIST files when they sit beside the repo (as on our CI machines), else data/ (downloaded).
DATA ?= $(if $(wildcard ../shared/data/MNIST/raw),../shared/data,data)

.PHONY: install train test

install: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q -e '.[dev]'
	touch $@

train: install
	$(PY) -m mnist_lit.train data.root=$(DATA) $(ARGS)

test: install
	$(PY) -m pytest -q $(ARGS)
