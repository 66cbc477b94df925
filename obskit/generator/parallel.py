"""Fan work out to forked processes, for fleets: `fork_map(func, items, jobs)`.

Generating for hundreds of services is CPU-bound pure Python; each service (each manifest file)
is independent, so up to `jobs` forked workers share the items, in contiguous chunks, and the
results come back in item order: the output never depends on `jobs`. Workers inherit `func` and
`items` from the parent at fork time (nothing is pickled but the results), so `func` may be any
callable. Small inputs, `jobs=1`, a platform other than Linux, or a process that runs other
threads (forking those is unsafe: a lock held by another thread stays held in the child) run
in this process. An
exception raised by `func` in a worker is raised here (it must be picklable: keep its `args`
what its constructor takes).
"""

from __future__ import annotations

import multiprocessing as mp
import sys
import threading
from collections.abc import Callable, Sequence
from typing import Any, Final, TypeVar

T = TypeVar("T")
R = TypeVar("R")

MIN_PER_JOB: Final = 12
"""Fewer items per worker cost more in forking than they save."""

_work: tuple[Callable[[Any], Any], Sequence[Any]] | None = None
"""What the forked workers run over (set only while a pool exists)."""


def _run(bounds: tuple[int, int]) -> list[Any]:
    assert _work is not None
    func, items = _work
    return [func(item) for item in items[bounds[0] : bounds[1]]]


def fork_map(func: Callable[[T], R], items: Sequence[T], jobs: int) -> list[R]:
    """`[func(item) for item in items]`, computed by up to `jobs` forked processes."""
    global _work  # noqa: PLW0603 (inherited by the forked workers)
    jobs = min(jobs, len(items) // MIN_PER_JOB)
    if (
        jobs <= 1
        or _work is not None
        or threading.active_count() > 1
        or not sys.platform.startswith("linux")  # macOS: fork is unsafe with its system libs
    ):
        return [func(item) for item in items]
    step = -(-len(items) // (jobs * 4))
    chunks = [(i, min(i + step, len(items))) for i in range(0, len(items), step)]
    _work = (func, items)
    try:
        with mp.get_context("fork").Pool(jobs) as pool:
            return [result for chunk in pool.imap(_run, chunks) for result in chunk]
    finally:
        _work = None
