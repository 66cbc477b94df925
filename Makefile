# obskit developer entry points. Every target creates .venv and installs what it needs.
PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed-$(shell cat pyproject.toml | cksum | cut -d' ' -f1)

.PHONY: demo test lint typecheck bench goldens prometheus clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --disable-pip-version-check --upgrade pip
	$(PY) -m pip install -q --disable-pip-version-check -e '.[dev,bench]'
	rm -f $(VENV)/.installed-*
	touch $@

prometheus:
	@scripts/ensure-prometheus.sh

## The README's first command: the whole toolkit in one run.
demo: $(STAMP) prometheus
	$(PY) -m examples.demo

## The README's second command: lint, type-check and the whole test suite.
test: $(STAMP) prometheus
	$(PY) -m pytest

lint: $(STAMP)
	$(VENV)/bin/ruff check obskit tests benchmarks examples
	$(VENV)/bin/ruff format --check obskit
	$(VENV)/bin/mypy

## Regenerate the committed golden files and dashboards/ after an intended change.
goldens: $(STAMP)
	$(PY) -m pytest tests/generator --update-goldens -q
	$(VENV)/bin/obskit generate examples/ --out dashboards/

bench: $(STAMP)
	$(PY) -m benchmarks.run

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache
