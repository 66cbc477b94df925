"""obskit's OTLP/HTTP exporter retries what the OTLP spec calls retryable (429, 502, 503, 504)
with exponential backoff honouring Retry-After, within its time budget, and counts what is
finally dropped (issue 13, item 12). Every test talks to a real receiver on 127.0.0.1."""

from __future__ import annotations

import email.utils
import io
import threading
import time

import pytest
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor, SpanExportResult
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from prometheus_client import CollectorRegistry

import obskit
from examples.lab.otlp_receiver import OTLPReceiver, Reply
from obskit.runtime.tracing.otlp import OTLPHttpExporter, retry_after

pytestmark = pytest.mark.integration


def _spans(n: int = 3) -> list[ReadableSpan]:
    memory = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(memory))
    tracer = provider.get_tracer("t")
    for i in range(n):
        tracer.start_span(f"s{i}").end()
    return list(memory.get_finished_spans())


def _dropped(registry: CollectorRegistry) -> float:
    return sum(
        registry.get_sample_value("obskit_spans_dropped_total", {"reason": reason}) or 0
        for reason in ("queue_full", "export_failed", "shutdown")
    )


def test_a_collector_answering_429_then_200_gets_every_span_once_through_obskit() -> None:
    """The issue's case end to end: init(), spans, the collector says 429 (Retry-After: 1)
    once, then 200: nothing is dropped, the batch arrives on the second attempt, after the
    delay the collector asked for."""
    obskit.reset()
    registry = CollectorRegistry()
    with OTLPReceiver() as rx:
        rx.reply_next(Reply(429, retry_after="1"))
        obskit.init(
            None,
            service="retry",
            otlp_endpoint=rx.traces_url,
            otlp_timeout=10,
            span_batch_size=20,
            span_export_interval=60,  # one batch, sent when it is full
            registry=registry,
            log_stream=io.BytesIO(),
            capture_stdlib_logs=False,
            environ={},
        )
        for i in range(20):
            with obskit.observe(f"op{i}"):
                pass
        rx.wait_for_spans(20, timeout=15)
        obskit.shutdown(5)
        answers = rx.answers()
    assert [a.status for a in answers] == [429, 200]
    assert answers[0].spans == answers[1].spans == 20  # the same batch, sent again
    assert answers[1].at - answers[0].at >= 0.95  # not before Retry-After: 1
    finished = registry.get_sample_value("obskit_spans_finished_total")
    assert finished == 20
    assert registry.get_sample_value("obskit_spans_exported_total") == 20
    assert _dropped(registry) == 0
    assert registry.get_sample_value("obskit_span_export_failures_total") == 0
    assert rx.span_count == 20  # every span once


@pytest.mark.parametrize("status", [429, 502, 503, 504])
def test_each_retryable_status_is_retried_until_the_collector_accepts(status: int) -> None:
    with OTLPReceiver() as rx:
        rx.reply_next(Reply(status, retry_after="0"))
        exporter = OTLPHttpExporter(rx.traces_url, timeout=10, backoff=0.05)
        assert exporter.export(_spans(2)) is SpanExportResult.SUCCESS
        exporter.shutdown()
        assert [a.status for a in rx.answers()] == [status, 200]
        assert exporter.retries == 1
        assert rx.span_count == 2


@pytest.mark.parametrize("status", [400, 401, 404, 413, 500])
def test_other_errors_fail_the_batch_at_once_without_a_retry(status: int) -> None:
    with OTLPReceiver() as rx:
        rx.reply_next(Reply(status))
        exporter = OTLPHttpExporter(rx.traces_url, timeout=10)
        assert exporter.export(_spans(1)) is SpanExportResult.FAILURE
        exporter.shutdown()
        assert [a.status for a in rx.answers()] == [status]
        assert exporter.last_error is not None and f"HTTP {status}" in exporter.last_error


def test_a_collector_that_keeps_answering_503_is_given_up_within_the_time_budget() -> None:
    """Backoff 1 s, then 2 s (+-20%): with a 2 s budget the exporter tries twice (the third
    attempt would start after the budget) and reports why it gave up."""
    with OTLPReceiver() as rx:
        rx.set_mode("error")
        exporter = OTLPHttpExporter(rx.traces_url, timeout=2)
        assert exporter.export(_spans(1)) is SpanExportResult.FAILURE
        exporter.shutdown()
        statuses = [a.status for a in rx.answers()]
    assert statuses == [503, 503]
    assert exporter.last_error is not None
    assert "2 attempts within otlp_timeout=2s" in exporter.last_error


def test_a_retry_after_beyond_the_budget_gives_up_at_once_instead_of_sleeping() -> None:
    with OTLPReceiver() as rx:
        rx.reply_next(Reply(429, retry_after="120"))
        exporter = OTLPHttpExporter(rx.traces_url, timeout=5)
        assert exporter.export(_spans(1)) is SpanExportResult.FAILURE
        exporter.shutdown()
        assert [a.status for a in rx.answers()] == [429]
        assert exporter.retries == 0


def test_shutdown_cuts_a_backoff_short() -> None:
    """An export waiting to retry returns (FAILURE) as soon as the exporter shuts down."""
    with OTLPReceiver() as rx:
        rx.reply_next(Reply(503, retry_after="60"))
        exporter = OTLPHttpExporter(rx.traces_url, timeout=120)
        results: list[SpanExportResult] = []
        worker = threading.Thread(target=lambda: results.append(exporter.export(_spans(1))))
        worker.start()
        deadline = time.monotonic() + 10
        while not rx.answers() and time.monotonic() < deadline:
            time.sleep(0.01)
        exporter.shutdown()
        worker.join(10)
        assert not worker.is_alive()
    assert results == [SpanExportResult.FAILURE]
    assert exporter.last_error is not None and "shutdown" in exporter.last_error


def test_finally_dropped_batches_are_counted_and_the_books_balance() -> None:
    """A collector answering 503 to everything: each batch is retried within its budget,
    then counted as dropped{export_failed}; finished == exported + dropped after shutdown."""
    obskit.reset()
    registry = CollectorRegistry()
    with OTLPReceiver() as rx:
        rx.set_mode("error")
        obskit.init(
            None,
            service="retry",
            otlp_endpoint=rx.traces_url,
            otlp_timeout=1.5,
            span_export_interval=60,  # one batch, sent when it is full
            span_batch_size=10,
            registry=registry,
            log_stream=io.BytesIO(),
            capture_stdlib_logs=False,
            environ={},
        )
        for i in range(10):
            with obskit.observe(f"op{i}"):
                pass
        deadline = time.monotonic() + 15
        while not registry.get_sample_value("obskit_span_export_failures_total"):
            assert time.monotonic() < deadline, "the batch was never given up"
            time.sleep(0.05)
        obskit.shutdown(5)
        statuses = [a.status for a in rx.answers()]
    assert statuses == [503, 503]  # one retry after ~1 s, then the budget is spent
    assert (
        registry.get_sample_value("obskit_spans_dropped_total", {"reason": "export_failed"}) == 10
    )
    finished = registry.get_sample_value("obskit_spans_finished_total")
    exported = registry.get_sample_value("obskit_spans_exported_total")
    assert finished == 10
    assert finished == exported + _dropped(registry)


def test_retry_after_reads_seconds_and_http_dates() -> None:
    assert retry_after("3") == 3.0
    assert retry_after(" 0 ") == 0.0
    assert retry_after(None) is None
    assert retry_after("soon") is None
    assert retry_after("-1") is None
    assert retry_after("9" * 40) == 3600.0  # capped, never int() of an unbounded string
    future = email.utils.formatdate(time.time() + 30, usegmt=True)
    delay = retry_after(future)
    assert delay is not None and 25 <= delay <= 31
    past = email.utils.formatdate(time.time() - 30, usegmt=True)
    assert retry_after(past) == 0.0


def test_a_steady_stream_of_spans_is_exported_in_full_batches() -> None:
    """Spans keep arriving while a batch is being sent (a busy service, a Celery publisher):
    each POST still carries a full batch; a partial batch waits for the export interval. (The
    pipe used to drain "until empty" and chased the spans that arrived during each export:
    ~3.5 spans per POST at 2,000 spans a second, ~230 us of CPU each.)"""
    obskit.reset()
    registry = CollectorRegistry()
    with OTLPReceiver() as rx:
        obskit.init(
            None,
            service="stream",
            otlp_endpoint=rx.traces_url,
            span_batch_size=100,
            span_export_interval=60,  # no partial batch before shutdown
            registry=registry,
            log_stream=io.BytesIO(),
            capture_stdlib_logs=False,
            environ={},
        )
        for i in range(1000):
            with obskit.observe("op"):
                pass
            if i % 10 == 0:
                time.sleep(0.001)  # a stream, not a burst: spans arrive during each export
        rx.wait_for_spans(1000, timeout=15)
        during = [a.spans for a in rx.answers()]
        with obskit.observe("last"):
            pass
        obskit.shutdown(5)
        after = [a.spans for a in rx.answers()]
    assert during == [100] * 10
    assert after == [100] * 10 + [1]  # the partial batch goes at shutdown
    assert registry.get_sample_value("obskit_spans_exported_total") == 1001
