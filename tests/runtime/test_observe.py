"""obskit.observe: decorator and context manager, sync and async: metric, span, error log."""

from __future__ import annotations

import asyncio

import pytest

import obskit
from obskit.testing import capture


def test_decorated_function_records_success_metric_and_a_span():
    with capture() as cap:

        @obskit.observe("charge")
        def charge(amount: int) -> int:
            return amount * 2

        assert charge(21) == 42
        assert (
            cap.sample(
                "obskit_operation_duration_seconds_count", operation="charge", outcome="success"
            )
            == 1
        )
        [span] = cap.spans()
        assert span.name == "charge"
        assert cap.logs() == []


def test_failing_block_records_error_outcome_error_span_and_one_error_log_then_reraises():
    with capture() as cap:
        with pytest.raises(ValueError, match="declined"), obskit.observe("charge"):
            raise ValueError("declined")
        assert (
            cap.sample(
                "obskit_operation_duration_seconds_count", operation="charge", outcome="error"
            )
            == 1
        )
        [span] = cap.spans()
        assert span.status.status_code.name == "ERROR"
        assert span.attributes["error.type"] == "ValueError"
        [line] = cap.logs()
        assert line["level"] == "error" and line["operation"] == "charge"
        assert line["exception"]["type"] == "ValueError"
        assert line["trace_id"] == f"{span.context.trace_id:032x}"


def test_async_decorator_and_async_context_manager():
    with capture() as cap:

        @obskit.observe("fetch")
        async def fetch() -> str:
            async with obskit.observe("inner"):
                await asyncio.sleep(0)
            return "ok"

        assert asyncio.run(fetch()) == "ok"
        names = {s.name: s for s in cap.spans()}
        assert names["inner"].parent.span_id == names["fetch"].context.span_id
        for operation in ("fetch", "inner"):
            assert (
                cap.sample(
                    "obskit_operation_duration_seconds_count",
                    operation=operation,
                    outcome="success",
                )
                == 1
            )


def test_outside_a_request_observe_binds_one_correlation_id_for_its_logs():
    with capture() as cap:
        with obskit.observe("job"):
            obskit.get_logger("worker").info("step 1")
            obskit.get_logger("worker").info("step 2")
            inside = obskit.correlation_id()
        assert inside is not None
        assert obskit.correlation_id() is None
        assert {line["correlation_id"] for line in cap.logs()} == {inside}


def test_observe_works_before_init_without_recording_anything():
    @obskit.observe("plain")
    def plain() -> int:
        return 1

    assert plain() == 1


def test_observe_rejects_an_empty_name():
    with pytest.raises(ValueError, match="non-empty"):
        obskit.observe("")


def test_one_observe_object_can_be_shared_by_concurrent_tasks_and_nested():
    """A module-level `op = observe("x")` used by overlapping tasks: every use ends its own span."""
    op = obskit.observe("shared")

    async def work(delay: float) -> str | None:
        async with op:
            await asyncio.sleep(delay)
            return obskit.correlation_id()

    async def main() -> list[str | None]:
        return await asyncio.gather(*(work(0.01 * (3 - i)) for i in range(3)))

    with capture() as cap:
        ids = asyncio.run(main())
        with op, op:
            pass
        spans = cap.spans()
        assert [s.name for s in spans] == ["shared"] * 5
        assert len({s.context.span_id for s in spans}) == 5
        outer, inner = sorted(spans[-2:], key=lambda s: s.start_time)
        assert inner.parent is not None and inner.parent.span_id == outer.context.span_id
        assert len(set(ids)) == 3 and None not in ids  # one correlation ID per use, no cross-talk
        count = cap.sample(
            "obskit_operation_duration_seconds_count", operation="shared", outcome="success"
        )
        assert count == 5
        assert cap.sample("obskit_instrumentation_errors_total") == 0
