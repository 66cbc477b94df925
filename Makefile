# obskit developer entry points. Every target creates .venv and installs what it needs.
PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed-$(shell cat pyproject.toml | cksum | cut -d' ' -f1)

.PHONY: demo test lint typecheck bench bench-celery bench-celery-count bench-celery-frames goldens packages clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --disable-pip-version-check --upgrade pip
	$(PY) -m pip install -q --disable-pip-version-check -e '.[dev,bench]'
	rm -f $(VENV)/.installed-*
	touch $@

packages:
	@bash scripts/ensure-packages.sh

## The README's first command: the whole toolkit in one run.
demo: $(STAMP) packages
	$(PY) -m examples.demo

## The README's second command: lint, type-check and the whole test suite.
test: $(STAMP) packages
	$(PY) -m pytest

lint: $(STAMP)
	$(VENV)/bin/ruff check obskit tests benchmarks examples
	$(VENV)/bin/ruff format --check obskit tests benchmarks examples
	$(VENV)/bin/mypy

## Regenerate the committed golden files and dashboards/ after an intended change.
goldens: $(STAMP)
	$(PY) -m pytest tests/generator --update-goldens -q
	$(VENV)/bin/obskit generate examples/ --out dashboards/

bench: $(STAMP)
	$(PY) -m benchmarks.run

## The Celery benchmark (issue 10): real Redis, solo pool, obskit against the peer stack.
bench-celery: $(STAMP) packages
	$(PY) -m benchmarks.celery_tasks

## The same work counted under valgrind's cachegrind: noise-free before/after (needs valgrind).
bench-celery-count: $(STAMP) packages
	$(PY) -m benchmarks.celery_instructions

## obskit's own frames timed inside the real Celery benchmark (receivers, batches, encoder).
bench-celery-frames: $(STAMP) packages
	$(PY) -m benchmarks.celery_frames

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache
