"""obskit benchmarks: one command, every variant interleaved in one run.

    python -m benchmarks.run              # full run (~5 minutes on 2 cores)
    python -m benchmarks.run --quick      # smoke run (well under a minute)

Prints a Markdown report (machine, command, tables); `--out FILE` also writes it.
"""

from __future__ import annotations

import argparse
import shlex
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from benchmarks import report
from benchmarks.variants import VARIANTS, default_variants


def _parse(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m benchmarks.run", description=__doc__)
    p.add_argument("--quick", action="store_true", help="smoke run: few requests, short load")
    p.add_argument("--rounds", type=int, help="interleaved rounds (default 5; quick 2)")
    p.add_argument("--requests", type=int, help="requests per variant per round (default 20000)")
    p.add_argument("--warmup", type=int, help="warm-up requests per variant (default 2000)")
    p.add_argument(
        "--variants",
        help="comma-separated variants (default: all but the optional ones); "
        f"known: {', '.join(VARIANTS)}",
    )
    p.add_argument(
        "--components",
        action="store_true",
        help="also run the optional variants (each peer component alone, A/B variants)",
    )
    p.add_argument(
        "--baseline",
        type=Path,
        help="a directory containing another obskit package (e.g. `git archive OLD obskit`):"
        " adds the variant obskit-baseline, measured in the same interleaved run",
    )
    p.add_argument("--no-inprocess", action="store_true", help="skip the in-process benchmark")
    p.add_argument(
        "--no-django", action="store_true", help="skip the in-process Django (WSGI) benchmark"
    )
    p.add_argument("--no-server", action="store_true", help="skip the uvicorn + wrk run")
    p.add_argument(
        "--server-variants",
        default="bare,peer,obskit",
        help="variants for the uvicorn + wrk run (default: bare,peer,obskit)",
    )
    p.add_argument("--server-duration", type=float, help="wrk seconds per variant (default 10)")
    p.add_argument("--connections", type=int, default=32, help="wrk connections (default 32)")
    p.add_argument("--no-startup", action="store_true", help="skip import/--help timings")
    p.add_argument("--no-memory", action="store_true", help="skip the collector-down memory run")
    p.add_argument(
        "--memory-variants",
        help="variants for the collector-down memory run (default: obskit)",
    )
    p.add_argument(
        "--memory-requests", type=int, help="requests with the collector down (default 100000)"
    )
    p.add_argument("--out", type=Path, help="also write the Markdown report to this file")
    p.add_argument("--keep", action="store_true", help="keep the work dir (logs, stderr)")
    args = p.parse_args(argv)
    quick = args.quick
    args.rounds = args.rounds or (2 if quick else 5)
    args.requests = args.requests or (1000 if quick else 20000)
    args.warmup = args.warmup if args.warmup is not None else (200 if quick else 2000)
    args.server_duration = args.server_duration or (2.0 if quick else 10.0)
    args.memory_requests = args.memory_requests or (5000 if quick else 100_000)
    return args


def main(argv: list[str] | None = None) -> int:
    args = _parse(argv)
    names = args.variants.split(",") if args.variants else default_variants()
    if args.baseline:
        import os

        from benchmarks.variants import BASELINE_ENV, BASELINE_VARIANT

        os.environ[BASELINE_ENV] = str(args.baseline.resolve())
        if BASELINE_VARIANT not in names:
            names.insert(
                names.index("obskit") + 1 if "obskit" in names else len(names), BASELINE_VARIANT
            )
    if args.components:
        names += [
            v.name
            for v in VARIANTS.values()
            if v.optional
            and v.group == "fastapi"
            and v.name not in names
            and not v.name.startswith("obskit-baseline")
        ]
    unknown = [n for n in names if n not in VARIANTS]
    if unknown:
        print(f"unknown variants {unknown}; known: {list(VARIANTS)}", file=sys.stderr)
        return 2
    workdir = Path(tempfile.mkdtemp(prefix="obskit-bench-"))
    command = "python -m benchmarks.run " + shlex.join(argv if argv is not None else sys.argv[1:])
    sections = [
        "# obskit benchmark report",
        f"- machine: {report.machine()}",
        f"- command: `{command.strip()}`",
        f"- date: {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}",
    ]
    failed = False

    def progress(msg: str) -> None:
        print(msg, file=sys.stderr, flush=True)

    t0 = time.monotonic()
    try:
        if not args.no_inprocess:
            from benchmarks.inprocess import run_inprocess

            progress(
                f"in-process: {len(names)} variants x {args.rounds} rounds x {args.requests} req"
            )
            results = run_inprocess(
                names,
                rounds=args.rounds,
                requests=args.requests,
                warmup=args.warmup,
                workdir=workdir,
                progress=progress,
            )
            failed |= any(not r.verification.get("ok") for r in results)
            sections += [
                "",
                f"## In-process ASGI ({args.rounds} interleaved rounds x {args.requests} requests,"
                f" {args.warmup} warm-up; GET /items/{{item_id}})",
                "",
                report.inprocess_table(results),
                "",
                "CPU us per request by thread (median over rounds, per-thread CPU clocks):",
                "",
                report.threads_table(results),
            ]
        if not args.no_django:
            from benchmarks.inprocess import run_inprocess

            django_names = default_variants("django")
            progress(f"in-process Django: {len(django_names)} variants x {args.rounds} rounds")
            dresults = run_inprocess(
                django_names,
                rounds=args.rounds,
                requests=args.requests,
                warmup=args.warmup,
                workdir=workdir,
                progress=progress,
            )
            failed |= any(not r.verification.get("ok") for r in dresults)
            sections += [
                "",
                f"## In-process Django WSGI ({args.rounds} interleaved rounds x {args.requests}"
                f" requests, {args.warmup} warm-up; GET /items/<int:item_id>)",
                "",
                report.inprocess_table(dresults, bare="django-bare", peer="django-peer"),
                "",
                "CPU us per request by thread (median over rounds, per-thread CPU clocks):",
                "",
                report.threads_table(dresults),
            ]
        if not args.no_server:
            from benchmarks.server import run_server, wrk_available

            server_names = [n for n in args.server_variants.split(",") if n in VARIANTS]
            if wrk_available():
                progress(f"server: uvicorn + wrk, {args.server_duration:g}s per variant")
                sresults = run_server(
                    server_names,
                    duration=args.server_duration,
                    connections=args.connections,
                    workdir=workdir,
                    progress=progress,
                )
                sections += [
                    "",
                    f"## uvicorn on 127.0.0.1 + wrk (1 worker, -t1 -c{args.connections},"
                    f" {args.server_duration:g}s per variant after a 1s warm-up)",
                    "",
                    report.server_table(sresults),
                ]
            else:
                sections += ["", "## uvicorn + wrk: skipped (wrk not installed)"]
        if not args.no_memory:
            sections += _memory(args, workdir, progress)
        if not args.no_startup:
            from benchmarks.startup import run_startup

            progress("start-up: import obskit, obskit --help")
            rows = run_startup(3 if args.quick else 7)
            sections += [
                "",
                "## Start-up (fresh process, median)",
                "",
                report.kv_table("command", rows),
            ]
    finally:
        if args.keep:
            progress(f"work dir kept: {workdir}")
        else:
            shutil.rmtree(workdir, ignore_errors=True)
    sections += ["", f"_total wall time {time.monotonic() - t0:.0f} s_", ""]
    text = "\n".join(sections)
    print(text)
    if args.out:
        args.out.write_text(text)
    return 1 if failed else 0


def _memory(args: argparse.Namespace, workdir: Path, progress: Any) -> list[str]:
    from benchmarks.memory import run_memory

    names = (
        args.memory_variants.split(",")
        if args.memory_variants
        else [n for n in ("obskit",) if n in VARIANTS]
    )
    if not names:
        return ["", "## Memory with the collector down: skipped (no obskit variant)"]
    out = [
        "",
        f"## Memory with the collector down or hanging ({args.memory_requests} requests;"
        " down: a loopback port that refuses, hanging: one that accepts and never answers)",
        "",
        "| variant | RSS after warm-up | RSS after | max RSS | RSS after each 10% (MiB)"
        " | us/request first-last batch | shutdown | self-metrics |",
        "|---|---:|---:|---:|---|---:|---:|---|",
    ]
    for name, hanging in [(n, h) for n in names for h in (False, True)]:
        state = "hanging" if hanging else "down"
        progress(f"memory: {name}, {args.memory_requests} requests, collector {state}")
        m = run_memory(
            name,
            requests=args.memory_requests,
            batch=max(1000, args.memory_requests // 10),
            warmup=args.warmup,
            workdir=workdir,
            hanging=hanging,
        )
        selfm = ", ".join(f"{k} {v}" for k, v in m.extra.items()) or "-"
        out.append(
            f"| {m.name} | {m.rss_before_kb / 1024:.1f} MiB | {m.rss_after_kb / 1024:.1f} MiB | "
            f"{m.rss_max_kb / 1024:.1f} MiB | "
            + " ".join(f"{kb / 1024:.1f}" for kb in m.rss_series_kb)
            + f" | {m.us_per_request[0]:.0f}-{m.us_per_request[-1]:.0f}"
            f" | {m.shutdown_s:.2f} s | {selfm} |"
        )
    return out


if __name__ == "__main__":
    sys.exit(main())
