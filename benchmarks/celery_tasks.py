"""The Celery benchmark: time added per task (publish + process) by obskit and by the peer stack.

    python -m benchmarks.celery_tasks            # ~5 minutes on 2 cores
    python -m benchmarks.celery_tasks --quick    # smoke run
    python -m benchmarks.celery_tasks --baseline DIR   # + obskit from DIR (before/after)

A real Redis broker (examples.lab.redis), a solo-pool worker, one fresh process per variant and
round, variants interleaved round-robin with the order rotated each round (no variant always
follows the same one). Each child process publishes N no-op tasks with `delay()` (timed),
then runs a solo `celery worker` in-process that drains them (timed from the first task's
start to the last task's end, so worker start-up is excluded). Per task: publish time / N +
processing time / (N - 1). The added time is the variant's median minus bare's; the report
also gives the ratio round by round with a sign-test interval (how sure one run is). Spans
go to one OTLP/HTTP receiver in its own process (count-only); the count after each child
exits, against 2 spans per task (producer + consumer), is the export completeness.

Variants:
- bare: Celery alone;
- obskit: `obskit.init(None, ...)` (the publishing side) and `obskit.init(app, ...)` (the worker
  side; the same process here), JSON logs to a file (one `event: task` line per task);
- peer: opentelemetry-instrumentation-celery with the SDK's BatchSpanProcessor and the OTLP/HTTP
  exporter, a prometheus-client counter and histogram fed by task_prerun/task_postrun, and
  asgi-correlation-id's Celery extension (correlation IDs and Celery task IDs through headers).

Then one longer obskit run (10,000 tasks by default) samples the process's RSS every 1,000 tasks.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

VARIANTS = ("bare", "obskit", "peer")
BASELINE = "obskit-baseline"
"""With --baseline DIR: obskit from another tree (e.g. a `git archive` of main), interleaved
with the others, for before/after in one run."""
_ROOT = Path(__file__).resolve().parent.parent
STRETCH_TIMERS = "OBSKIT_BENCH_STRETCH_TIMERS"
"""Set by benchmarks.celery_instructions (under valgrind, ~50x slower): obskit's idle interval
is stretched to an hour, so its batches fill by size as in a real run."""


# ------------------------------------------------------------------------- child ---


def _rss_kib() -> int:
    with open("/proc/self/statm") as f:
        pages = int(f.read().split()[1])
    return pages * os.sysconf("SC_PAGE_SIZE") // 1024


def _setup_peer(app: Any, endpoint: str) -> Any:
    from asgi_correlation_id.extensions.celery import (
        load_celery_current_and_parent_ids,
        load_correlation_ids,
    )
    from celery import signals
    from opentelemetry import trace
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
    from opentelemetry.instrumentation.celery import CeleryInstrumentor
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor
    from prometheus_client import Counter, Histogram

    provider = TracerProvider(resource=Resource.create({"service.name": "bench"}))
    provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter(endpoint=endpoint)))
    trace.set_tracer_provider(provider)
    CeleryInstrumentor().instrument()
    load_correlation_ids()
    load_celery_current_and_parent_ids()
    tasks = Counter("celery_tasks", "Tasks by name and state.", ["task", "state"])
    duration = Histogram("celery_task_duration_seconds", "Task duration.", ["task"])
    started: dict[str, float] = {}

    def prerun(task_id: str = "", **_: Any) -> None:
        started[task_id] = time.perf_counter()

    def postrun(task_id: str = "", task: Any = None, state: Any = None, **_: Any) -> None:
        begin = started.pop(task_id, None)
        if begin is not None:
            duration.labels(task.name).observe(time.perf_counter() - begin)
        tasks.labels(task.name, str(state)).inc()

    signals.task_prerun.connect(prerun, weak=False)
    signals.task_postrun.connect(postrun, weak=False)
    return provider


def child(args: argparse.Namespace) -> int:
    from celery import Celery, signals

    app = Celery("bench", broker=args.broker)
    app.conf.update(
        task_default_queue=args.queue,
        task_ignore_result=True,
        worker_prefetch_multiplier=64,
        broker_connection_retry_on_startup=True,
        worker_hijack_root_logger=True,
    )

    @app.task(name="bench.noop")
    def noop(i: int) -> None:
        return None

    provider = None
    if args.variant == "obskit":
        import obskit

        if os.environ.get(STRETCH_TIMERS):
            try:
                from obskit.runtime import later
            except ImportError:  # an older tree: nothing to stretch
                pass
            else:
                setattr(later, "INTERVAL", 3600.0)  # noqa: B010 - a Final, stretched on purpose

        obskit.init(None, service="bench", otlp_endpoint=args.otlp, log_format="json")
        obskit.init(app, service="bench")  # the worker's line: this process already has init()
    elif args.variant == "peer":
        provider = _setup_peer(app, args.otlp)

    n = args.tasks
    c0, t0 = time.process_time(), time.perf_counter()
    for i in range(n):
        noop.delay(i)
    publish = time.perf_counter() - t0
    publish_cpu = time.process_time() - c0

    state: dict[str, Any] = {"done": 0, "first": None, "last": None, "rss": []}

    def on_prerun(**_: Any) -> None:
        if state["first"] is None:
            state["first"] = time.perf_counter()
            state["first_cpu"] = time.process_time()

    def on_postrun(**_: Any) -> None:
        state["done"] += 1
        done = state["done"]
        if args.rss_every and done % args.rss_every == 0:
            state["rss"].append((done, _rss_kib()))
        if done == n:
            state["last"] = time.perf_counter()
            state["last_cpu"] = time.process_time()
            os.kill(os.getpid(), signal.SIGTERM)  # Celery's warm shutdown

    signals.task_prerun.connect(on_prerun, weak=False)
    signals.task_postrun.connect(on_postrun, weak=False)
    worker = app.Worker(
        pool_cls="solo",
        concurrency=1,
        loglevel="WARNING",
        without_mingle=True,
        without_gossip=True,
        without_heartbeat=True,
        quiet=True,
        hostname=f"bench-{args.variant}@localhost",
    )
    worker.start()
    if provider is not None:
        provider.shutdown()
    elif args.variant == "obskit":
        import obskit

        obskit.shutdown()
    process = state["last"] - state["first"]
    result = {
        "counted": _counted(args.variant),
        "variant": args.variant,
        "tasks": n,
        "publish_us": publish / n * 1e6,
        "process_us": process / max(1, n - 1) * 1e6,
        "publish_cpu_us": publish_cpu / n * 1e6,
        "process_cpu_us": (state["last_cpu"] - state["first_cpu"]) / max(1, n - 1) * 1e6,
        "rss": state["rss"],
    }
    Path(args.result).write_text(json.dumps(result))
    return 0


def _counted(variant: str) -> float | None:
    """Tasks the variant's own metrics counted (None for bare): each variant proves its job."""
    from prometheus_client import REGISTRY

    name = {"obskit": "messaging_process_duration_seconds_count", "peer": "celery_tasks_total"}
    wanted = name.get(variant)
    if wanted is None:
        return None
    return sum(
        sample.value
        for metric in REGISTRY.collect()
        for sample in metric.samples
        if sample.name == wanted
    )


# ------------------------------------------------------------------------ parent ---


def child_command(  # noqa: PLR0917
    variant: str, tasks: int, broker: str, otlp: str, queue: str, result: Path, rss_every: int = 0
) -> list[str]:
    """The command line of one child (run it with obskit's tree as cwd and PYTHONPATH)."""
    return [sys.executable, str(Path(__file__).resolve()), "--child", variant,
            "--tasks", str(tasks), "--broker", broker, "--otlp", otlp, "--queue", queue,
            "--result", str(result), "--rss-every", str(rss_every)]  # fmt: skip


def _run_child(  # noqa: PLR0917
    variant: str,
    tasks: int,
    broker: str,
    otlp: str,
    queue: str,
    workdir: Path,
    rss_every: int = 0,
    baseline: Path | None = None,
) -> dict[str, Any]:
    result = workdir / f"{queue}.json"
    log = workdir / f"{queue}.log"
    # obskit-baseline: this harness, obskit imported from the baseline tree
    child = "obskit" if variant == BASELINE else variant
    tree = baseline if variant == BASELINE and baseline is not None else _ROOT
    argv = child_command(child, tasks, broker, otlp, queue, result, rss_every)
    env = {**os.environ, "PYTHONPATH": str(tree)}
    with log.open("wb") as out:
        proc = subprocess.run(
            argv, cwd=tree, env=env, stdout=out, stderr=subprocess.STDOUT, timeout=600, check=False
        )
    if proc.returncode != 0 or not result.exists():
        tail = "\n".join(log.read_text(errors="replace").splitlines()[-20:])
        raise RuntimeError(f"{variant} child failed (exit {proc.returncode}):\n{tail}")
    data: dict[str, Any] = json.loads(result.read_text())
    if variant != "bare" and data["counted"] != tasks:
        raise RuntimeError(f"{variant} counted {data['counted']} tasks, {tasks} were run")
    return data


def _conditions() -> str:
    load = os.getloadavg()
    return f"load average {load[0]:.2f} / {load[1]:.2f} / {load[2]:.2f} (1 / 5 / 15 min)"


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m benchmarks.celery_tasks", description=__doc__)
    p.add_argument("--quick", action="store_true", help="smoke run")
    p.add_argument("--rounds", type=int, help="interleaved rounds (default 5; quick 1)")
    p.add_argument("--tasks", type=int, help="tasks per variant per round (default 2000)")
    p.add_argument("--rss-tasks", type=int, help="tasks of the RSS run (default 10000)")
    p.add_argument("--out", type=Path, help="also write the Markdown report here")
    p.add_argument(
        "--baseline", type=Path, help="also run obskit from this tree (variant obskit-baseline)"
    )
    p.add_argument("--child", choices=VARIANTS, help=argparse.SUPPRESS)
    p.add_argument("--broker", help=argparse.SUPPRESS)
    p.add_argument("--otlp", help=argparse.SUPPRESS)
    p.add_argument("--queue", help=argparse.SUPPRESS)
    p.add_argument("--result", help=argparse.SUPPRESS)
    p.add_argument("--rss-every", type=int, default=0, help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.child:
        args.variant = args.child
        return child(args)

    from benchmarks import rotated  # here: a child may import an older tree's package
    from benchmarks.receiver import ReceiverProcess
    from benchmarks.report import machine
    from examples.lab.redis import Redis

    rounds = args.rounds or (1 if args.quick else 5)
    tasks = args.tasks or (300 if args.quick else 2000)
    rss_tasks = args.rss_tasks or (2000 if args.quick else 10000)
    before = _conditions()
    variants = (*VARIANTS, BASELINE) if args.baseline is not None else VARIANTS
    results: dict[str, list[dict[str, Any]]] = {v: [] for v in variants}
    spans: dict[str, list[tuple[int, int]]] = {v: [] for v in variants}
    with tempfile.TemporaryDirectory(prefix="obskit-bench-celery-") as tmp, Redis() as redis:
        workdir = Path(tmp)
        receiver = ReceiverProcess()
        try:
            for r in range(rounds):
                for variant in rotated(variants, r):
                    seen = receiver.spans()
                    res = _run_child(
                        variant, tasks, redis.url, receiver.endpoint + "/v1/traces",
                        f"bench-{variant}-{r}", workdir, baseline=args.baseline,
                    )  # fmt: skip
                    results[variant].append(res)
                    spans[variant].append((receiver.settle() - seen, 2 * tasks))
                    print(
                        f"round {r + 1}/{rounds} {variant:<7} publish {res['publish_us']:7.1f} us"
                        f"  process {res['process_us']:7.1f} us  cpu "
                        f"{res['publish_cpu_us'] + res['process_cpu_us']:7.1f} us",
                        file=sys.stderr,
                    )
            rss_runs = {}
            rss_spans = (0, 0)
            for variant in ("bare", "obskit"):
                seen = receiver.spans()
                rss_runs[variant] = _run_child(
                    variant, rss_tasks, redis.url, receiver.endpoint + "/v1/traces",
                    f"bench-rss-{variant}", workdir, rss_every=1000,
                )  # fmt: skip
                if variant == "obskit":
                    rss_spans = (receiver.settle() - seen, 2 * rss_tasks)
        finally:
            receiver.stop()
    after = _conditions()
    text = _report(results, spans, rss_runs, rss_spans, rounds, tasks, before, after, machine())
    print(text)
    if args.out is not None:
        args.out.write_text(text)
    return 0


def _report(  # noqa: PLR0917
    results: dict[str, list[dict[str, Any]]],
    spans: dict[str, list[tuple[int, int]]],
    rss_runs: dict[str, dict[str, Any]],
    rss_spans: tuple[int, int],
    rounds: int,
    tasks: int,
    before: str,
    after: str,
    machine: str,
) -> str:
    def med(variant: str, key: str) -> float:
        return statistics.median(r[key] for r in results[variant])

    total = {v: med(v, "publish_us") + med(v, "process_us") for v in results}
    cpu = {v: med(v, "publish_cpu_us") + med(v, "process_cpu_us") for v in results}
    lines = [
        f"### Celery tasks: publish + process, real Redis, solo pool ({rounds} interleaved "
        f"rounds x {tasks} tasks)",
        "",
        f"Machine: {machine}. Before: {before}; after: {after}.",
        "",
        "| variant | publish (us/task) | process (us/task) | total (us/task) | added vs bare "
        "| CPU total (us/task) | CPU added | spans received / sent |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for v in results:
        added = total[v] - total["bare"]
        cpu_added = cpu[v] - cpu["bare"]
        received = sum(s[0] for s in spans[v])
        expected = sum(s[1] for s in spans[v]) if v != "bare" else 0
        share = f"{received} / {expected} ({100.0 * received / expected:.1f}%)" if expected else "-"
        lines.append(
            f"| {v} | {med(v, 'publish_us'):.1f} | {med(v, 'process_us'):.1f} | {total[v]:.1f} "
            f"| {'-' if v == 'bare' else f'+{added:.1f}'} | {cpu[v]:.1f} "
            f"| {'-' if v == 'bare' else f'+{cpu_added:.1f}'} | {share} |"
        )
    obskit_added = total["obskit"] - total["bare"]
    peer_added = total["peer"] - total["bare"]
    ratio = obskit_added / peer_added if peer_added > 0 else float("nan")
    cpu_obskit, cpu_peer = cpu["obskit"] - cpu["bare"], cpu["peer"] - cpu["bare"]
    cpu_ratio = cpu_obskit / cpu_peer if cpu_peer > 0 else float("nan")
    lines += [
        "",
        f"obskit adds {obskit_added:.1f} us per task, the peer {peer_added:.1f} us: "
        f"**{ratio:.2f}x** (bar: at most 0.25x). In CPU time of the process (all its threads, "
        f"span export included; less sensitive to a busy machine): +{cpu_obskit:.1f} us against "
        f"+{cpu_peer:.1f} us, **{cpu_ratio:.2f}x**.",
    ]
    ratios = round_ratios(_totals(results, "obskit"), _totals(results, "peer"),
                          _totals(results, "bare"))  # fmt: skip
    if ratios:  # rounds where the peer added nothing have no ratio
        low, high, coverage = median_interval(ratios)
        lines.append(
            f"\nHow sure: the ratio taken round by round has median "
            f"{statistics.median(ratios):.2f}x; with {100 * coverage:.0f}% confidence (sign test "
            f"over the {len(ratios)} rounds) the median lies in **{low:.2f}x-{high:.2f}x**. The "
            "bar is met beyond the rounds' spread only when the upper end is at most 0.25x."
        )
    if BASELINE in results and peer_added > 0 and cpu_peer > 0:
        base_added = total[BASELINE] - total["bare"]
        base_cpu = cpu[BASELINE] - cpu["bare"]
        diffs = [
            a - b
            for a, b in zip(_totals(results, "obskit"), _totals(results, BASELINE), strict=True)
        ]
        diff_low, diff_high, diff_coverage = median_interval(diffs)
        lines.append(
            f"\nThe baseline tree's obskit adds {base_added:.1f} us "
            f"({base_added / peer_added:.2f}x the peer's; CPU +{base_cpu:.1f} us, "
            f"{base_cpu / cpu_peer:.2f}x). obskit minus the baseline, round by round: median "
            f"{statistics.median(diffs):+.1f} us, in {diff_low:+.1f} to {diff_high:+.1f} us with "
            f"{100 * diff_coverage:.0f}% confidence (an interval that holds 0 is no measured "
            "difference)."
        )
    lines += [
        "",
        f"RSS over {rss_runs['obskit']['tasks']} tasks in one process (KiB, every 1000 tasks; "
        f"obskit spans received {rss_spans[0]} / {rss_spans[1]}):",
        "",
        "| variant | RSS every 1000 tasks (KiB) | last - first |",
        "|---|---|---|",
    ]
    for variant, run in rss_runs.items():
        kib = [k for _, k in run["rss"]]
        lines.append(f"| {variant} | {', '.join(map(str, kib))} | {kib[-1] - kib[0]:+d} |")
    return "\n".join(lines) + "\n"


def _totals(results: dict[str, list[dict[str, Any]]], variant: str) -> list[float]:
    """Publish + process time per task of each round."""
    return [r["publish_us"] + r["process_us"] for r in results[variant]]


def round_ratios(obskit: list[float], peer: list[float], bare: list[float]) -> list[float]:
    """obskit's added time over the peer's, round by round (round i of each list belongs
    together: a round's variants run back to back)."""
    return [(o - b) / (p - b) for o, p, b in zip(obskit, peer, bare, strict=True) if p - b > 0]


def median_interval(values: list[float], level: float = 0.9) -> tuple[float, float, float]:
    """(low, high, coverage): the distribution-free interval for the median of `values`
    between two order statistics (a sign test: each value falls below the true median with
    probability 1/2), the narrowest whose coverage is at least `level`; with too few values
    for that, the whole range and the coverage it has. Rounds here have heavy tails (about
    one in ten moves by 150-250 us): resampling the rounds' median (bootstrap) twice called
    two copies of one tree different, where this interval held 0 both times."""
    ordered = sorted(values)
    n = len(ordered)
    if n == 0:
        return float("nan"), float("nan"), 0.0

    def coverage(k: int) -> float:  # between the k-th lowest and the k-th highest value
        return 1.0 - 2.0 * sum(math.comb(n, i) for i in range(k)) / 2**n

    k = 1
    while 2 * (k + 1) <= n and coverage(k + 1) >= level:
        k += 1
    return ordered[k - 1], ordered[n - k], coverage(k)


if __name__ == "__main__":
    sys.exit(main())
