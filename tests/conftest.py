"""Shared pytest configuration.

Tests that need the real `promtool`/`prometheus` binaries skip with a reason when they are
missing on a developer machine, and fail in CI (CI=true), where `.ci/run` installs them.
"""

from __future__ import annotations

import os
import shutil

import pytest

PACKAGES = dict.fromkeys(("amtool", "prometheus-alertmanager"), "prometheus-alertmanager")
"""Debian package of each binary the tests run (default: prometheus)."""


def require_binary(name: str) -> str:
    """Return the path of a required binary; fail in CI, skip elsewhere, when it is missing."""
    path = shutil.which(name)
    if path is None:
        package = PACKAGES.get(name, "prometheus")
        message = f"{name} not found: install the Debian package {package!r} (make test does)"
        if os.environ.get("CI") == "true":
            pytest.fail(message)
        pytest.skip(message)
    return path


def pytest_addoption(parser: pytest.Parser) -> None:
    """`--update-goldens`: rewrite the generator's golden files instead of comparing them."""
    parser.addoption(
        "--update-goldens",
        action="store_true",
        default=False,
        help="rewrite tests/generator/goldens from the current generator output",
    )
