"""Shared helpers of the generator tests: the example manifests and their rendered output."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from obskit.generator.manifest import load_all, loads
from obskit.generator.model import Service
from obskit.generator.render.bundle import render_all
from obskit.generator.render.templates import Templates

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = ROOT / "examples"
GOLDENS = Path(os.environ.get("OBSKIT_GOLDENS") or Path(__file__).resolve().parent / "goldens")
"""The golden files; OBSKIT_GOLDENS points the golden tests elsewhere (tests of --update-goldens
use it, so they never touch the committed ones)."""

MINIMAL = """\
service: checkout
slos:
  - name: availability
    objective: 99.9
    sli:
      availability: {}
"""


def service_of(text: str) -> Service:
    [service] = loads(text, "test.yaml")
    return service


@pytest.fixture(scope="session")
def example_services() -> list[Service]:
    return load_all([EXAMPLES])


@pytest.fixture(scope="session")
def example_files(example_services: list[Service]) -> dict[str, dict[str, str]]:
    return render_all(example_services, Templates(), ("prometheus", "prometheus-operator"))
