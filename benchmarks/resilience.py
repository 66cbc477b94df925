"""The resilience benchmark: what obskit's adapters add to a call through a retry policy or a
circuit breaker that succeeds on the first attempt (issue 9: at most 3 us per call).

    python -m benchmarks.resilience            # ~1 minute on 2 cores
    python -m benchmarks.resilience --quick    # smoke run

One fresh process per variant and round, variants interleaved (the order rotates every round):
- plain: the libraries alone (obskit not imported);
- obskit: the same functions, decorated at import as usual, then `obskit.init(None, ...)` (the
  adapters activate for the already-imported libraries), JSON logs to /dev/null.
Each process builds every wrapped function, warms each up, then times `--calls` calls of each in
turn (a tight loop around the call, `time.perf_counter_ns`; an async function is awaited call
after call inside one coroutine, as a handler would). Score: median over rounds of ns per
call; added = obskit's median - plain's. A process also checks that obskit counted every call
(obskit_retry_calls_total{outcome="success"} and obskit_circuit_breaker_calls_total{outcome=
"success"} equal the calls made), so a variant that silently recorded nothing cannot look cheap.

The request-path side of the issue (HTTP overhead with the adapters installed) is measured by
`python -m benchmarks.run` with the variant `obskit-resilience`; see benchmarks/RESULTS.md.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from benchmarks import rotated

VARIANTS = ("plain", "obskit")
_ROOT = Path(__file__).resolve().parent.parent

# The wrapped functions, as their libraries' docs show them: (name, target in issue 9 or not).
FUNCTIONS = (
    ("tenacity @retry", True),
    ("tenacity @retry (async)", True),
    ("pybreaker @breaker", True),
    ("stamina @retry", False),
    ("backoff @on_exception", False),
    ("circuitbreaker @circuit", False),
    ("plain function (floor)", False),
)
TARGET_NS = 3000.0


def _build() -> dict[str, tuple[Callable[[int], Any], str | None, str | None]]:
    """name -> (call, operation or None, breaker or None); every call succeeds at once."""
    import backoff
    import circuitbreaker
    import pybreaker
    import stamina
    from tenacity import retry, retry_if_exception_type, stop_after_attempt, wait_exponential

    @retry(
        stop=stop_after_attempt(3),
        wait=wait_exponential(multiplier=0.1, max=2),
        retry=retry_if_exception_type(ConnectionError),
    )
    def charge(i: int) -> int:
        return i + 1

    @retry(
        stop=stop_after_attempt(3),
        wait=wait_exponential(multiplier=0.1, max=2),
        retry=retry_if_exception_type(ConnectionError),
    )
    async def charge_async(i: int) -> int:
        return i + 1

    payments = pybreaker.CircuitBreaker(fail_max=5, reset_timeout=30, name="payments")

    @payments
    def pay(i: int) -> int:
        return i + 1

    @stamina.retry(on=ConnectionError, attempts=3)
    def fetch(i: int) -> int:
        return i + 1

    @backoff.on_exception(backoff.expo, ConnectionError, max_tries=3)
    def send(i: int) -> int:
        return i + 1

    @circuitbreaker.circuit(failure_threshold=5, recovery_timeout=30, name="refunds")
    def refund(i: int) -> int:
        return i + 1

    def floor(i: int) -> int:
        return i + 1

    here = f"{__name__}._build.<locals>"  # __main__ in the child process
    return {
        "tenacity @retry": (charge, f"{here}.charge", None),
        "tenacity @retry (async)": (charge_async, f"{here}.charge_async", None),
        "pybreaker @breaker": (pay, None, "payments"),
        "stamina @retry": (fetch, f"{here}.fetch", None),
        "backoff @on_exception": (send, f"{here}.send", None),
        "circuitbreaker @circuit": (refund, None, "refunds"),
        "plain function (floor)": (floor, None, None),
    }


def _timed(call: Callable[[int], Any], start: int, calls: int) -> tuple[int, int]:
    """(wall ns, this thread's CPU ns) for `calls` calls in a tight loop (awaited one after
    another in one coroutine for an async function, as a handler would)."""
    if asyncio.iscoroutinefunction(call):

        async def many() -> tuple[int, int]:
            wall, cpu = time.perf_counter_ns(), time.thread_time_ns()
            for i in range(start, start + calls):
                await call(i)
            return time.perf_counter_ns() - wall, time.thread_time_ns() - cpu

        return asyncio.run(many())
    wall, cpu = time.perf_counter_ns(), time.thread_time_ns()
    for i in range(start, start + calls):
        call(i)
    return time.perf_counter_ns() - wall, time.thread_time_ns() - cpu


def child(args: argparse.Namespace) -> int:
    functions = _build()
    handle = None
    if args.variant == "obskit":
        import obskit

        devnull = open(os.devnull, "wb")  # noqa: SIM115 - obskit writes to it until exit
        handle = obskit.init(None, service="bench", traces_enabled=False, log_stream=devnull)
    order = rotated(functions, args.round)
    ns: dict[str, float] = {}
    cpu: dict[str, float] = {}
    for name in order:
        _timed(functions[name][0], 0, args.warmup)
    for name in order:
        wall_ns, cpu_ns = _timed(functions[name][0], args.warmup, args.calls)
        ns[name], cpu[name] = wall_ns / args.calls, cpu_ns / args.calls
    checks: dict[str, Any] = {}
    if handle is not None:
        registry = handle.metrics.registry
        made = args.warmup + args.calls
        for name, (_, operation, breaker) in functions.items():
            if operation is not None:
                got = registry.get_sample_value(
                    "obskit_retry_calls_total", {"operation": operation, "outcome": "success"}
                )
            elif breaker is not None:
                got = registry.get_sample_value(
                    "obskit_circuit_breaker_calls_total", {"breaker": breaker, "outcome": "success"}
                )
            else:
                continue
            if got != made:
                print(f"{name}: obskit counted {got} of {made} calls", file=sys.stderr)
                return 1
            checks[name] = int(got)
    print(json.dumps({"ns": ns, "cpu": cpu, "checks": checks}))
    return 0


def _run_child(variant: str, rnd: int, calls: int, warmup: int) -> dict[str, Any]:
    argv = [sys.executable, "-m", "benchmarks.resilience", "--child", variant]
    argv += ["--round", str(rnd), "--calls", str(calls), "--warmup", str(warmup)]
    env = {**os.environ, "PYTHONPATH": str(_ROOT)}
    proc = subprocess.run(
        argv, cwd=_ROOT, env=env, capture_output=True, text=True, timeout=600, check=False
    )
    if proc.returncode != 0:
        raise RuntimeError(f"{variant} round {rnd} failed:\n{proc.stdout}{proc.stderr}")
    result: dict[str, Any] = json.loads(proc.stdout.strip().splitlines()[-1])
    return result


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m benchmarks.resilience", description=__doc__)
    p.add_argument("--quick", action="store_true", help="smoke run")
    p.add_argument("--rounds", type=int, help="interleaved rounds (default 7; quick 2)")
    p.add_argument("--calls", type=int, help="timed calls per function (default 50000)")
    p.add_argument("--warmup", type=int, help="warm-up calls per function (default 2000)")
    p.add_argument("--child", choices=VARIANTS, help=argparse.SUPPRESS)
    p.add_argument("--round", type=int, default=0, help=argparse.SUPPRESS)
    p.add_argument("--out", type=Path, help="also write the Markdown table to this file")
    args = p.parse_args(argv)
    args.rounds = args.rounds or (2 if args.quick else 7)
    args.calls = args.calls or (2000 if args.quick else 50_000)
    args.warmup = args.warmup if args.warmup is not None else (200 if args.quick else 2000)
    if args.child:
        args.variant = args.child
        return child(args)
    samples: dict[str, dict[str, list[float]]] = {v: {} for v in VARIANTS}
    cpu: dict[str, dict[str, list[float]]] = {v: {} for v in VARIANTS}
    t0 = time.monotonic()
    for rnd in range(args.rounds):
        order = VARIANTS if rnd % 2 == 0 else tuple(reversed(VARIANTS))
        for variant in order:
            print(f"round {rnd + 1}/{args.rounds}: {variant}", file=sys.stderr, flush=True)
            result = _run_child(variant, rnd, args.calls, args.warmup)
            for name, value in result["ns"].items():
                samples[variant].setdefault(name, []).append(value)
            for name, value in result["cpu"].items():
                cpu[variant].setdefault(name, []).append(value)
    text = _table(samples, cpu, args, time.monotonic() - t0)
    print(text)
    if args.out:
        args.out.write_text(text)
    return 0


def _table(
    wall: dict[str, dict[str, list[float]]],
    cpu: dict[str, dict[str, list[float]]],
    args: argparse.Namespace,
    seconds: float,
) -> str:
    from benchmarks.report import machine

    load = os.getloadavg()[0]
    lines = [
        "# obskit resilience benchmark",
        f"- machine: {machine()}; load average at the end {load:.1f}",
        f"- command: `python -m benchmarks.resilience {' '.join(sys.argv[1:])}`".rstrip(),
        f"- {args.rounds} interleaved rounds (one fresh process per variant and round),"
        f" {args.calls} timed calls per function after {args.warmup} warm-up calls",
        "- us/call: median over rounds (min-max); CPU = the calling thread's CPU time, steadier"
        " than wall time on a busy machine",
        "",
        "| wrapped function (succeeds at once) | plain us/call | with obskit us/call"
        " | added (wall) | added (CPU) | issue 9 target: <= 3 us added |",
        "|---|---:|---:|---:|---:|---|",
    ]
    for name, targeted in FUNCTIONS:
        added = _added(wall, name)
        added_cpu = _added(cpu, name)
        verdict = "-"
        if targeted:
            verdict = "met" if max(added, added_cpu) <= TARGET_NS else "NOT met"
        lines.append(
            f"| {name} | {_us(wall['plain'][name])} | {_us(wall['obskit'][name])}"
            f" | {added / 1000:+.2f} us | {added_cpu / 1000:+.2f} us | {verdict} |"
        )
    lines += ["", f"_wall time {seconds:.0f} s_", ""]
    return "\n".join(lines)


def _added(samples: dict[str, dict[str, list[float]]], name: str) -> float:
    return statistics.median(samples["obskit"][name]) - statistics.median(samples["plain"][name])


def _us(values: list[float]) -> str:
    low, high = min(values) / 1000, max(values) / 1000
    return f"{statistics.median(values) / 1000:.2f} ({low:.2f}-{high:.2f})"


if __name__ == "__main__":
    sys.exit(main())
