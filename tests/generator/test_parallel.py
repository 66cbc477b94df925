"""Parallel loading and rendering (`--jobs`) change nothing but the time it takes.

Forked workers load manifests and render services in chunks; the files, the problems reported
and their order must be exactly those of a single process. The checks run in a fresh
interpreter: `fork_map` forks only a process without other threads, and a pytest process may
hold some.
"""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

from tests.generator.conftest import ROOT

CHECK = textwrap.dedent(
    """
    import os, sys, time
    from pathlib import Path
    from obskit.generator.manifest import ManifestError, load_all
    from obskit.generator.parallel import fork_map
    from obskit.generator.render.bundle import render_all
    from obskit.generator.render.templates import TemplateProblem, Templates

    SERVICE = '''service: {name}
    team: team{team}
    grafana_url: https://grafana.example.com
    slos:
      - {{name: availability, objective: 99.9, sli: {{availability: {{}}}}}}
      - {{name: latency, objective: 99, sli: {{latency: {{threshold: 0.25}}}}}}
    '''
    root = Path(sys.argv[1])
    for index in range(40):
        directory = root / "fleet" / f"svc{index:03d}"
        directory.mkdir(parents=True)
        text = SERVICE.format(name=f"svc{index:03d}", team=index % 3)
        (directory / "obskit.yaml").write_text(text)

    # workers really run, in other processes, and keep the order
    pids = fork_map(lambda i: (i, time.sleep(0.01), os.getpid()), list(range(100)), jobs=3)
    assert [i for i, _, _ in pids] == list(range(100))
    workers = {p for _, _, p in pids}
    assert len(workers) >= 2 and os.getpid() not in workers
    assert fork_map(lambda i: os.getpid(), [1, 2], jobs=3) == [os.getpid()] * 2  # too small

    # the same services and files from 1 or 3 processes
    services = load_all([root / "fleet"], jobs=3)
    assert [s.name for s in services] == [s.name for s in load_all([root / "fleet"])]
    one = render_all(services, Templates(), ("prometheus",), jobs=1)
    three = render_all(services, Templates(), ("prometheus",), jobs=3)
    assert list(one) == list(three) and one == three

    # a template problem raised in a worker: the one a single process raises first
    (root / "templates").mkdir()
    (root / "templates" / "alert_annotations.yaml.j2").write_text("summary: {{ nope }}\\n")
    problems = []
    for jobs in (1, 3):
        try:
            render_all(services, Templates(root / "templates"), ("prometheus",), jobs=jobs)
        except TemplateProblem as exc:
            problems.append(str(exc))
    assert len(problems) == 2 and problems[0] == problems[1], problems

    # manifest problems from workers: all of them, in file order
    (root / "fleet" / "svc005" / "obskit.yaml").write_text("service: svc005\\nslos: 3\\n")
    (root / "fleet" / "svc030" / "obskit.yaml").write_text(SERVICE.format(name="svc001", team=0))
    found = []
    for jobs in (1, 3):
        try:
            load_all([root / "fleet"], jobs=jobs)
        except ManifestError as exc:
            found.append(exc.problems)
    assert len(found) == 2 and found[0] == found[1], found
    assert len(found[0]) == 2 and "duplicate service name 'svc001'" in found[0][1].message
    print("ok")
    """
)


def test_workers_load_render_and_fail_exactly_as_one_process(tmp_path: Path) -> None:
    result = subprocess.run(
        [sys.executable, "-c", CHECK, str(tmp_path)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0 and result.stdout == "ok\n", result.stdout + result.stderr


def test_generate_with_workers_writes_the_same_tree_and_nothing_on_failure(
    tmp_path: Path,
) -> None:
    """With workers, files are staged while services render and renamed at the end: the same
    bytes and modes as one process; a service failing late leaves the old tree untouched."""
    result = subprocess.run(
        [sys.executable, "-m", "tests.generator.fleet_generate", str(tmp_path)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert result.returncode == 0 and result.stdout == "ok\n", result.stdout + result.stderr
