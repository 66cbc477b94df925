"""One variant in its own process, driven by the coordinator over a pipe.

    python -m benchmarks.worker '{"variant": "peer", "endpoint": ..., "log_path": ...}'

Commands arrive as JSON lines on stdin; answers go out as JSON lines on the
original stdout, which is reserved for the protocol (sys.stdout is pointed at
stderr, so nothing the variant prints can corrupt it).
"""

from __future__ import annotations

import gc
import os
import sys
import time
import traceback
from pathlib import Path
from typing import Any

import orjson


def _rss_kb() -> int:
    with open("/proc/self/status") as fh:
        for line in fh:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


def _thread_cpu_s() -> dict[str, float]:
    """CPU seconds per live thread, by name (per-thread CPU clocks, nanosecond resolution)."""
    import threading

    out: dict[str, float] = {}
    for thread in threading.enumerate():
        if thread.ident is None:
            continue
        try:
            clock = time.pthread_getcpuclockid(thread.ident)
            seconds = time.clock_gettime_ns(clock) / 1e9
        except (OSError, ProcessLookupError):
            continue
        name = "main" if thread is threading.main_thread() else thread.name
        out[name] = out.get(name, 0.0) + seconds
    return out


def main(argv: list[str]) -> int:
    proto = os.fdopen(os.dup(1), "wb", buffering=0)
    os.dup2(2, 1)
    sys.stdout = sys.stderr

    from benchmarks.driver import Driver, WSGIDriver
    from benchmarks.variants import BASELINE_ENV, BASELINE_VARIANT, VARIANTS, Context

    spec = orjson.loads(argv[0])
    variant = VARIANTS[spec["variant"]]
    if variant.name.startswith(BASELINE_VARIANT):
        # another obskit checkout (e.g. an older commit) measured against this one
        sys.path.insert(0, os.environ[BASELINE_ENV])
        sys.modules.pop("obskit", None)
    ctx = Context(
        name=variant.name,
        endpoint=spec.get("endpoint"),
        log_path=Path(spec["log_path"]),
        service=spec.get("service", f"bench-{variant.name}"),
    )

    def reply(obj: dict[str, Any]) -> None:
        proto.write(orjson.dumps(obj) + b"\n")

    try:
        built = variant.build(ctx)
        driver = WSGIDriver(built.app) if built.wsgi else Driver(built.app)
    except Exception:  # noqa: BLE001 - any build failure is reported to the coordinator
        reply({"error": traceback.format_exc()})
        return 1
    reply({"ready": True, "pid": os.getpid(), "rss_kb": _rss_kb()})
    finished = False

    def finish() -> None:
        nonlocal finished
        if not finished:
            finished = True
            built.finish()

    for raw in sys.stdin.buffer:
        cmd = orjson.loads(raw)
        try:
            if cmd["cmd"] == "run":
                n = int(cmd["n"])
                gc.collect()  # outside every clock, as run() does
                before = _thread_cpu_s()
                wall, cpu = driver.run_timed(n, collect=False)
                after = _thread_cpu_s()
                threads = {
                    name: (after[name] - before.get(name, 0.0)) / n * 1e6
                    for name in after
                    if after[name] - before.get(name, 0.0) > 0
                }
                reply({"us": wall, "cpu_us": cpu, "threads_us": threads, "rss_kb": _rss_kb()})
            elif cmd["cmd"] == "selfmetrics":
                reply(built.selfmetrics())
            elif cmd["cmd"] == "finish":
                t0 = time.perf_counter()
                finish()
                reply({"seconds": time.perf_counter() - t0, "rss_kb": _rss_kb()})
            elif cmd["cmd"] == "verify":
                finish()
                result = built.verify(driver)
                result["spans_per_request"] = built.spans_per_request
                reply({"ok": True, "rss_kb": _rss_kb(), **result})
            elif cmd["cmd"] == "quit":
                reply({"bye": True})
                break
            else:
                reply({"error": f"unknown command {cmd!r}"})
        except Exception as exc:  # noqa: BLE001 - reported; the coordinator decides
            reply({"error": f"{type(exc).__name__}: {exc}", "trace": traceback.format_exc()})
    driver.close()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
