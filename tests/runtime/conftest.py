"""Fixtures for the runtime tests: obskit reset around every test, real servers on 127.0.0.1."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

import obskit
from examples.lab.otlp_receiver import OTLPReceiver


@pytest.fixture(autouse=True)
def _reset_obskit() -> Iterator[None]:
    obskit.reset()
    yield
    obskit.reset()


@pytest.fixture
def receiver() -> Iterator[OTLPReceiver]:
    with OTLPReceiver() as rx:
        yield rx


from obskit.testing import obskit_capture  # noqa: E402, F401 - the plugin's fixture, for tests
