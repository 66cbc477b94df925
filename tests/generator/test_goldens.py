"""Golden files of the example manifests, and the committed dashboards/ kept fresh.

`pytest tests/generator --update-goldens` rewrites tests/generator/goldens after an intended
change (`make goldens` also regenerates dashboards/); in that mode the golden test reports a skip
("rewrote ...; no comparison was made"), never a pass.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

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
        # writing is not checking: report the rewrite as a skip, never as a passed comparison
        removed: list[Path] = []
        GOLDENS.mkdir(exist_ok=True)
        written = output.write(GOLDENS, example_files, removed)
        pytest.skip(
            f"--update-goldens: rewrote {len(written)} golden file(s) in {GOLDENS}"
            + (f" and removed {len(removed)}" if removed else "")
            + "; no comparison was made (run without --update-goldens to compare)"
        )
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


def _golden_test(goldens: Path, *options: str) -> subprocess.CompletedProcess[str]:
    """Run the golden test in a fresh pytest against `goldens` (never the committed ones)."""
    return subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-rs", "-p", "no:cacheprovider", *options,
         "tests/generator/test_goldens.py::test_example_output_matches_the_golden_files"],
        cwd=ROOT, env={**os.environ, "OBSKIT_GOLDENS": str(goldens)},
        capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip


def test_update_goldens_writes_but_never_claims_a_passed_comparison(tmp_path: Path) -> None:
    """0.1 compared the files with what it had just written and reported a pass."""
    goldens = tmp_path / "goldens"
    updated = _golden_test(goldens, "--update-goldens")
    assert updated.returncode == EXIT_OK, updated.stdout
    assert "1 skipped" in updated.stdout and "passed" not in updated.stdout
    assert "no comparison was made" in updated.stdout
    assert sorted(p.name for p in goldens.iterdir()) == ["inventory", "payments", "shop", "worker"]

    rules = goldens / "shop" / "rules.yaml"
    rules.write_text(rules.read_text() + "# edited\n")
    compared = _golden_test(goldens)  # without the flag: a real comparison, which fails now
    assert compared.returncode == 1 and "1 failed" in compared.stdout
    assert "--update-goldens" in compared.stdout  # tells how to refresh them
