"""Start-up cost: `import obskit` and `obskit --help`, as fresh processes.

Each command runs `repeat` times; the median wall time is reported next to the bare
interpreter's (`python -c pass`), since that is the floor no library can go under.
"""

from __future__ import annotations

import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

_ROOT = Path(__file__).resolve().parent.parent


def _median_ms(cmd: list[str], repeat: int) -> float:
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        subprocess.run(cmd, cwd=_ROOT, check=True, capture_output=True, timeout=60)
        times.append((time.perf_counter() - t0) * 1000)
    return statistics.median(times)


def obskit_cli() -> list[str]:
    """The installed console script if there is one, else the same entry point via -c."""
    script = Path(sys.executable).with_name("obskit")
    if script.exists():
        return [str(script)]
    found = shutil.which("obskit")
    if found:
        return [found]
    return [sys.executable, "-c", "import sys; from obskit.cli import main; sys.exit(main())"]


def run_startup(repeat: int = 7) -> list[tuple[str, str]]:
    py = sys.executable
    rows = [
        (
            "`python -c pass` (interpreter floor)",
            f"{_median_ms([py, '-c', 'pass'], repeat):.0f} ms",
        ),
        (
            "`python -c 'import obskit'`",
            f"{_median_ms([py, '-c', 'import obskit'], repeat):.0f} ms",
        ),
    ]
    try:
        rows.append(("`obskit --help`", f"{_median_ms([*obskit_cli(), '--help'], repeat):.0f} ms"))
    except subprocess.CalledProcessError as exc:
        rows.append(("`obskit --help`", f"failed (exit {exc.returncode})"))
    return rows
