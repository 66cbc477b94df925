"""What obskit's four Celery receivers cost per task, hot and with cold caches.

    python -m benchmarks.celery_receivers                    # ~1.5 minutes on 2 cores
    python -m benchmarks.celery_receivers --baseline DIR     # and another tree: ~3 minutes

`benchmarks.celery_tasks` measures the real thing (a worker draining a real Redis) but takes
minutes and moves by +-20 us between runs. This probe calls the receivers Celery would call
(`before_task_publish`, `after_task_publish`, `task_prerun`, `task_postrun`) directly, with a
task and request shaped like a worker's, and times each with `time.perf_counter`:
- hot: one task after another in a tight loop (everything stays in the CPU caches);
- cold: between two receivers, a step that touches 16 MiB and runs unrelated Python (a JSON
  round trip), as the worker's own code (kombu, redis-py, Celery) does between them. Inside a
  real worker the receivers cost about three times their hot cost; this step reproduces that
  within a few microseconds (2026-11-29: cold 62 us against 72 us timed inside a worker).

Spans go to a null exporter (the export thread stays asleep: its encoding is measured by the
real benchmark), the task line to /dev/null. The bookkeeping a worker batches
(obskit.runtime.later) runs inside whichever receiver fills a batch, so it is in the totals.
One fresh process per tree and round, trees interleaved (the order rotated each round); the
report gives medians over rounds.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
import types
from pathlib import Path
from typing import Any

_ROOT = Path(__file__).resolve().parent.parent
RECEIVERS = ("before_task_publish", "after_task_publish", "task_prerun", "task_postrun")


def child(cold: bool, tasks: int) -> list[float]:
    """Microseconds per task spent in each receiver (median of 5 passes over `tasks` tasks)."""
    from celery import Celery
    from opentelemetry.sdk.trace.export import SpanExporter, SpanExportResult

    import obskit
    from obskit.integrations import celery as adapter

    class Null(SpanExporter):
        reads_lean_spans = True

        def export(self, spans: Any) -> SpanExportResult:
            return SpanExportResult.SUCCESS

    app = Celery("probe", broker="memory://")
    obskit.init(
        None,
        service="probe",
        span_exporter=Null(),
        span_batch_size=8192,
        span_export_interval=3600.0,
        log_format="json",
        log_stream=open(os.devnull, "wb"),  # noqa: SIM115 - lives as long as the process
    )
    big = bytearray(16 * 1024 * 1024)
    blob = {f"k{i}": [i, str(i), {"x": i}] for i in range(300)}

    def evict() -> None:
        for offset in range(0, len(big), 4096):
            big[offset] = (big[offset] + 1) & 255
        json.loads(json.dumps(blob))

    clock = time.perf_counter
    spent = [0.0] * 4

    def one(i: int) -> None:
        task_id = f"0f1e2d3c-{i:08d}"
        headers = {"lang": "py", "task": "probe.noop", "id": task_id, "retries": 0, "eta": None}
        request = types.SimpleNamespace(
            is_eager=False,
            delivery_info={"routing_key": "celery", "exchange": ""},
            headers=headers,
            eta=None,
            retries=0,
        )
        task = types.SimpleNamespace(request=request, name="probe.noop", queue=None, app=app)
        calls = (
            lambda: adapter._before_publish(
                sender="probe.noop", headers=headers, routing_key="celery", body=((i,), {}, {})
            ),
            lambda: adapter._after_publish(sender="probe.noop", headers=headers, body=None),
            lambda: adapter._task_prerun(sender=task, task_id=task_id, task=task),
            lambda: adapter._task_postrun(
                sender=task, task_id=task_id, task=task, retval=None, state="SUCCESS"
            ),
        )
        for index, call in enumerate(calls):
            if cold:
                evict()
            start = clock()
            call()
            spent[index] += clock() - start

    for i in range(min(tasks, 1000)):  # warm-up
        one(i)
    passes = []
    for _ in range(5):
        spent[:] = [0.0] * 4
        for i in range(tasks):
            one(i)
        passes.append([s / tasks * 1e6 for s in spent])
    obskit.shutdown()
    return [statistics.median(p[k] for p in passes) for k in range(4)]


def _run(tree: Path, cold: bool, tasks: int) -> list[float]:
    """One child process probing the obskit of `tree` (this file drives it, whatever the tree)."""
    argv = [sys.executable, __file__, "--child", "--tasks", str(tasks)]
    if cold:
        argv.append("--cold")
    env = {**os.environ, "PYTHONPATH": str(tree)}
    out = subprocess.run(
        argv, cwd=tree, env=env, capture_output=True, text=True, check=False, timeout=600
    )
    if out.returncode != 0:
        raise RuntimeError(f"probe of {tree} failed:\n{out.stderr[-2000:]}")
    result: list[float] = json.loads(out.stdout.strip().splitlines()[-1])
    return result


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--baseline", type=Path, help="another obskit tree (e.g. a git archive of main)")
    p.add_argument("--rounds", type=int, default=3, help="interleaved rounds (default 3)")
    p.add_argument("--tasks", type=int, default=0, help="tasks per pass (default: 20000/2000)")
    p.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    p.add_argument("--cold", action="store_true", help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.child:
        print(json.dumps(child(args.cold, args.tasks or (2000 if args.cold else 20000))))
        return 0
    trees = {"this tree": _ROOT}
    if args.baseline is not None:
        trees["baseline"] = args.baseline.resolve()
    results: dict[tuple[str, bool], list[list[float]]] = {}
    from benchmarks import rotated  # here: a child may import an older tree's package

    for r in range(args.rounds):
        for cold in (False, True):
            for name, tree in rotated(trees.items(), r):
                results.setdefault((name, cold), []).append(_run(tree, cold, args.tasks))
    print("| tree | caches | " + " | ".join(RECEIVERS) + " | total (us/task) |")
    print("|---|---|" + "---|" * (len(RECEIVERS) + 1))
    for (name, cold), rows in results.items():
        med = [statistics.median(r[k] for r in rows) for k in range(4)]
        cells = " | ".join(f"{v:.1f}" for v in med)
        print(f"| {name} | {'cold' if cold else 'hot'} | {cells} | {sum(med):.1f} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
