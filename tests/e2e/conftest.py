"""The session-wide e2e lab (see scenario.py for what runs and why)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.conftest import require_binary
from tests.e2e.scenario import Lab, running_lab


@pytest.fixture(scope="session")
def lab() -> Iterator[Lab]:
    require_binary("prometheus")
    with running_lab() as started:
        yield started
