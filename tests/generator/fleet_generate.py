"""Run by tests/generator/test_parallel.py in a fresh interpreter (no threads, so obskit forks
workers): `generate --jobs 3` on a 40-service fleet writes the tree `--jobs 1` writes, and a
service failing to render half way leaves the old tree untouched and no temp file."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

SERVICE = """\
service: {name}
slos:
  - {{name: availability, objective: {objective}, sli: {{availability: {{}}}}}}
"""
FAILS_FOR_ONE = (
    "{% if service == 'svc030' %}{{ nope }}{% endif %}"
    "summary: {{ summary | yaml }}\ndescription: {{ description | yaml }}\n"
)


def obskit(*args: object) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "obskit.cli", *map(str, args)],
        capture_output=True,
        text=True,
        check=False,
    )


def tree(directory: Path) -> dict[str, tuple[bytes, int]]:
    return {
        str(p.relative_to(directory)): (p.read_bytes(), p.stat().st_mode)
        for p in directory.rglob("*")
        if p.is_file()
    }


def main(root: Path) -> None:
    for index in range(40):
        directory = root / "fleet" / f"svc{index:03d}"
        directory.mkdir(parents=True)
        text = SERVICE.format(name=f"svc{index:03d}", objective=99.9)
        (directory / "obskit.yaml").write_text(text)
    os.umask(0o022)
    one, three = root / "one", root / "three"
    assert obskit("generate", root / "fleet", "--out", one, "--jobs", "1").returncode == 0
    assert obskit("generate", root / "fleet", "--out", three, "--jobs", "3").returncode == 0
    assert tree(one) == tree(three) and len(tree(one)) == 202
    before = tree(three)
    (root / "tpl").mkdir()
    (root / "tpl" / "alert_annotations.yaml.j2").write_text(FAILS_FOR_ONE)
    changed = SERVICE.format(name="svc000", objective=99)  # a file generate would rewrite
    (root / "fleet" / "svc000" / "obskit.yaml").write_text(changed)
    failed = obskit(
        "generate", root / "fleet", "--out", three, "--jobs", "3", "--templates", root / "tpl"
    )
    assert failed.returncode == 2 and "'nope' is undefined" in failed.stderr, failed.stderr
    assert tree(three) == before
    assert not list(three.rglob("*.tmp"))
    print("ok")


if __name__ == "__main__":
    main(Path(sys.argv[1]))
