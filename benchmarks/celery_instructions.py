"""The Celery benchmark's work counted instead of timed: instructions and cache misses per task.

    python -m benchmarks.celery_instructions                   # ~5 minutes on 2 cores
    python -m benchmarks.celery_instructions --baseline DIR    # + obskit from DIR (before/after)

`benchmarks.celery_tasks` times the real thing, and one run's ratio moves by +-0.1 with the
machine's mood. This runs the same child (publish N no-op tasks to a real Redis, drain them
with a solo worker, spans to the same OTLP receiver) under valgrind's cachegrind, which counts
what the CPU is asked to do: instructions (Ir), first-level instruction and data cache misses
(I1, D1) and last-level misses (LL), for every thread of the process (span export included).
The same code gives the same counts within about 0.5%, so a change of a few microseconds shows
in one run. Each variant runs twice, with `--low` and `--high` tasks; the difference divided by
the difference in tasks is the cost of one more task (start-up and shutdown cancel out).

Under valgrind everything runs about 50 times slower, so what is flushed on a timer would be
flushed 50 times as often as in a real run, in tiny batches: obskit's export interval and idle
interval and the SDK's BatchSpanProcessor delay are stretched to an hour, so batches fill by
size, as they do in the timed benchmark. Estimated cycles weigh a first-level miss 10 and a
last-level miss 100 instructions; that is a model, not a measurement: the timed benchmark
stays the judge of the bar. Needs valgrind (Debian package `valgrind`).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from benchmarks import celery_tasks

_ROOT = Path(__file__).resolve().parent.parent
EVENTS = ("Ir", "I1", "D1", "LL")
_TOTALS = {
    "Ir": r"I\s+refs:\s+([\d,]+)",
    "I1": r"I1\s+misses:\s+([\d,]+)",
    "D1": r"D1\s+misses:\s+([\d,]+)",
    "LL": r"LL misses:\s+([\d,]+)",
}
_MIN_SPREAD = 256
"""Tasks between the two runs: fewer could miss the span export (a batch per 512 spans, two
per task) and the bookkeeping batches, and undercount obskit (20 vs 40 tasks: 0.17x)."""
_STRETCHED = {
    "OBSKIT_SPAN_EXPORT_INTERVAL": "3600",
    "OTEL_BSP_SCHEDULE_DELAY": "3600000",
    celery_tasks.STRETCH_TIMERS: "1",  # obskit's idle interval (obskit.runtime.later)
}


def estimated_cycles(counts: dict[str, float]) -> float:
    return counts["Ir"] + 10 * (counts["I1"] + counts["D1"]) + 100 * counts["LL"]


def _count(  # noqa: PLR0917
    variant: str, tasks: int, broker: str, otlp: str, workdir: Path, tree: Path
) -> dict[str, int]:
    """Totals of one celery_tasks child (obskit from `tree`) run under cachegrind."""
    out = workdir / f"cachegrind.{variant}.{tasks}"
    argv = [
        "valgrind", "--tool=cachegrind", "--cache-sim=yes", f"--cachegrind-out-file={out}",
        *celery_tasks.child_command(
            variant, tasks, broker, otlp, f"instr-{variant}-{tasks}", workdir / "result.json"
        ),
    ]  # fmt: skip
    env = {**os.environ, **_STRETCHED, "PYTHONPATH": str(tree)}
    proc = subprocess.run(
        argv, cwd=tree, env=env, capture_output=True, text=True, timeout=1800, check=False
    )
    counts = {}
    for event, pattern in _TOTALS.items():
        found = re.search(pattern, proc.stderr)
        if proc.returncode != 0 or found is None:
            tail = "\n".join(proc.stderr.splitlines()[-20:])
            raise RuntimeError(f"{variant} under cachegrind: exit {proc.returncode}\n{tail}")
        counts[event] = int(found.group(1).replace(",", ""))
    out.unlink(missing_ok=True)
    return counts


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(
        prog="python -m benchmarks.celery_instructions",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--low", type=int, default=100, help="tasks of the short run (default 100)")
    p.add_argument("--high", type=int, default=500, help="tasks of the long run (default 500)")
    p.add_argument("--baseline", type=Path, help="also count obskit from this tree")
    p.add_argument("--out", type=Path, help="also write the Markdown report here")
    args = p.parse_args(argv)
    if shutil.which("valgrind") is None:
        print("valgrind not found: install the Debian package 'valgrind'", file=sys.stderr)
        return 2
    if args.high - args.low < _MIN_SPREAD:
        p.error(f"--high must be at least {_MIN_SPREAD} tasks more than --low")

    from benchmarks.receiver import ReceiverProcess
    from examples.lab.redis import Redis

    variants: list[tuple[str, Path]] = [(v, _ROOT) for v in celery_tasks.VARIANTS]
    if args.baseline is not None:
        variants.append((celery_tasks.BASELINE, args.baseline.resolve()))
    per_task: dict[str, dict[str, float]] = {}
    with tempfile.TemporaryDirectory(prefix="obskit-bench-instr-") as tmp, Redis() as redis:
        receiver = ReceiverProcess()
        try:
            for name, tree in variants:
                child = "obskit" if name == celery_tasks.BASELINE else name
                runs = [
                    _count(child, n, redis.url, receiver.endpoint + "/v1/traces", Path(tmp), tree)
                    for n in (args.low, args.high)
                ]
                per_task[name] = {
                    e: (runs[1][e] - runs[0][e]) / (args.high - args.low) for e in EVENTS
                }
                print(f"{name}: {json.dumps(per_task[name])}", file=sys.stderr)
        finally:
            receiver.stop()
    text = report(per_task, args.low, args.high)
    print(text)
    if args.out is not None:
        args.out.write_text(text)
    return 0


def report(per_task: dict[str, dict[str, float]], low: int, high: int) -> str:
    bare = per_task["bare"]
    lines = [
        f"### Celery tasks under cachegrind: per task, runs of {low} and {high} tasks",
        "",
        "| variant | instructions | I1 misses | D1 misses | LL misses | est. cycles | added "
        "instructions | added est. cycles |",
        "|---|---|---|---|---|---|---|---|",
    ]
    added: dict[str, tuple[float, float]] = {}
    for name, counts in per_task.items():
        extra = counts["Ir"] - bare["Ir"]
        extra_cycles = estimated_cycles(counts) - estimated_cycles(bare)
        added[name] = (extra, extra_cycles)
        plus = "-" if name == "bare" else f"+{extra:,.0f}"
        plus_cycles = "-" if name == "bare" else f"+{extra_cycles:,.0f}"
        lines.append(
            f"| {name} | {counts['Ir']:,.0f} | {counts['I1']:,.0f} | {counts['D1']:,.0f} "
            f"| {counts['LL']:,.1f} | {estimated_cycles(counts):,.0f} | {plus} | {plus_cycles} |"
        )
    peer = added["peer"]
    lines.append("")
    for name in per_task:
        if name in ("bare", "peer") or peer[0] <= 0 or peer[1] <= 0:
            continue
        extra, cycles = added[name]
        lines.append(
            f"{name} adds {extra / peer[0]:.2f}x the peer's instructions and "
            f"{cycles / peer[1]:.2f}x its estimated cycles (bar, in time: at most 0.25x)."
        )
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    sys.exit(main())
