"""`kill -9` during `obskit generate` into an existing output directory (issue 13, item 6).

Each file is written atomically (temp file + rename), but a kill between two files leaves a
service directory that mixes old and new files, and a kill between creating a temp file and
renaming it leaves that temp file (0 bytes when the kill comes first). What must hold: `--check`
reports any such tree as stale (exit 1), and the next `generate` repairs it and leaves no temp
file behind.

The kills are real SIGKILLs of a real `obskit generate` process, delivered at chosen points
(after the k-th rename, right after a temp file is created) so that every kind of torn tree is
produced on every run, plus kills from outside at varied moments.
"""

from __future__ import annotations

import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from typer.testing import CliRunner

from obskit.generator.cli import EXIT_DRIFT, EXIT_OK, app
from tests.generator.conftest import ROOT

OLD = """\
services:
  - service: shop
    team: web
    slos:
      - {name: availability, objective: 99.9, sli: {availability: {}}}
  - service: payments
    team: pay
    slos:
      - {name: availability, objective: 99.5, sli: {availability: {}}}
"""
NEW = (
    OLD.replace("99.9", "99.95")
    .replace("99.5", "99.0")
    .replace("team: web", "team: store")
    .replace("team: pay", "team: billing")
    .replace("    slos:\n", "    resilience: {breaker_open: {for: 10m}}\n    slos:\n")
)
"""Every generated file of both services changes between OLD and NEW."""

FILES_PER_RUN = 12  # 2 services x (rules.yaml, rules.test.yaml, alerts.test.yaml,
# dashboard.json, alertmanager.route.yaml) + alertmanager.yaml and alertmanager.test.sh in <out>

# Runs `obskit generate` and SIGKILLs itself at the chosen point: after the k-th rename of a
# temp file onto its target ("rename:k"), or right after the k-th temp file is created
# ("temp:k", before anything is written into it).
KILLER = """
import os, signal, sys, tempfile
point, k = sys.argv[1].split(":"); k = int(k)
seen = {"rename": 0, "temp": 0}

def hit(kind):
    seen[kind] += 1
    if kind == point and seen[kind] == k:
        os.kill(os.getpid(), signal.SIGKILL)

real_replace, real_mkstemp = os.replace, tempfile.mkstemp

def replace(*args, **kwargs):
    real_replace(*args, **kwargs)
    hit("rename")

def mkstemp(*args, **kwargs):
    made = real_mkstemp(*args, **kwargs)
    hit("temp")
    return made

os.replace, tempfile.mkstemp = replace, mkstemp
from obskit.cli import main
sys.argv = ["obskit", "generate", *sys.argv[2:]]
main()
"""

runner = CliRunner()


def _obskit(*args: str | Path) -> int:
    result = runner.invoke(app, [str(a) for a in args])
    if result.exception is not None and not isinstance(result.exception, SystemExit):
        raise result.exception
    return result.exit_code


def _snapshot(directory: Path) -> dict[str, bytes]:
    return {
        str(p.relative_to(directory)): p.read_bytes() for p in directory.rglob("*") if p.is_file()
    }


def _temp_files(directory: Path) -> list[Path]:
    return [p for p in directory.rglob("*") if p.is_file() and p.name.endswith(".tmp")]


@pytest.fixture(scope="module")
def trees(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, Path, Path]:
    """(old manifest, new manifest, tree generated from old, tree generated from new)."""
    base = tmp_path_factory.mktemp("kill")
    old, new = base / "old.obskit.yaml", base / "new.obskit.yaml"
    old.write_text(OLD)
    new.write_text(NEW)
    assert _obskit("generate", old, "--out", base / "old-tree") == EXIT_OK
    assert _obskit("generate", new, "--out", base / "new-tree") == EXIT_OK
    return old, new, base / "old-tree", base / "new-tree"


def _assert_check_then_repair(out: Path, new: Path, new_tree: Path) -> None:
    """The contract: a torn tree is stale for --check; one generate makes it whole."""
    assert _obskit("generate", new, "--out", out, "--check") == EXIT_DRIFT
    assert _obskit("generate", new, "--out", out) == EXIT_OK
    assert _temp_files(out) == []
    assert _snapshot(out) == _snapshot(new_tree)
    assert _obskit("generate", new, "--out", out, "--check") == EXIT_OK


@pytest.mark.parametrize(
    "point",
    ["temp:1", "rename:1", "rename:3", f"rename:{FILES_PER_RUN - 1}", "temp:4"],
)
def test_a_tree_torn_by_kill_9_is_stale_for_check_and_repaired_by_generate(
    tmp_path: Path, trees: tuple[Path, Path, Path, Path], point: str
) -> None:
    _, new, old_tree, new_tree = trees
    out = tmp_path / "out"
    shutil.copytree(old_tree, out)
    result = subprocess.run(
        [sys.executable, "-c", KILLER, point, str(new), "--out", str(out)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == -signal.SIGKILL, result.stderr
    now = _snapshot(out)
    old, fresh = _snapshot(old_tree), _snapshot(new_tree)
    mixed = {name for name in now if name in old and now[name] == fresh.get(name)}
    if point.startswith("rename"):  # old and new files side by side in one tree
        assert len(mixed) == int(point.split(":")[1])
        assert any(now.get(name) == old[name] for name in old)
    else:  # the temp file left behind, empty when the kill came before its write
        temps = _temp_files(out)
        assert len(temps) == 1
        assert temps[0].stat().st_size == 0
    _assert_check_then_repair(out, new, new_tree)


def test_kill_9_from_outside_at_any_moment_never_leaves_an_unrepairable_tree(
    tmp_path: Path, trees: tuple[Path, Path, Path, Path]
) -> None:
    """SIGKILL sent by another process at moments spread over a generate run: whatever state
    the tree is in, --check says stale unless it is already complete, and generate repairs it.
    """
    _, new, old_tree, new_tree = trees
    for attempt, delay in enumerate((0.0, 0.2, 0.35, 0.5, 0.65, 0.8)):
        out = tmp_path / f"out{attempt}"
        shutil.copytree(old_tree, out)
        proc = subprocess.Popen(
            [sys.executable, "-m", "obskit.cli", "generate", str(new), "--out", str(out)],
            cwd=ROOT,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        time.sleep(delay)
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=30)
        complete = _snapshot(out) == _snapshot(new_tree)
        check = _obskit("generate", new, "--out", out, "--check")
        assert check == (EXIT_OK if complete else EXIT_DRIFT)
        assert _obskit("generate", new, "--out", out) == EXIT_OK
        assert _temp_files(out) == []
        assert _snapshot(out) == _snapshot(new_tree)
