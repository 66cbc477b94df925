"""Golden files of the example manifests, and the committed dashboards/ kept fresh.

`pytest tests/generator --update-goldens` rewrites tests/generator/goldens after an intended
change (`make goldens` also regenerates dashboards/).
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from obskit.cli import EXIT_OK, app
from obskit.model import Service
from obskit.render import output
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


def test_generating_never_imports_the_opentelemetry_sdk(tmp_path: Path) -> None:
    code = (
        "import sys\nfrom obskit.cli import main\nsys.argv = ['obskit', 'generate', 'examples',"
        f" '--out', {str(tmp_path)!r}]\ntry:\n    main()\nexcept SystemExit:\n    pass\n"
        "print(sorted(m for m in sys.modules if m.startswith('opentelemetry')))"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True
    )
    assert result.stdout.strip().splitlines()[-1] == "[]"
    assert (tmp_path / "shop" / "dashboard.json").exists()
