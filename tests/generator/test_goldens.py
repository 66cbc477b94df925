"""Golden files of the example manifests, and the committed dashboards/ kept fresh.

`pytest tests/generator --update-goldens` rewrites tests/generator/goldens after an intended
change (`make goldens` also regenerates dashboards/).
"""

from __future__ import annotations

import pytest
from typer.testing import CliRunner

from obskit.generator.cli import EXIT_OK, app
from obskit.generator.model import Service
from obskit.generator.render import output
from tests.generator.conftest import EXAMPLES, GOLDENS, ROOT


def test_example_output_matches_the_golden_files(
    request: pytest.FixtureRequest, example_files: dict[str, dict[str, str]]
) -> None:
    if request.config.getoption("--update-goldens"):
        GOLDENS.mkdir(exist_ok=True)
        output.write(GOLDENS, example_files)
    drifts = output.check(GOLDENS, example_files)
    assert not drifts, (
        "".join(d.diff for d in drifts) + "\nrun: pytest tests/generator --update-goldens"
    )


def test_committed_dashboards_directory_is_fresh(example_services: list[Service]) -> None:
    """`obskit generate examples/ --out dashboards/ --check` passes on the committed output,
    and no directory of a renamed or removed example service lingers there (which `--check`,
    comparing only the services it is given, cannot see)."""
    result = CliRunner().invoke(
        app, ["generate", str(EXAMPLES), "--out", str(ROOT / "dashboards"), "--check"]
    )
    assert result.exit_code == EXIT_OK, result.stdout + "\nrun: make goldens"
    names = sorted(s.name for s in example_services)
    for directory in (ROOT / "dashboards", GOLDENS):
        assert sorted(p.name for p in directory.iterdir() if p.is_dir()) == names, directory
