"""The Celery benchmark's children really run their tasks, count them and export their spans
(no timing asserted)."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from benchmarks.celery_tasks import VARIANTS, _run_child
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
