"""In-process benchmark: every variant in its own worker, interleaved round-robin.

Each round sends the same number of requests to each variant in turn (the order
rotates every round, so no variant always runs first or right after another's
exporter burst); a variant's score is its median microseconds per request over
the rounds. Between two variants the coordinator waits until the finished
variant's receiver stops receiving, so one variant's export tail does not land in
the next one's measurement.
"""

from __future__ import annotations

import contextlib
import os
import statistics
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson

from benchmarks import rotated
from benchmarks.receiver import ReceiverProcess
from benchmarks.variants import VARIANTS, Variant

_ROOT = Path(__file__).resolve().parent.parent


class WorkerFailed(RuntimeError):
    pass


class Worker:
    def __init__(
        self,
        variant: Variant,
        workdir: Path,
        receiver: ReceiverProcess | None,
        *,
        endpoint: str | None = None,
    ) -> None:
        """`endpoint` overrides the receiver's (e.g. a closed port: collector down)."""
        self.variant = variant
        self.receiver = receiver
        self.log_path = workdir / f"{variant.name}.log"
        self.stderr_path = workdir / f"{variant.name}.stderr"
        endpoint = endpoint or (receiver.endpoint if receiver else None)
        spec = {
            "variant": variant.name,
            "endpoint": endpoint,
            "log_path": str(self.log_path),
        }
        env = {**os.environ, **variant.env}
        # Nothing ambient may point a variant at some other collector.
        for key in ("OTEL_EXPORTER_OTLP_ENDPOINT", "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT"):
            env.pop(key, None)
        if endpoint is not None:
            env["OTEL_EXPORTER_OTLP_ENDPOINT"] = endpoint
        self._stderr = self.stderr_path.open("wb")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "benchmarks.worker", orjson.dumps(spec).decode()],
            cwd=_ROOT,
            env=env,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=self._stderr,
        )
        try:
            self.ready = self._read()
        except WorkerFailed:
            self.close()
            raise

    def _read(self) -> dict[str, Any]:
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline()
        if not line:
            raise WorkerFailed(f"{self.variant.name} worker died; see {self.stderr_path}")
        reply: dict[str, Any] = orjson.loads(line)
        if "error" in reply:
            raise WorkerFailed(f"{self.variant.name}: {reply['error']}\n{reply.get('trace', '')}")
        return reply

    def call(self, **cmd: Any) -> dict[str, Any]:
        assert self.proc.stdin is not None
        self.proc.stdin.write(orjson.dumps(cmd) + b"\n")
        self.proc.stdin.flush()
        return self._read()

    def close(self) -> None:
        if self.proc.poll() is None:
            with contextlib.suppress(WorkerFailed, BrokenPipeError):
                self.call(cmd="quit")
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        for pipe in (self.proc.stdin, self.proc.stdout):
            if pipe is not None:
                pipe.close()
        self._stderr.close()


@dataclass
class VariantResult:
    name: str
    title: str
    samples_us: list[float] = field(default_factory=list)
    cpu_us: list[float] = field(default_factory=list)
    threads_us: list[dict[str, float]] = field(default_factory=list)
    """Per round: CPU microseconds per request of each thread (main, exporters...)."""
    verification: dict[str, Any] = field(default_factory=dict)
    spans_received: int | None = None
    rss_kb: list[int] = field(default_factory=list)

    @property
    def median_us(self) -> float:
        return statistics.median(self.samples_us)

    @property
    def median_cpu_us(self) -> float:
        return statistics.median(self.cpu_us)

    def median_thread_us(self) -> dict[str, float]:
        """Median over rounds of each thread's CPU microseconds per request."""
        names = {n for round_ in self.threads_us for n in round_}
        return {n: statistics.median(r.get(n, 0.0) for r in self.threads_us) for n in sorted(names)}

    @property
    def spans_created(self) -> int | None:
        created = self.verification.get("spans_created")
        return None if created is None else int(created)


def run_inprocess(
    names: list[str],
    *,
    rounds: int,
    requests: int,
    warmup: int,
    workdir: Path,
    progress: Any = print,
) -> list[VariantResult]:
    variants = [VARIANTS[n] for n in names]
    receivers: dict[str, ReceiverProcess] = {}
    workers: dict[str, Worker] = {}
    results = {v.name: VariantResult(v.name, v.title) for v in variants}
    try:
        for v in variants:
            if v.traces:
                receivers[v.name] = ReceiverProcess()
            workers[v.name] = Worker(v, workdir, receivers.get(v.name))
            results[v.name].rss_kb.append(int(workers[v.name].ready["rss_kb"]))
        for w in workers.values():
            w.call(cmd="run", n=warmup)
            if w.receiver is not None:
                w.receiver.settle()
        for r in range(rounds):
            for name in rotated(workers, r):
                w = workers[name]
                reply = w.call(cmd="run", n=requests)
                results[name].samples_us.append(float(reply["us"]))
                results[name].cpu_us.append(float(reply["cpu_us"]))
                results[name].threads_us.append(dict(reply.get("threads_us", {})))
                results[name].rss_kb.append(int(reply["rss_kb"]))
                if w.receiver is not None:
                    w.receiver.settle()
            progress(
                f"  round {r + 1}/{rounds}: "
                + ", ".join(f"{n} {results[n].samples_us[-1]:.1f}us" for n in workers)
            )
        for name, w in workers.items():
            try:
                results[name].verification = w.call(cmd="verify")
            except WorkerFailed as exc:
                results[name].verification = {"ok": False, "error": str(exc)}
            if w.receiver is not None:
                results[name].spans_received = w.receiver.settle()
    finally:
        for w in workers.values():
            w.close()
        for rx in receivers.values():
            rx.stop()
    return [results[v.name] for v in variants]
