"""The messaging vocabulary for any producer/consumer: inject, produce, consume, mark_duplicate."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from typing import Any

import pytest
from opentelemetry.trace import SpanKind, StatusCode

import obskit
from obskit import semconv
from obskit.runtime import messaging
from obskit.testing import Capture, capture

SENT = "messaging_client_sent_messages_total"
PROCESSED = "messaging_process_duration_seconds_count"
WAITED = "messaging_queue_wait_seconds_count"


@pytest.fixture
def cap() -> Iterator[Capture]:
    with capture() as captured:
        yield captured


def _traceparent_span_id(value: str) -> str:
    return value.split("-")[2]


def test_inject_writes_correlation_trace_context_and_enqueue_time_into_a_dict(cap: Capture) -> None:
    with obskit.observe("request"):
        cid = obskit.correlation_id()
        before = time.time()
        headers = obskit.inject({"keep": "me"})
        after = time.time()
        assert headers["keep"] == "me"
        assert headers["X-Request-ID"] == cid
        current = cap.handle.tracing.tracer  # the observe span is current
        assert headers["traceparent"].startswith("00-")
        assert before - 0.001 <= float(headers["X-Enqueued-At"]) <= after + 0.001
    # pure: no span besides the observe block's, no count
    assert [s.name for s in cap.spans()] == ["request"]
    assert cap.sample(SENT) is None
    assert current is not None


def test_inject_into_kafka_style_pairs_replaces_existing_keys_and_writes_bytes(
    cap: Capture,
) -> None:
    with obskit.observe("request"):
        pairs: list[tuple[str, bytes]] = [("traceparent", b"stale"), ("other", b"1")]
        obskit.inject(pairs)
    keys = [key for key, _ in pairs]
    assert keys.count("traceparent") == 1
    assert ("other", b"1") in pairs
    assert all(isinstance(value, bytes) for _, value in pairs)
    assert dict(pairs)["traceparent"] != b"stale"


def test_inject_outside_a_request_gives_the_message_a_fresh_correlation_id(cap: Capture) -> None:
    first, second = obskit.inject({}), obskit.inject({})
    assert first["X-Request-ID"] != second["X-Request-ID"]
    assert obskit.correlation_id() is None  # nothing bound by inject


def test_inject_and_produce_reject_what_they_cannot_write_into(cap: Capture) -> None:
    with pytest.raises(TypeError, match="dict or a list"):
        obskit.inject(("not", "writable"))  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="dict or a list"):
        obskit.produce("kafka", "orders", ("not", "writable"))  # type: ignore[arg-type]
    assert cap.spans() == []  # refused before any span was started
    assert obskit.correlation_id() is None


def test_produce_wraps_the_send_in_a_producer_span_and_counts_it(cap: Capture) -> None:
    with obskit.observe("request"), obskit.produce("kafka", "orders", task="charge") as message:
        sent_headers = dict(message.headers)  # type: ignore[arg-type]
    spans = {s.name: s for s in cap.spans()}
    producer = spans["send charge"]
    assert producer.kind is SpanKind.PRODUCER
    assert producer.parent is not None
    assert producer.parent.span_id == spans["request"].context.span_id
    assert producer.attributes["messaging.system"] == "kafka"
    assert producer.attributes["messaging.destination.name"] == "orders"
    assert _traceparent_span_id(sent_headers["traceparent"]) == f"{producer.context.span_id:016x}"
    assert cap.sample(SENT, messaging_system="kafka", messaging_destination_name="orders",
                      task="charge") == 1  # fmt: skip


def test_a_failed_send_is_not_counted_and_its_exception_is_untouched(cap: Capture) -> None:
    class BrokerDown(Exception):
        pass

    with pytest.raises(BrokerDown), obskit.produce("kafka", "orders"):
        raise BrokerDown
    (span,) = cap.spans()
    assert span.status.status_code is StatusCode.ERROR
    assert span.attributes["error.type"] == "BrokerDown"
    assert cap.sample(SENT) is None


def test_consume_restores_the_producers_ids_and_records_one_task_line(cap: Capture) -> None:
    with obskit.observe("request"):
        producer_cid = obskit.correlation_id()
        with obskit.produce("kafka", "orders", task="charge") as sent:
            pass
    cap.clear()
    log = obskit.get_logger("consumer")
    with obskit.consume("kafka", "orders", "charge", sent.headers) as message:
        assert obskit.correlation_id() == producer_cid == message.correlation_id
        log.info("charging")
    assert obskit.correlation_id() is None  # unbound after the block
    spans = cap.spans()
    (consumer,) = spans
    assert consumer.kind is SpanKind.CONSUMER
    assert consumer.name == "process charge"
    assert consumer.parent is not None
    assert f"{consumer.parent.span_id:016x}" == _traceparent_span_id(sent.headers["traceparent"])  # type: ignore[call-overload]
    (inner,) = cap.logs(event="charging")
    assert inner["correlation_id"] == producer_cid
    assert inner["trace_id"] == f"{consumer.context.trace_id:032x}"
    (line,) = cap.logs(event="task")
    assert line["logger"] == "obskit.task"
    assert line["correlation_id"] == producer_cid
    assert (line["task"], line["queue"], line["outcome"], line["retries"]) == (
        "charge", "orders", "success", 0,
    )  # fmt: skip
    assert line["duration_ms"] >= 0
    assert cap.sample(PROCESSED, task="charge", outcome="success",
                      messaging_destination_name="orders") == 1  # fmt: skip
    assert cap.sample(WAITED, task="charge") == 1


def test_queue_wait_is_measured_from_the_enqueue_time(cap: Capture) -> None:
    headers = {"X-Enqueued-At": f"{time.time() - 42:.6f}"}
    with obskit.consume("sqs", "jobs", "resize", headers) as message:
        pass
    assert message.queue_wait is not None
    assert 42 <= message.queue_wait < 60
    assert cap.sample("messaging_queue_wait_seconds_bucket", task="resize", le="30.0") == 0
    assert cap.sample("messaging_queue_wait_seconds_bucket", task="resize", le="60.0") == 1


def test_a_message_without_obskit_headers_gets_a_new_id_and_no_queue_wait(cap: Capture) -> None:
    with obskit.consume("redis", "stream", "h", {}) as first:
        first_cid = first.correlation_id
    with obskit.consume("redis", "stream", "h", None) as second:
        second_cid = second.correlation_id
    assert first_cid and second_cid and first_cid != second_cid
    assert cap.sample(WAITED) is None
    assert cap.sample(PROCESSED, task="h") == 2


@pytest.mark.parametrize(
    "headers",
    [
        {"X-Request-ID": "x" * 500, "traceparent": "00-zz-yy-01", "X-Enqueued-At": "nan"},
        {"X-Request-ID": "bad id with spaces\n", "traceparent": "0" * 20000, "baggage": "==="},
        [("X-Request-ID", b"\xff\xfe"), ("traceparent", b"\x00" * 10), (b"raw", b"x")],
        {"X-Enqueued-At": "-5", "tracestate": "!!!!", "traceparent": 123},
        "not headers at all",
    ],
)
def test_hostile_headers_never_break_the_consumer(headers: Any, cap: Capture) -> None:
    with obskit.consume("kafka", "orders", "charge", headers) as message:
        cid = message.correlation_id
    assert cid is not None and len(cid) == 32  # a fresh ID, not the hostile one
    (span,) = cap.spans()
    assert span.parent is None  # a new trace
    assert cap.sample(PROCESSED, outcome="success") == 1


def test_a_future_enqueue_time_from_a_skewed_clock_counts_as_no_wait(cap: Capture) -> None:
    with obskit.consume("k", "d", "h", {"X-Enqueued-At": str(time.time() + 300)}) as m:
        pass
    assert m.queue_wait == 0.0


def test_a_failing_handler_records_failure_and_reraises_unchanged(cap: Capture) -> None:
    class Boom(Exception):
        pass

    with pytest.raises(Boom), obskit.consume("kafka", "orders", "charge", {}):
        raise Boom("no")
    (span,) = cap.spans()
    assert span.status.status_code is StatusCode.ERROR
    (line,) = cap.logs(event="task")
    assert line["outcome"] == "failure"
    assert line["level"] == "error"
    assert line["exception"]["type"] == "Boom"
    assert cap.sample(PROCESSED, outcome="failure") == 1


def test_retry_and_duplicate_outcomes(cap: Capture) -> None:
    with pytest.raises(TimeoutError), obskit.consume("k", "d", "h", {}) as message:
        message.retry()
        raise TimeoutError
    with obskit.consume("k", "d", "h", {}):
        assert obskit.mark_duplicate() is True
    with obskit.consume("k", "d", "h", {}) as message:
        message.mark_duplicate()
    assert cap.sample(PROCESSED, outcome="retry") == 1
    assert cap.sample(PROCESSED, outcome="duplicate") == 2
    assert [r["level"] for r in cap.logs(event="task")] == ["warning", "info", "info"]


def test_every_outcome_of_a_task_exists_at_zero_from_its_first_message(cap: Capture) -> None:
    """A series born at 1 shows no increase to `rate()`: a known task's first failure or
    duplicate would be invisible to the SLO rules and alerts. So the first message of a task
    creates all four outcome series; another task's stay absent until it runs."""
    with obskit.consume("k", "d", "h", {}):
        pass
    assert cap.sample(PROCESSED, task="h", outcome="success") == 1
    for outcome in ("retry", "failure", "duplicate"):
        assert cap.sample(PROCESSED, task="h", outcome=outcome) == 0
    assert cap.sample(PROCESSED, task="other", outcome="success") is None


def test_mark_duplicate_outside_a_consumer_does_nothing(cap: Capture) -> None:
    assert obskit.mark_duplicate() is False
    assert cap.sample(PROCESSED) is None


def test_consume_as_a_decorator_reads_headers_from_the_call(cap: Capture) -> None:
    seen: list[str | None] = []

    @obskit.consume("kafka", "orders", headers=lambda msg: msg["headers"])
    def charge(msg: dict[str, Any]) -> str:
        seen.append(obskit.correlation_id())
        return "done"

    assert charge({"headers": {"X-Request-ID": "order-7"}}) == "done"
    assert seen == ["order-7"]
    assert cap.sample(PROCESSED, task="charge", outcome="success") == 1


def test_consume_async_decorator_and_async_with_keep_concurrent_messages_apart(
    cap: Capture,
) -> None:
    @obskit.consume("redis", "stream", "handle", headers=lambda cid: {"X-Request-ID": cid})
    async def handle(cid: str) -> str | None:
        await asyncio.sleep(0.01)
        inner = obskit.correlation_id()
        await asyncio.sleep(0.01)
        return inner

    async def with_block(cid: str) -> str | None:
        async with obskit.consume("redis", "stream", "block", {"X-Request-ID": cid}):
            await asyncio.sleep(0.01)
            return obskit.correlation_id()

    async def main() -> list[str | None]:
        return list(
            await asyncio.gather(
                *(handle(f"a{i}") for i in range(5)), *(with_block(f"b{i}") for i in range(5))
            )
        )

    results = asyncio.run(main())
    assert results == [f"a{i}" for i in range(5)] + [f"b{i}" for i in range(5)]
    assert cap.sample(PROCESSED, task="handle") == 5
    assert cap.sample(PROCESSED, task="block") == 5


def test_one_consume_object_may_be_reused_and_nested(cap: Capture) -> None:
    block = obskit.consume("k", "d", "h", {"X-Request-ID": "outer"})
    with block:
        with block:
            assert obskit.correlation_id() == "outer"
        assert obskit.correlation_id() == "outer"
    assert obskit.correlation_id() is None
    assert cap.sample(PROCESSED) == 2


def test_before_init_everything_is_a_no_op_that_still_restores_the_id() -> None:
    with obskit.consume("k", "d", "h", {"X-Request-ID": "abc"}):
        assert obskit.correlation_id() == "abc"
    with obskit.produce("k", "d") as message:
        assert "X-Request-ID" in message.headers


def test_labels_must_be_non_empty_strings() -> None:
    with pytest.raises(ValueError, match="destination"):
        obskit.consume("kafka", "")
    with pytest.raises(ValueError, match="system"):
        obskit.produce(None, "orders")  # type: ignore[arg-type]


def test_queue_wait_buckets_are_configurable() -> None:
    with capture(queue_wait_buckets="1,5,30") as cap:
        with obskit.consume("k", "d", "h", {"X-Enqueued-At": str(time.time() - 3)}):
            pass
        buckets = sorted(
            float(s.labels["le"])
            for m in cap.registry.collect()
            for s in m.samples
            if s.name == "messaging_queue_wait_seconds_bucket"
        )
    assert buckets == [1.0, 5.0, 30.0, float("inf")]


def test_default_queue_wait_buckets_are_the_issues() -> None:
    assert obskit.Config().queue_wait_buckets == (
        0.01, 0.05, 0.1, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600, 1800, 3600,
    )  # fmt: skip
    assert obskit.Config().queue_wait_buckets == semconv.DEFAULT_QUEUE_WAIT_BUCKETS


def test_the_consumption_stack_is_left_clean(cap: Capture) -> None:
    with obskit.consume("k", "d", "h", {}):
        assert messaging.current() is not None
    assert messaging.current() is None


def test_the_queue_wait_runs_from_the_later_of_the_enqueue_time_and_the_due_time(
    cap: Capture,
) -> None:
    """A scheduled message (Celery's eta) is due later than it was enqueued; a retry's
    enqueue time is later than an eta that was already passed."""
    from obskit.runtime import state

    now = time.time()
    rt = state.current()
    scheduled = messaging.Consumption(
        rt, "k", "d", "h", {"X-Enqueued-At": str(now - 100)}, due=now - 5
    )
    scheduled.finish("success")
    retried = messaging.Consumption(
        rt, "k", "d", "h", {"X-Enqueued-At": str(now - 5)}, due=now - 100
    )
    retried.finish("success")
    for consumption in (scheduled, retried):
        assert consumption.queue_wait is not None
        assert 5 <= consumption.queue_wait < 30


def test_per_message_span_attributes_do_not_fill_the_exporters_encoding_cache(
    cap: Capture,
) -> None:
    """A unique message ID per span would fill the OTLP encoder's cache of repeated
    attribute pairs (bounded, but then useless): it is encoded inline, like a URL path."""
    from obskit.runtime import state
    from obskit.runtime.tracing.otlp import Encoder

    for i in range(50):
        messaging.Consumption(state.current(), "k", "d", "h", {}, message_id=f"m-{i}").finish(
            "success"
        )
    spans = [s for s in cap.spans() if s.kind is SpanKind.CONSUMER]
    assert len(spans) == 50
    assert spans[0].attributes["messaging.message.id"] == "m-0"
    encoder = Encoder()
    encoder.request(spans)
    cached = encoder.cached_keys()
    assert "messaging.message.id" not in cached
    assert "correlation_id" not in cached
    assert "messaging.system" in cached  # repeated pairs are cached as before
