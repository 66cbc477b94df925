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
from collections.abc import Callable, Iterator, Sequence
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
    return list(fork_imap(func, items, jobs))


def parallel(items: Sequence[Any], jobs: int) -> bool:
    """Whether `fork_imap` would fork workers for these items (see the module docstring)."""
    return (
        min(jobs, len(items) // MIN_PER_JOB) > 1
        and _work is None
        and threading.active_count() == 1
        and sys.platform.startswith("linux")  # macOS: fork is unsafe with its system libs
    )


def fork_imap(func: Callable[[T], R], items: Sequence[T], jobs: int) -> Iterator[R]:
    """`func(item)` for each item, in item order, yielded as the workers deliver them (so the
    caller can use the first results while later ones are computed)."""
    global _work  # noqa: PLW0603 (inherited by the forked workers)
    if not parallel(items, jobs):
        for item in items:
            yield func(item)
        return
    jobs = min(jobs, len(items) // MIN_PER_JOB)
    step = -(-len(items) // (jobs * 4))
    chunks = [(i, min(i + step, len(items))) for i in range(0, len(items), step)]
    _work = (func, items)
    pool = mp.get_context("fork").Pool(jobs)
    try:
        for chunk in pool.imap(_run, chunks):
            yield from chunk
    except KeyboardInterrupt:
        pool.terminate()
        raise
    finally:
        _work = None
        # close + join: the workers finish what was sent and exit. Not `with Pool()`, whose
        # exit calls terminate(), which can hang (open CPython bugs: python/cpython#78178,
        # #73945, #96995); a CI run hung for 300 s in a parallel generate, once.
        pool.close()
        pool.join()
