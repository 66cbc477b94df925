"""Shared pytest configuration.

Tests run against real components (promtool, Prometheus, Alertmanager, amtool, redis-server).
When one is missing, every test that needs it FAILS, naming the Debian package to install
(`make test` and `.ci/run` install them as root): a run that could not reach a real component
must never look green. To skip those tests instead, opt out explicitly:

    OBSKIT_TESTS_ALLOW_MISSING=promtool,prometheus make test   # those binaries (or packages)
    OBSKIT_TESTS_ALLOW_MISSING=all make test                   # any missing binary

Skipped tests are listed with their reason at the end of the run (`-ra`).
"""

from __future__ import annotations

import os
import shutil
from typing import Final

import pytest

ALLOW_MISSING: Final = "OBSKIT_TESTS_ALLOW_MISSING"
PACKAGES: Final = {
    "prometheus": "prometheus",
    "promtool": "prometheus",
    "prometheus-alertmanager": "prometheus-alertmanager",
    "amtool": "prometheus-alertmanager",
    "redis-server": "redis-server",
}
"""Binary -> the Debian package that installs it."""


def _allowed_missing(name: str, package: str) -> bool:
    allowed = {part.strip() for part in os.environ.get(ALLOW_MISSING, "").split(",")}
    return bool(allowed & {name, package, "all"})


def require_binary(name: str) -> str:
    """The path of a binary the calling test needs. Missing: the test fails (loudly, with the
    package to install), unless OBSKIT_TESTS_ALLOW_MISSING names it (then it is skipped)."""
    path = shutil.which(name)
    if path is not None:
        return path
    package = PACKAGES.get(name, name)
    message = (
        f"{name} not found: install the Debian package {package!r} "
        f"(sudo apt-get install -y --no-install-recommends {package}; `make test` does as root)"
    )
    if _allowed_missing(name, package):
        pytest.skip(f"{message} [skipped: {ALLOW_MISSING}={os.environ[ALLOW_MISSING]}]")
    pytest.fail(
        f"{message}, or set {ALLOW_MISSING}={name} (or =all) to skip the tests that need it",
        pytrace=False,
    )


def pytest_addoption(parser: pytest.Parser) -> None:
    """`--update-goldens`: rewrite the generator's golden files instead of comparing them."""
    parser.addoption(
        "--update-goldens",
        action="store_true",
        default=False,
        help="rewrite tests/generator/goldens from the current generator output (the golden "
        "tests then report 'skipped: rewritten', never a passed comparison)",
    )
