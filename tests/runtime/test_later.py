"""obskit.runtime.later: a worker's per-task bookkeeping, run in batches; none of it lost."""

from __future__ import annotations

import io
import os
import time

import pytest

from obskit.runtime import errors, later


@pytest.fixture(autouse=True)
def _empty() -> None:
    later.run()


def test_queued_work_runs_in_order_and_a_failing_item_is_counted_not_raised() -> None:
    done: list[int] = []

    def fail() -> None:
        raise RuntimeError("broken hook")

    before = errors.total()
    later.add(done.append, (1,))
    later.add(fail, ())
    later.add(done.append, (2,))
    later.run()
    assert done == [1, 2]
    assert errors.total() == before + 1
    assert later.pending() == 0


def test_a_full_batch_runs_in_the_thread_that_fills_it() -> None:
    done: list[int] = []
    for i in range(later.BATCH + 1):
        later.add(done.append, (i,))
    assert done == list(range(later.BATCH))  # the batch ran; the last item waits for the next
    assert later.pending() == 1


def test_work_nobody_runs_is_run_by_the_background_thread() -> None:
    done: list[str] = []
    later.add(done.append, ("idle worker",))
    deadline = time.monotonic() + 5.0
    while not done and time.monotonic() < deadline:
        time.sleep(0.01)
    assert done == ["idle worker"]


class _Stream(io.BytesIO):
    def __init__(self) -> None:
        super().__init__()
        self.writes = 0

    def write(self, data: bytes) -> int:  # type: ignore[override]
        self.writes += 1
        return super().write(data)


def test_lines_written_by_queued_work_go_out_in_one_write_per_batch_in_order() -> None:
    stream = _Stream()
    for i in range(5):
        later.add(later.write, (stream, f"line {i}\n".encode()))
    assert stream.writes == 0
    later.run()
    assert stream.getvalue().decode().splitlines() == [f"line {i}" for i in range(5)]
    assert stream.writes == 1


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs fork()")
def test_a_forked_child_runs_only_its_own_work() -> None:
    read, write = os.pipe()
    later.add(os.write, (write, b"parent\n"))  # queued in the parent before the fork
    pid = os.fork()
    if pid == 0:  # the child: its queue starts empty, and its own work runs
        try:
            later.add(os.write, (write, b"child\n"))
            later.run()
        finally:
            os._exit(0)
    os.waitpid(pid, 0)
    later.run()
    os.close(write)
    with os.fdopen(read, "rb") as pipe:
        lines = pipe.read().decode().splitlines()
    assert sorted(lines) == ["child", "parent"]  # the parent's item ran once, in the parent


def test_a_batch_runs_what_was_queued_when_it_started_not_what_arrives_meanwhile() -> None:
    done: list[str] = []

    def first() -> None:
        done.append("first")
        later.add(done.append, ("queued meanwhile",))

    later.add(first, ())
    later.run()
    assert done == ["first"]  # a batch that chased new items would never hand the work back
    assert later.pending() == 1
    later.run()
    assert done == ["first", "queued meanwhile"]


def test_a_flush_from_inside_a_batch_in_the_same_thread_runs_everything_once() -> None:
    # what a SIGTERM handler calling obskit.shutdown() does when the signal lands mid-batch
    done: list[str] = []

    def handler_runs_a_flush() -> None:
        done.append("interrupted")
        later.write(_Stream(), b"x\n")
        later.run()

    later.add(handler_runs_a_flush, ())
    later.add(done.append, ("next",))
    later.run()
    assert done == ["interrupted", "next"]
    assert later.pending() == 0


def test_a_flush_waits_for_a_stuck_batch_only_as_long_as_it_is_told() -> None:
    import threading

    release = threading.Event()
    started = threading.Event()

    def stuck() -> None:  # e.g. a log line written to a pipe nobody reads
        started.set()
        release.wait(10)

    later.add(stuck, ())
    worker = threading.Thread(target=later.run)
    worker.start()
    assert started.wait(5)
    try:
        assert later.run(timeout=0.05) is False  # a scrape or a shutdown goes on without it
    finally:
        release.set()
        worker.join(5)
    assert later.run(timeout=5) is True
