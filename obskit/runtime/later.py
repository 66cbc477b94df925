"""Bookkeeping taken off a Celery task's path and run in batches.

Inside a worker, what obskit records per task (the `event: task` line, the histogram and
counter updates, handing the spans to the export pipe) costs about three times as much
between kombu's, redis-py's and Celery's own code as it does in a tight loop: the CPU caches
are cold each time (benchmarks/celery_receivers.py). Queued here and run a batch at a time,
its code stays hot for the whole batch, and the batch's log lines go out in one write per
stream when it ends (`write`). What
must happen in the task's own thread stays there: the headers, the span IDs, the restored
correlation ID and context, the task's timing. Each queued item carries the time it happened
(the line's timestamp, the span's end).

Queued work runs:
- in the thread that queues the `BATCH`th item, when no batch is running (no thread switch,
  no lock wait: otherwise the running batch takes it);
- in a background thread when work waited a whole `INTERVAL` (0.1 s) and no batch ran (an
  idle worker, or one too slow to fill a batch): a line is at most about 0.2 s late;
- before obskit serves a scrape, in `obskit.testing`'s readers, at flush and shutdown (a
  worker's SIGTERM, a pool process's exit, atexit); a scrape waits at most 1 s and a
  shutdown at most its timeout for a batch in progress.
Nothing is dropped: past `LIMIT` queued items (the running batch hangs, e.g. on a blocked
log stream) each caller runs its own item. A failing item is counted and logged once
(`obskit.runtime.errors`), never raised, and never stops the rest.
"""

from __future__ import annotations

import collections
import os
import threading
from collections.abc import Callable
from time import sleep
from typing import Any, Final

from obskit.runtime import errors

BATCH: Final = 128
INTERVAL: Final = 0.1
LIMIT: Final = 100_000

_queue: collections.deque[tuple[Callable[..., None], tuple[Any, ...]]] = collections.deque()
# One batch at a time. Re-entrant: a signal handler that flushes obskit (shutdown in a SIGTERM
# handler) can run in the middle of a batch in the same thread; it finishes the queue itself.
_running = threading.RLock()
_batches = 0  # batches run so far (the background thread compares)
_thread: threading.Thread | None = None
_fork_hook = False
_lines: dict[Any, list[bytes]] = {}  # sink -> lines written by queued work, until the batch ends
_lines_lock = threading.RLock()


def add(work: Callable[..., None], args: tuple[Any, ...]) -> None:
    """Queue `work(*args)` (the hot path: an append; every BATCH items, the batch)."""
    queue = _queue
    if len(queue) >= BATCH:
        if _running.acquire(blocking=False):  # never waits, never re-enters a running batch
            try:
                _drain()
            finally:
                _running.release()
        elif len(queue) >= LIMIT:  # the running batch is stuck: do this one here, now
            _do(work, args)
            _write_lines()
            return
    queue.append((work, args))
    if _thread is None:
        _start()


def run(timeout: float | None = None) -> bool:
    """Run everything queued now, in this thread, after the batch in progress if any; with a
    `timeout`, give up (False) when that batch does not end within it (a batch stuck on a
    blocked log stream must not hang a scrape or a shutdown too)."""
    if not _running.acquire(timeout=-1 if timeout is None else timeout):
        return False
    try:
        _drain()
    finally:
        _running.release()
    return True


def pending() -> int:
    """Items queued and not run yet."""
    return len(_queue)


def _drain() -> None:
    """Run what is queued when it starts (not what other threads queue meanwhile: a batch
    that chased them would hold the lock, and the work, away from the threads that fill it)."""
    global _batches  # noqa: PLW0603
    _batches += 1
    take = _queue.popleft
    for _ in range(len(_queue)):
        try:
            work, args = take()
        except IndexError:
            break
        _do(work, args)
    _write_lines()


def write(sink: Any, line: bytes) -> None:
    """From queued work: `line` goes to `sink` (its `write(bytes)`) with the batch's other
    lines for it, in one write, when the batch ends (in order)."""
    with _lines_lock:
        held = _lines.get(sink)
        if held is None:
            _lines[sink] = [line]
        else:
            held.append(line)


def _write_lines() -> None:
    global _lines
    if not _lines:
        return
    with _lines_lock:
        lines, _lines = _lines, {}
    for sink, held in lines.items():
        try:
            sink.write(b"".join(held))
        except Exception as exc:  # noqa: BLE001 - a broken sink never stops the batch
            errors.record("deferred telemetry", exc)


def _do(work: Callable[..., None], args: tuple[Any, ...]) -> None:
    try:
        work(*args)
    except Exception as exc:  # noqa: BLE001 - one failing item never stops the rest
        errors.record("deferred telemetry", exc)


def _start() -> None:
    global _thread, _fork_hook  # noqa: PLW0603
    with _running:
        if _thread is not None:
            return
        thread = threading.Thread(target=_loop, name="obskit-later", daemon=True)
        thread.start()
        _thread = thread
        if not _fork_hook and hasattr(os, "register_at_fork"):
            os.register_at_fork(after_in_child=_after_fork)
            _fork_hook = True


def _loop() -> None:
    seen = -1
    while True:
        sleep(INTERVAL)
        if _queue and _batches == seen:  # work waited a whole interval and nobody ran it
            run()
        seen = _batches


def _after_fork() -> None:
    """A forked child (a prefork pool process): the parent's queue is the parent's to run,
    and the thread did not survive the fork; it starts again with the child's first item."""
    global _queue, _running, _thread, _lines, _lines_lock  # noqa: PLW0603
    _queue = collections.deque()
    _running = threading.RLock()
    _thread = None
    _lines = {}
    _lines_lock = threading.RLock()
