# mrs-numerics: set-up and everyday commands.
# Every target installs what it needs: on a fresh machine with Python 3.11 and pip,
# `make test` is enough. When a virtual environment is active it is used; otherwise
# one is created in .venv.

PYTHON_BOOT ?= python3
TORCH_SPEC ?= torch==2.13.0
PYTEST_WORKERS ?= 2

ifdef VIRTUAL_ENV
VENV := $(VIRTUAL_ENV)
else
VENV := $(CURDIR)/.venv
endif
PY := $(VENV)/bin/python
STAMP := $(VENV)/.mrs-numerics-installed

.PHONY: test verify codegen lint install clean

$(PY):
	$(PYTHON_BOOT) -m venv $(VENV)

$(STAMP): $(PY) pyproject.toml
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet "$(TORCH_SPEC)"
	$(PY) -m pip install --quiet -e ".[test,docs,notebooks,diffusers]"
	# k-diffusion for the equality tests (tests/kdiffusion_sampling.py loads its sampling
	# module alone); --no-deps: its declared dependencies pull torchvision, which does not
	# import beside this torch, and could replace the CPU torch.
	$(PY) -m pip install --quiet --no-deps "k-diffusion==0.1.1.post1"
	touch $(STAMP)

install: $(STAMP)

test: lint
	$(PY) -m pytest -n $(PYTEST_WORKERS) --dist loadgroup

verify: $(STAMP)
	$(VENV)/bin/mrs-numerics verify --out verify-report --json verify-report/results.json

codegen: $(STAMP)
	$(PY) -m derivations.codegen

lint: $(STAMP)
	$(PY) -m ruff check .
	$(PY) -m ruff format --check .
	$(VENV)/bin/lint-imports
	$(PY) -m mypy

clean:
	rm -rf .venv build dist .pytest_cache .ruff_cache
