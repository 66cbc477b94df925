"""`python -m examples.demo` runs to the end, prints every section, and leaves no process behind.

Shortened phases keep it quick; the e2e lab tests check what the figures mean.
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from examples.lab.system import REPO_ROOT

pytestmark = [pytest.mark.e2e, pytest.mark.integration]

SECTIONS = (
    "== 1. Generate dashboards and SLO rules",
    "== 2. Start the services",
    "== 3. Traffic",
    "== 4. Correlated logs",
    "== 5. The same request's trace",
    "== 13. Use the generated files",
)
BACKGROUND = (
    "== 9. Background work",
    "== 10. At-least-once delivery",
    "== 11. Queue wait (freshness) and processing per task",
    "== 12. The relay stalls",
)


def _processes_mentioning(text: str) -> list[str]:
    """Command lines of live processes that mention `text` (the demo's output directory)."""
    found = []
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit() or int(proc.name) == os.getpid():
            continue
        try:
            cmdline = (proc / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        if text in cmdline:
            found.append(f"{proc.name}: {cmdline}")
    return found


def _demo(out: Path, *extra: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "examples.demo", "--out", str(out), *extra],
        cwd=REPO_ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )


def test_the_demo_prints_every_section_exits_0_and_leaves_no_process(tmp_path: Path) -> None:
    out = tmp_path / "demo-output"
    proc = _demo(out, "--healthy", "3", "--burst", "6", "--stall", "8")
    output, _ = proc.communicate(timeout=150)
    assert proc.returncode == 0, output
    for heading in SECTIONS:
        assert heading in output, f"missing {heading!r} in:\n{output}"
    assert "share correlation_id=demo-" in output
    if shutil.which("redis-server"):
        for heading in BACKGROUND:
            assert heading in output, f"missing {heading!r} in:\n{output}"
        assert "the worker and payments share correlation_id=demo-bg-" in output
        assert "worker: process examples.worker.tasks.charge_order [consumer]" in output
        assert "payments: POST /charge [server]" in output
        assert "counted as outcome=duplicate; payments charged it 1 time(s)" in output
        pending = [int(n) for n in re.findall(r"outbox orders: (\d+) pending", output)]
        assert max(pending) > 5 and pending[-1] == 0, pending  # rose while stalled, then drained
    if shutil.which("prometheus"):
        assert "== 6. RED per route" in output
        assert "== 7. SLOs" in output
        assert "== 8. Alerts" in output
    else:
        assert "sudo apt-get install" in output
    assert "no process left behind" in output
    assert (out / "generated" / "shop" / "dashboard.json").is_file()
    assert _processes_mentioning(str(out)) == []


def test_ctrl_c_stops_the_demo_and_every_process_it_started(tmp_path: Path) -> None:
    out = tmp_path / "demo-output"
    proc = _demo(out)
    assert proc.stdout is not None
    lines = []
    deadline = time.monotonic() + 60
    for line in proc.stdout:  # wait until traffic flows: every child is running by then
        lines.append(line)
        if "healthy traffic" in line or time.monotonic() > deadline:
            break
    assert _processes_mentioning(str(out)), "the demo's children should be running now"
    proc.send_signal(signal.SIGINT)
    rest, _ = proc.communicate(timeout=30)
    output = "".join(lines) + rest
    assert proc.returncode == 130, output
    assert "no process left behind" in output
    assert _processes_mentioning(str(out)) == []
