"""The e2e lab, shared by the tests of a module and stopped after it (see scenario.py)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.conftest import require_binary
from tests.e2e.scenario import Lab, running_lab


@pytest.fixture(scope="module")
def lab() -> Iterator[Lab]:
    require_binary("prometheus")
    with running_lab() as started:
        yield started
