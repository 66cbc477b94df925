"""The Celery benchmark's children really run their tasks, count them and export their spans
(no timing asserted)."""

from __future__ import annotations

import os
import shutil
import statistics
from collections.abc import Iterator
from pathlib import Path

import pytest

from benchmarks.celery_tasks import BASELINE, VARIANTS, _run_child
from benchmarks.receiver import ReceiverProcess
from examples.lab.redis import Redis, find_binary

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def broker() -> Iterator[str]:
    if find_binary() is None:
        if os.environ.get("CI") == "true":
            pytest.fail("redis-server not found: install the Debian package 'redis-server'")
        pytest.skip("redis-server not found")
    with Redis() as redis:
        yield redis.url


@pytest.mark.parametrize("variant", VARIANTS)
def test_each_variant_drains_its_queue_counts_every_task_and_exports_two_spans_each(
    variant: str, broker: str, tmp_path: Path
) -> None:
    receiver = ReceiverProcess()
    try:
        result = _run_child(
            variant, 25, broker, receiver.endpoint + "/v1/traces", f"t-{variant}", tmp_path,
            rss_every=10,
        )  # fmt: skip
        received = receiver.settle()
    finally:
        receiver.stop()
    assert result["tasks"] == 25
    assert result["publish_us"] > 0 and result["process_cpu_us"] > 0
    assert [n for n, _ in result["rss"]] == [10, 20]
    if variant == "bare":
        assert result["counted"] is None
        assert received == 0
    else:
        assert result["counted"] == 25  # _run_child also refuses a child that counted wrong
        assert received == 50


def test_the_baseline_variant_runs_obskit_from_the_baseline_tree(
    broker: str, tmp_path: Path
) -> None:
    """--baseline DIR: the same harness, with obskit imported from DIR (before/after in one
    run). A baseline whose obskit cannot be imported fails the run, naming the cause."""
    root = Path(__file__).resolve().parents[2]
    broken = tmp_path / "broken"
    (broken / "obskit").mkdir(parents=True)
    (broken / "obskit" / "__init__.py").write_text('raise ImportError("the baseline tree")\n')
    good = tmp_path / "good"
    shutil.copytree(root / "obskit", good / "obskit")
    receiver = ReceiverProcess()
    try:
        with pytest.raises(RuntimeError, match="the baseline tree"):
            _run_child(BASELINE, 5, broker, receiver.endpoint + "/v1/traces", "t-broken",
                       tmp_path, baseline=broken)  # fmt: skip
        result = _run_child(BASELINE, 25, broker, receiver.endpoint + "/v1/traces", "t-base",
                            tmp_path, baseline=good)  # fmt: skip
        received = receiver.settle()
    finally:
        receiver.stop()
    assert result["counted"] == 25
    assert received == 50


def test_the_instruction_count_report_gives_each_variants_added_work_against_the_peers() -> None:
    """benchmarks.celery_instructions: per-task counts in, added instructions and the ratio to
    the peer's out (the cachegrind runs themselves need valgrind, not installed in CI)."""
    from benchmarks.celery_instructions import estimated_cycles, report

    def counts(ir: float, misses: float) -> dict[str, float]:
        return {"Ir": ir, "I1": misses, "D1": misses, "LL": 0.0}

    per_task = {
        "bare": counts(1_000_000, 100),
        "obskit": counts(1_100_000, 100),
        "peer": counts(1_400_000, 300),
    }
    assert estimated_cycles(per_task["peer"]) == 1_400_000 + 10 * 600
    text = report(per_task, 100, 500)
    assert "| obskit | 1,100,000 | 100 | 100 | 0.0 | 1,102,000 | +100,000 | +100,000 |" in text
    # peer: +400,000 instructions, +404,000 estimated cycles
    assert "obskit adds 0.25x the peer's instructions and 0.25x its estimated cycles" in text


def test_the_median_interval_is_the_sign_tests_and_says_its_coverage() -> None:
    """The report's "how sure" lines: the interval between order statistics whose coverage
    is at least 90%, and the coverage it has (nine rounds: the 2nd lowest to the 2nd
    highest, 1 - 2 * 10/512)."""
    from benchmarks.celery_tasks import median_interval

    nine = [0.31, 0.22, 0.45, 0.27, 0.29, 0.18, 0.33, 0.26, 0.30]
    low, high, coverage = median_interval(nine)
    assert (low, high) == (0.22, 0.33)
    assert coverage == pytest.approx(1 - 2 * 10 / 512)
    low, high, coverage = median_interval(nine * 3)  # more rounds: a narrower interval
    assert 0.22 < low <= statistics.median(nine) <= high < 0.33
    assert coverage >= 0.9
    assert median_interval([0.3, 0.2, 0.4]) == (0.2, 0.4, 0.75)  # too few: the range, 75%


def test_the_round_by_round_interval_holds_the_ratio_and_zero_for_the_same_tree() -> None:
    """obskit against the peer and against --baseline, round by round: a round's variants
    run back to back, so its machine state is shared and cancels out."""
    from benchmarks.celery_tasks import median_interval, round_ratios

    bare = [1240.0, 1310.0, 1225.0, 1290.0, 1480.0, 1250.0, 1235.0, 1300.0, 1260.0]
    shift = [-7.0, 4.0, 9.0, -5.0, 2.0, -3.0, 6.0, -8.0, 1.0]  # the same tree, run twice
    obskit = [b + 80.0 for b in bare]
    again = [o + d for o, d in zip(obskit, shift, strict=True)]
    peer = [b + 320.0 for b in bare]
    ratios = round_ratios(obskit, peer, bare)
    assert ratios == [pytest.approx(0.25)] * 9
    assert round_ratios([1300.0, 1310.0], [1290.0, 1600.0], [1300.0, 1200.0]) == [0.275]
    low, high, _ = median_interval([a - o for a, o in zip(again, obskit, strict=True)])
    assert low < 0.0 < high
    low, high, _ = median_interval([a + 25.0 - o for a, o in zip(again, obskit, strict=True)])
    assert low > 0.0  # 25 us slower, beyond the rounds' spread


def test_the_frames_child_times_each_of_obskits_receivers_inside_a_real_worker(
    broker: str, tmp_path: Path
) -> None:
    """benchmarks.celery_frames: the wrapped receivers are the ones Celery calls (each frame
    gets time), the worker still counts and exports every task, and the report reads them."""
    from benchmarks.celery_frames import FRAMES, _run, report

    root = Path(__file__).resolve().parents[2]
    receiver = ReceiverProcess()
    try:
        run = _run(root, 40, broker, receiver.endpoint + "/v1/traces", queue="t-frames",
                   workdir=tmp_path)  # fmt: skip
        received = receiver.settle()
    finally:
        receiver.stop()
    assert received == 80  # two spans per task, as without the timers
    assert set(run["frames"]) == set(FRAMES)
    receivers = [run["frames"][frame] for frame in FRAMES[:4]]
    assert all(spent > 0 for spent in receivers)
    assert run["total"] > sum(receivers)
    text = report({"this tree": [run]}, 40)
    assert f"| **receivers, total** | **{sum(receivers):.1f}** |" in text
