"""Profile one variant's request path in-process (what RESULTS.md's profiles come from).

    python -m benchmarks.profile obskit                      # cProfile, top functions
    python -m benchmarks.profile obskit --against bare       # what obskit adds, per request
    python -m benchmarks.profile obskit --tool pyinstrument  # call tree
    py-spy record -r 1000 -o obskit.svg -- python -m benchmarks.profile obskit --tool none

The variant exports to a live receiver process exactly as in the benchmark, so the
export thread competes for the GIL as it does there. With cProfile, only the
request-handling thread is profiled (the export thread is what py-spy shows).
"""

from __future__ import annotations

import argparse
import cProfile
import io
import os
import pstats
import sys
import tempfile
from pathlib import Path

from benchmarks.driver import Driver
from benchmarks.receiver import ReceiverProcess
from benchmarks.variants import VARIANTS, Context


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m benchmarks.profile", description=__doc__)
    p.add_argument("variant", choices=list(VARIANTS))
    p.add_argument("--requests", type=int, default=20000)
    p.add_argument("--warmup", type=int, default=2000)
    p.add_argument(
        "--tool", choices=["cprofile", "pyinstrument", "none", "stats"], default="cprofile"
    )
    p.add_argument("--sort", default="tottime", help="cProfile sort key (tottime, cumulative)")
    p.add_argument("--top", type=int, default=35)
    p.add_argument("--out", type=Path, help="write the report here (pyinstrument: .html ok)")
    p.add_argument(
        "--against",
        choices=list(VARIANTS),
        help="cProfile both (each in a fresh process) and list the functions the first adds,"
        " per request",
    )
    args = p.parse_args(argv)
    if args.against:
        report = _against(args)
        if args.out:
            args.out.write_text(report)
        else:
            print(report)
        return 0

    variant = VARIANTS[args.variant]
    os.environ.update(variant.env)
    receiver = ReceiverProcess() if variant.traces else None
    if receiver is not None:
        os.environ["OTEL_EXPORTER_OTLP_ENDPOINT"] = receiver.endpoint
    workdir = Path(tempfile.mkdtemp(prefix="obskit-profile-"))
    try:
        built = variant.build(
            Context(
                name=variant.name,
                endpoint=receiver.endpoint if receiver else None,
                log_path=workdir / "access.log",
                service=f"profile-{variant.name}",
            )
        )
        driver = Driver(built.app)
        driver.run(args.warmup)
        report = _profile(driver, args)
        built.finish()
        print(f"{variant.name}: {args.requests} requests profiled", file=sys.stderr)
        if args.out:
            args.out.write_text(report)
        else:
            print(report)
    finally:
        if receiver is not None:
            receiver.stop()
    return 0


def _against(args: argparse.Namespace) -> str:
    """Per-request calls and own time of each function, variant minus baseline variant."""
    import json
    import subprocess

    stats = {}
    for name in (args.variant, args.against):
        out = subprocess.run(
            [
                sys.executable, "-m", "benchmarks.profile", name, "--tool", "stats",
                "--requests", str(args.requests), "--warmup", str(args.warmup),
            ],
            check=True, capture_output=True, text=True, timeout=600,
        ).stdout  # fmt: skip
        stats[name] = json.loads(out.splitlines()[-1])
    mine, base = stats[args.variant], stats[args.against]
    rows = []
    for func, (calls, own_us) in mine["functions"].items():
        b_calls, b_us = base["functions"].get(func, (0.0, 0.0))
        if calls - b_calls > 0.01 or own_us - b_us > 2.0:  # new calls, or much slower ones
            rows.append((own_us - b_us, calls - b_calls, func))
    rows.sort(reverse=True)
    lines = [
        f"{args.variant} vs {args.against}, cProfile, {args.requests} requests each"
        f" (times inflated by the profiler; compare them with each other):",
        f"  calls/request {mine['calls']:.0f} vs {base['calls']:.0f};"
        f" profiled us/request {mine['us']:.1f} vs {base['us']:.1f}",
        "",
        "  extra us/req  extra calls/req  function",
    ]
    lines += [f"  {dt:11.2f}  {dn:15.2f}  {func}" for dt, dn, func in rows[: args.top]]
    return "\n".join(lines)


def _profile(driver: Driver, args: argparse.Namespace) -> str:
    if args.tool == "stats":  # machine-readable, for --against
        import json

        prof = cProfile.Profile()
        prof.enable()
        us = driver.run(args.requests)
        prof.disable()
        n = args.requests
        functions = {
            f"{Path(fn).name}:{line}({func})": (nc / n, tt / n * 1e6)
            for (fn, line, func), (_cc, nc, tt, _ct, _callers) in pstats.Stats(prof).stats.items()
        }
        calls = sum(c for c, _ in functions.values())
        return json.dumps({"us": us, "calls": calls, "functions": functions})
    if args.tool == "none":
        us = driver.run(args.requests)
        return f"{us:.1f} us/request (not profiled)"
    if args.tool == "pyinstrument":
        from pyinstrument import Profiler

        profiler = Profiler(interval=0.0002)
        profiler.start()
        us = driver.run(args.requests)
        profiler.stop()
        if args.out and args.out.suffix == ".html":
            return str(profiler.output_html())
        text: str = profiler.output_text(unicode=False, color=False, show_all=False)
        return f"{us:.1f} us/request under pyinstrument\n{text}"
    prof = cProfile.Profile()
    prof.enable()
    us = driver.run(args.requests)
    prof.disable()
    buf = io.StringIO()
    stats = pstats.Stats(prof, stream=buf)
    stats.strip_dirs().sort_stats(args.sort).print_stats(args.top)
    return f"{us:.1f} us/request under cProfile\n{buf.getvalue()}"


if __name__ == "__main__":
    sys.exit(main())
