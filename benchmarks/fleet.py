"""Fleet scale: `obskit generate` and `--check` for many services, time and peak memory.

    python -m benchmarks.fleet                           # 50, 500 and 2,000 services, 3 SLOs each
    python -m benchmarks.fleet --sizes 500 --rounds 5    # one size, more rounds
    python -m benchmarks.fleet --sizes 500 --keep DIR    # also keep the generated tree in DIR
    python -m benchmarks.fleet --sizes 500 --baseline OLD   # OLD: `git archive REV obskit
                                                 # templates | tar -x -C OLD`; both interleaved
    python -m benchmarks.fleet --sizes 500 --baseline OLD --code NEW   # two trees, not the
                                                 # installed obskit: e.g. before/after a change
    python -m benchmarks.fleet --sizes 500 --reference   # also this code, PyYAML/json, 1 process
    python -m benchmarks.fleet --compare A B             # byte-compare two generated trees

A synthetic fleet (one manifest per service in its own directory, as repositories hold them):
every service has a team (20 teams), runbook and Grafana URLs, an outbound dependency and three
SLOs: availability on every route (99.9% over 30d), latency at 250 ms (99%), and availability
of two routes over 28d (99.5%). Each measurement is a fresh `obskit generate` process (then a
fresh `--check` process on its output), so imports count, as they do for a user; wall time,
CPU time (user + system) and peak RSS (the child's `ru_maxrss`) are read from `wait4()`.
Rounds run one after another (with `--baseline`, the old code and this one alternate in each
round, on the same manifests); the report gives the median and the range. Every run must
succeed, `--check` must find the tree up to date, and all rounds of a size, baseline included,
must write byte-identical trees, or the benchmark fails: that is the before/after comparison of
a fleet's files.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

TEAMS = 20
MANIFEST = """\
service: {name}
team: team{team:02d}
runbook_url: https://runbooks.example.com/{name}
grafana_url: https://grafana.example.com
slos:
  - name: availability
    objective: 99.9
    description: Requests of {name} succeed
    sli: {{availability: {{}}}}
  - name: latency
    objective: 99
    sli: {{latency: {{threshold: 0.25}}}}
  - name: orders
    objective: 99.5
    window: 28d
    sli: {{availability: {{}}}}
    routes: ["/orders", "/orders/{{order_id}}"]
dependencies: ["payments:8080"]
"""


def write_fleet(root: Path, services: int) -> Path:
    """`services` manifests under `root/manifests/<service>/obskit.yaml`."""
    base = root / "manifests"
    for index in range(services):
        name = f"svc{index:04d}"
        directory = base / name
        directory.mkdir(parents=True, exist_ok=True)
        text = MANIFEST.format(name=name, team=index % TEAMS)
        (directory / "obskit.yaml").write_text(text, encoding="utf-8")
    return base


@dataclass(frozen=True)
class Run:
    wall: float
    cpu: float
    peak_mib: float


REFERENCE = """
import sys
from obskit.generator.render import blockyaml, output, templates
blockyaml.dump = lambda data: None                # every YAML document through PyYAML
output.dump_json = output.pyjson_dump              # every dashboard through json
templates.simple_mapping = lambda text: None       # every template output through the YAML parser
from obskit.cli import main
sys.argv = ["obskit", *sys.argv[1:], "--jobs", "1"]  # one process
main()
"""
"""The `--reference` variant: this code with its reference writers, in one process."""


def _obskit(
    *args: str | Path, code: Path | None = None, reference: bool = False
) -> tuple[Run, int, str]:
    """One fresh `obskit` process (the obskit package in `code`, else the installed one; with
    `reference`, its reference writers in one process): its wall/CPU time, peak RSS (its own
    or its workers', the larger), exit code and stderr tail."""
    entry = ["-c", REFERENCE] if reference else ["-m", "obskit.cli"]
    command = [sys.executable, *entry, *(str(a) for a in args)]
    env = dict(os.environ)
    if code is not None:
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(code), env.get("PYTHONPATH")]))
    started = time.perf_counter()
    with tempfile.TemporaryFile() as err:
        child = subprocess.Popen(  # cwd: not a checkout, whose obskit/ would shadow `code`
            command, stdout=subprocess.DEVNULL, stderr=err, env=env, cwd=tempfile.gettempdir()
        )
        _, status, usage = os.wait4(child.pid, 0)
        wall = time.perf_counter() - started
        child.returncode = os.waitstatus_to_exitcode(status)
        err.seek(0)
        tail = err.read()[-2000:].decode(errors="replace")
    run = Run(wall, usage.ru_utime + usage.ru_stime, usage.ru_maxrss / 1024)
    return run, child.returncode, tail


def tree_digest(directory: Path) -> tuple[int, str]:
    """(number of files, sha256 over every relative path and its bytes, in sorted order)."""
    digest = hashlib.sha256()
    files = sorted(p for p in directory.rglob("*") if p.is_file())
    for path in files:
        digest.update(str(path.relative_to(directory)).encode() + b"\0")
        digest.update(path.read_bytes() + b"\0")
    return len(files), digest.hexdigest()


def compare(a: Path, b: Path) -> int:
    """Byte-compare two trees: list what differs; 0 when identical."""
    left = {p.relative_to(a): p for p in a.rglob("*") if p.is_file()}
    right = {p.relative_to(b): p for p in b.rglob("*") if p.is_file()}
    differ = sorted(
        str(k) for k in left.keys() | right.keys()
        if k not in left or k not in right or left[k].read_bytes() != right[k].read_bytes()
    )  # fmt: skip
    for name in differ[:20]:
        print(f"differs: {name}")
    count, digest = tree_digest(a)
    print(f"{a}: {count} files, sha256 {digest}")
    count, digest = tree_digest(b)
    print(f"{b}: {count} files, sha256 {digest}")
    print("identical" if not differ else f"{len(differ)} file(s) differ")
    return 0 if not differ else 1


def _median(values: list[float]) -> str:
    return f"{statistics.median(values):.2f} ({min(values):.2f}-{max(values):.2f})"


def _row(size: int, count: int, label: str, runs: list[Run]) -> str:
    return (
        f"| {size} | {size * 3} | {count} | {label} | {_median([r.wall for r in runs])} "
        f"| {_median([r.cpu for r in runs])} | {max(r.peak_mib for r in runs):.0f} |"
    )


def measure(
    size: int,
    rounds: int,
    work: Path,
    *,
    keep: Path | None = None,
    baseline: Path | None = None,
    current: Path | None = None,
    reference: bool = False,
) -> list[str]:
    manifests = write_fleet(work / f"fleet{size}", size)
    variants: list[tuple[str, Path | None, bool]] = [("", current, False)]
    if baseline is not None:
        variants.insert(0, ("baseline ", baseline, False))
    if reference:
        variants.insert(0, ("reference writers ", current, True))
    runs: dict[str, list[Run]] = {}
    digests = set()
    count = 0
    for index in range(rounds):
        for name, code, slow in variants:
            out = work / f"out{size}-{index}"
            run, status, err = _obskit(
                "generate", manifests, "--out", out, code=code, reference=slow
            )
            if status != 0:
                raise SystemExit(f"{name}generate failed ({status}) for {size} services:\n{err}")
            runs.setdefault(f"{name}generate", []).append(run)
            run, status, err = _obskit(
                "generate", manifests, "--out", out, "--check", code=code, reference=slow
            )
            if status != 0:
                raise SystemExit(f"{name}--check found drift ({status}) after generate:\n{err}")
            runs.setdefault(f"{name}--check", []).append(run)
            run, status, err = _obskit(
                "generate", manifests, "--out", out, code=code, reference=slow
            )
            if status != 0:
                raise SystemExit(f"{name}regenerate failed ({status}):\n{err}")
            runs.setdefault(f"{name}regenerate (unchanged tree)", []).append(run)
            count, digest = tree_digest(out)
            digests.add(digest)
            if keep is not None and index == 0:
                shutil.copytree(
                    out, keep / f"{name.strip() or 'current'}-{size}", dirs_exist_ok=True
                )
            shutil.rmtree(out)
    if len(digests) != 1:
        raise SystemExit(f"{size} services: runs wrote different trees (not byte-identical)")
    print(
        f"{size} services: every run wrote the same {count} files, sha256 {digest}", file=sys.stderr
    )
    return [_row(size, count, label, found) for label, found in runs.items()]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.fleet", description=__doc__)
    parser.add_argument("--sizes", default="50,500,2000", help="services per fleet")
    parser.add_argument("--rounds", type=int, default=3, help="runs per size (default 3)")
    parser.add_argument("--keep", type=Path, help="copy each size's generated tree here")
    parser.add_argument(
        "--baseline",
        type=Path,
        help="a directory holding another obskit package (and templates/) to measure too",
    )
    parser.add_argument(
        "--reference",
        action="store_true",
        help="also measure this code with its reference writers (PyYAML, json) in one process",
    )
    parser.add_argument(
        "--code",
        type=Path,
        help="measure the obskit package in this directory instead of the installed one",
    )
    parser.add_argument("--compare", nargs=2, type=Path, metavar=("A", "B"))
    args = parser.parse_args(argv)
    if args.compare:
        return compare(*args.compare)
    sizes = [int(s) for s in args.sizes.split(",")]
    load = os.getloadavg()
    rows = [
        "| services | SLOs | files | command | wall s, median (range) | CPU s, median (range) "
        "| peak RSS MiB |",
        "|---:|---:|---:|---|---:|---:|---:|",
    ]
    with tempfile.TemporaryDirectory(prefix="obskit-fleet-") as tmp:
        for size in sizes:
            rows += measure(
                size,
                args.rounds,
                Path(tmp),
                keep=args.keep,
                baseline=args.baseline,
                current=args.code,
                reference=args.reference,
            )
    print(
        f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} CPUs, "
        f"Python {platform.python_version()}; load average before the run "
        f"{load[0]:.2f} {load[1]:.2f} {load[2]:.2f}, after {os.getloadavg()[0]:.2f}"
    )
    command = f"python -m benchmarks.fleet --sizes {args.sizes} --rounds {args.rounds}"
    if args.baseline:
        command += f" --baseline {args.baseline}"
    if args.code:
        command += f" --code {args.code}"
    if args.reference:
        command += " --reference"
    print(f"command: {command}")
    print("\n".join(rows))
    return 0


if __name__ == "__main__":
    sys.exit(main())
