"""The codebase stays lint-clean, formatted and strictly typed: `ruff check`, `ruff format
--check` and mypy run as part of the tests (so `make test` lints, as the README says)."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
LINTED = ("obskit", "tests", "benchmarks", "examples")
"""The tree `make test` lints and format-checks (also `make lint`)."""


def _tool(name: str) -> str:
    candidate = Path(sys.executable).with_name(name)
    found = str(candidate) if candidate.exists() else shutil.which(name)
    if found is None:
        pytest.fail(f"{name} is not installed; `make test` installs it")
    return found


def _run(*argv: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(argv, cwd=ROOT, capture_output=True, text=True, check=False)


def test_ruff_reports_no_lint_errors() -> None:
    result = _run(_tool("ruff"), "check", *LINTED)
    assert result.returncode == 0, result.stdout + result.stderr


def test_ruff_format_check_passes_on_the_whole_linted_tree() -> None:
    """`ruff format --check` over everything `ruff check` covers; fix with `ruff format`."""
    result = _run(_tool("ruff"), "format", "--check", *LINTED)
    assert result.returncode == 0, (
        result.stdout + result.stderr + "\nrun: .venv/bin/ruff format " + " ".join(LINTED)
    )


def test_mypy_strict_passes_on_the_package() -> None:
    result = _run(_tool("mypy"))
    assert result.returncode == 0, result.stdout + result.stderr
