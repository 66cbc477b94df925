"""Run the obskit CLI on the example manifests and find what it generated."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

REPO_ROOT = Path(__file__).resolve().parents[2]
EXAMPLE_MANIFESTS = (
    REPO_ROOT / "examples" / "shop" / "obskit.yaml",
    REPO_ROOT / "examples" / "payments" / "obskit.yaml",
)
BACKGROUND_MANIFESTS = (*EXAMPLE_MANIFESTS, REPO_ROOT / "examples" / "worker" / "obskit.yaml")
"""With the background-work system (Redis, the Celery worker): the worker's manifest too."""


def obskit_command() -> list[str]:
    """The `obskit` console script of this interpreter's environment (or its module entry)."""
    script = Path(sys.executable).parent / "obskit"
    if script.exists():
        return [str(script)]
    return [sys.executable, "-c", "import sys; from obskit.cli import main; sys.exit(main())"]


def generate(out: Path, manifests: tuple[Path, ...] = EXAMPLE_MANIFESTS) -> list[str]:
    """`obskit generate <manifests> --out <out>`; returns the argv; raises with its output."""
    argv = [*obskit_command(), "generate", *map(str, manifests), "--out", str(out)]
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO_ROOT), os.environ.get("PYTHONPATH")])),
    }
    proc = subprocess.run(
        argv, capture_output=True, text=True, timeout=60, check=False, env=env, cwd=REPO_ROOT
    )
    if proc.returncode != 0:
        raise RuntimeError(
            f"obskit generate failed (exit {proc.returncode}):\n{proc.stdout}{proc.stderr}"
        )
    return argv


def rule_files(out: Path) -> list[Path]:
    return sorted(out.glob("*/rules.yaml"))


def dashboards(out: Path) -> dict[str, dict[str, Any]]:
    """service name -> parsed dashboard.json."""
    return {p.parent.name: json.loads(p.read_text()) for p in sorted(out.glob("*/dashboard.json"))}
