"""Memory with the collector down: RSS before and after many requests.

The variant exports to a loopback port where nothing listens (connection refused),
so every export fails; a bounded span queue keeps RSS flat, an unbounded one grows
with the requests. Also times the variant's shutdown (flush) with the collector down.
"""

from __future__ import annotations

import socket
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from benchmarks.inprocess import Worker
from benchmarks.variants import VARIANTS


@dataclass
class MemoryResult:
    name: str
    requests: int
    rss_start_kb: int = 0
    rss_before_kb: int = 0
    rss_after_kb: int = 0
    rss_max_kb: int = 0
    us_per_request: list[float] = field(default_factory=list)
    rss_series_kb: list[int] = field(default_factory=list)
    """RSS after each batch: a bounded queue shows a plateau, a leak a slope."""
    shutdown_s: float = 0.0
    extra: dict[str, Any] = field(default_factory=dict)


def closed_port(*, hanging: bool = False) -> socket.socket:
    """A loopback port held until closed (no other process can take it meanwhile).

    Down: bound, never listening, so connections are refused. Hanging: listening, never
    accepting, so connections open (the kernel queues them) and requests get no answer.
    """
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    if hanging:
        sock.listen(1024)
    return sock


def run_memory(
    name: str, *, requests: int, batch: int, warmup: int, workdir: Path, hanging: bool = False
) -> MemoryResult:
    variant = VARIANTS[name]
    refusing = closed_port(hanging=hanging)
    endpoint = f"http://127.0.0.1:{refusing.getsockname()[1]}"
    worker = Worker(variant, workdir, None, endpoint=endpoint)
    result = MemoryResult(
        name + (" (collector hanging)" if hanging else " (collector down)"), requests
    )
    try:
        result.rss_start_kb = int(worker.ready["rss_kb"])
        result.rss_before_kb = int(worker.call(cmd="run", n=warmup)["rss_kb"])
        done = 0
        while done < requests:
            n = min(batch, requests - done)
            reply = worker.call(cmd="run", n=n)
            done += n
            result.us_per_request.append(float(reply["us"]))
            result.rss_max_kb = max(result.rss_max_kb, int(reply["rss_kb"]))
            result.rss_after_kb = int(reply["rss_kb"])
            result.rss_series_kb.append(result.rss_after_kb)
        result.extra = worker.call(cmd="selfmetrics")
        result.shutdown_s = float(worker.call(cmd="finish")["seconds"])
    finally:
        worker.close()
        refusing.close()
    return result
