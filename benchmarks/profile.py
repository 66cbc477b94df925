"""Profile one variant's request path in-process (what RESULTS.md's profiles come from).

    python -m benchmarks.profile obskit                      # cProfile, top functions
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
    p.add_argument("--tool", choices=["cprofile", "pyinstrument", "none"], default="cprofile")
    p.add_argument("--sort", default="tottime", help="cProfile sort key (tottime, cumulative)")
    p.add_argument("--top", type=int, default=35)
    p.add_argument("--out", type=Path, help="write the report here (pyinstrument: .html ok)")
    args = p.parse_args(argv)

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


def _profile(driver: Driver, args: argparse.Namespace) -> str:
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
