"""The Celery adapter in the publishing process and in eager mode (the worker side runs real
`celery worker` processes in test_celery_worker.py)."""

from __future__ import annotations

import base64
import json
import os
import re
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
import redis as redis_client
from celery import Celery
from opentelemetry import trace
from opentelemetry.trace import SpanKind

import obskit
from examples.lab.redis import Redis, find_binary
from obskit.integrations import celery as adapter
from obskit.runtime import state
from obskit.testing import Capture, capture

ROOT = Path(__file__).resolve().parents[2]
SENT = "messaging_client_sent_messages_total"
PROCESSED = "messaging_process_duration_seconds_count"


@pytest.fixture(scope="module")
def redis() -> Iterator[Redis]:
    if find_binary() is None:
        message = "redis-server not found: install the Debian package 'redis-server'"
        if os.environ.get("CI") == "true":
            pytest.fail(message)
        pytest.skip(message)
    with Redis() as server:
        yield server


@pytest.fixture(scope="module")
def app(redis: Redis) -> Celery:
    app = Celery("publisher", broker=redis.url)
    app.conf.task_default_queue = "orders"

    @app.task(name="shop.charge")
    def charge(order_id: int) -> int:
        return order_id

    return app


@pytest.fixture
def cap() -> Iterator[Capture]:
    with capture(service="web") as captured:
        yield captured


def _queued(redis: Redis, queue: str) -> list[dict[str, Any]]:
    """The raw messages waiting in a Celery queue on Redis (kombu's JSON envelope)."""
    client = redis_client.Redis.from_url(redis.url)
    try:
        raw = client.lrange(queue, 0, -1)
        client.delete(queue)
    finally:
        client.close()
    return [json.loads(item) for item in raw]


def test_publishing_writes_ids_trace_context_and_enqueue_time_into_the_message(
    app: Celery, redis: Redis, cap: Capture
) -> None:
    with obskit.observe("POST /orders"):
        cid = obskit.correlation_id()
        before = time.time()
        app.tasks["shop.charge"].delay(7)
        after = time.time()
    (message,) = _queued(redis, "orders")
    headers = message["headers"]
    spans = {s.name: s for s in cap.spans()}
    producer = spans["send shop.charge"]
    assert producer.kind is SpanKind.PRODUCER
    assert producer.parent is not None
    assert producer.parent.span_id == spans["POST /orders"].context.span_id
    assert producer.attributes["messaging.destination.name"] == "orders"
    assert headers["X-Request-ID"] == cid
    assert headers["traceparent"].startswith(
        f"00-{producer.context.trace_id:032x}-{producer.context.span_id:016x}-"
    )
    # Unix seconds with six decimals (what inject writes; the producer span's start time)
    assert re.fullmatch(r"\d{10}\.\d{6}", headers["X-Enqueued-At"])
    assert before - 0.001 <= float(headers["X-Enqueued-At"]) <= after + 0.001
    assert float(headers["X-Enqueued-At"]) == pytest.approx(producer.start_time / 1e9, abs=2e-6)
    body = json.loads(base64.b64decode(message["body"]))
    assert body[0] == [7]  # the task's own arguments are untouched
    assert cap.sample(SENT, messaging_system="celery", messaging_destination_name="orders",
                      task="shop.charge") == 1  # fmt: skip


def test_send_task_and_apply_async_outside_a_request_get_a_fresh_id_each(
    app: Celery, redis: Redis, cap: Capture
) -> None:
    app.send_task("shop.charge", args=(1,))
    app.tasks["shop.charge"].apply_async((2,), countdown=30)
    first, second = _queued(redis, "orders")
    assert first["headers"]["X-Request-ID"] != second["headers"]["X-Request-ID"]
    assert sum(bool(m["headers"]["eta"]) for m in (first, second)) == 1  # Celery's own, kept
    assert cap.sample(SENT, task="shop.charge") == 2


def test_a_correlation_id_the_caller_put_in_the_headers_is_kept(
    app: Celery, redis: Redis, cap: Capture
) -> None:
    with obskit.observe("request"):
        app.tasks["shop.charge"].apply_async((1,), headers={"X-Request-ID": "from-the-outbox"})
    (message,) = _queued(redis, "orders")
    assert message["headers"]["X-Request-ID"] == "from-the-outbox"


def test_a_publish_that_fails_reaches_the_caller_and_is_not_counted(cap: Capture) -> None:
    app = Celery("down", broker="redis://127.0.0.1:1/0")
    app.conf.broker_connection_retry = False
    app.conf.task_publish_retry = False
    app.conf.broker_transport_options = {"max_retries": 0}
    with pytest.raises(Exception, match=r"(?i)connect|refused"):
        app.send_task("shop.charge", args=(1,))
    assert cap.sample(SENT) is None
    assert not [s for s in cap.spans() if s.name.startswith("send ")]


def test_publishes_that_never_finish_are_forgotten_beyond_a_bound(
    app: Celery, redis: Redis, cap: Capture
) -> None:
    """A publish that raises gets no after_task_publish: what obskit holds for it (the open
    producer span) is bounded, and later publishes are still counted and traced."""
    for i in range(adapter._MAX_PENDING + 100):  # what Celery sends before a publish that fails
        adapter._before_publish(sender="shop.charge", headers={"id": f"lost-{i}"}, routing_key="q")
    assert len(adapter._publishing) <= adapter._MAX_PENDING
    app.tasks["shop.charge"].delay(7)
    (message,) = _queued(redis, "orders")
    assert not [key for key in adapter._publishing if key[1] == message["headers"]["id"]]
    assert cap.sample(SENT, task="shop.charge", messaging_destination_name="orders") == 1
    assert [s.name for s in cap.spans()] == ["send shop.charge"]
    obskit.reset()
    assert not adapter._publishing  # nothing held once obskit is reset


def test_two_threads_publishing_the_same_task_id_at_once_each_get_their_own_span(
    cap: Capture,
) -> None:
    import threading

    both_started = threading.Barrier(2)
    first_done = threading.Event()

    def publish(first: bool) -> None:
        headers = {"id": "same-id"}
        adapter._before_publish(sender="shop.charge", headers=headers, routing_key="orders")
        both_started.wait(5)
        if not first:
            first_done.wait(5)
        adapter._after_publish(sender="shop.charge", headers=headers)
        if first:
            first_done.set()

    threads = [threading.Thread(target=publish, args=(flag,)) for flag in (True, False)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(10)
    assert cap.sample(SENT, task="shop.charge") == 2
    assert [s.name for s in cap.spans()] == ["send shop.charge"] * 2
    assert not adapter._publishing


def test_eager_mode_runs_the_task_with_the_callers_ids_for_unit_tests(cap: Capture) -> None:
    app = Celery("eager")
    app.conf.task_always_eager = True

    @app.task(bind=True, name="eager.flaky", max_retries=2, default_retry_delay=0)
    def flaky(self: Any) -> str | None:
        if self.request.retries < 1:
            raise self.retry(exc=ConnectionError("once"))
        return obskit.correlation_id()

    @app.task(name="eager.skip")
    def skip() -> None:
        obskit.mark_duplicate()

    with obskit.observe("request"):
        cid = obskit.correlation_id()
        assert flaky.delay().get() == cid
        skip.delay()
    lines = cap.logs(event="task")
    assert [(r["task"], r["outcome"], r["retries"]) for r in lines] == [
        ("eager.flaky", "retry", 0), ("eager.flaky", "success", 1), ("eager.skip", "duplicate", 0),
    ]  # fmt: skip
    assert {r["correlation_id"] for r in lines} == {cid}
    spans = {s.name: s for s in cap.spans()}
    assert spans["process eager.skip"].kind is SpanKind.CONSUMER
    assert spans["process eager.skip"].parent.span_id == spans["request"].context.span_id  # type: ignore[union-attr]
    assert cap.sample(PROCESSED, task="eager.flaky", outcome="success") == 1
    assert cap.sample(SENT) is None  # nothing was sent: eager runs in place
    assert cap.sample("messaging_queue_wait_seconds_count") is None  # and waits for nothing


def test_the_adapter_is_gone_after_reset(app: Celery, redis: Redis) -> None:
    with capture(service="web"):
        pass
    app.tasks["shop.charge"].delay(1)
    (message,) = _queued(redis, "orders")
    assert "X-Request-ID" not in message["headers"]


def test_an_adapter_error_is_counted_and_never_fails_the_publish(
    app: Celery, redis: Redis, cap: Capture, monkeypatch: pytest.MonkeyPatch
) -> None:
    def broken(*args: object, **kwargs: object) -> tuple[object, dict[str, str]]:
        raise RuntimeError("bug in obskit")

    monkeypatch.setattr(adapter.messaging, "begin_send", broken)
    app.tasks["shop.charge"].delay(1)
    assert len(_queued(redis, "orders")) == 1
    assert cap.sample("obskit_instrumentation_errors_total") == 1


def _run(code: str, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-W", "error", "-c", textwrap.dedent(code)],
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT), **env},
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
    )


WORKER_MODULE = """
    from celery import Celery
    import obskit
    app = Celery("tasks", broker="memory://")
    worker_handle = obskit.init(app, service="worker")

    @app.task(name="tasks.t")
    def t(): return None
"""


@pytest.mark.parametrize("order", ["worker module first", "own init first"])
def test_init_with_a_celery_app_stays_inert_in_a_web_process(order: str, tmp_path: Path) -> None:
    """A web process imports the worker's module to publish: the worker's init() neither
    warns, nor changes the web's own init(), nor initialises anything by itself."""
    (tmp_path / "worker_tasks.py").write_text(textwrap.dedent(WORKER_MODULE))
    own_init = "web = obskit.init(None, service='web', log_format='json')"
    code = f"""
        import sys; sys.path.insert(0, {str(tmp_path)!r})
        import obskit
        from obskit.runtime import state
        {"import worker_tasks" if order == "worker module first" else own_init}
        {own_init if order == "worker module first" else "import worker_tasks"}
        assert state.current().config.service == "web", state.current().config.service
        assert (worker_tasks.worker_handle is None) == ({order!r} == "worker module first")
        headers = {{}}
        from celery import signals
        signals.before_task_publish.connect(
            lambda headers=None, **kw: print(sorted(headers)), weak=False)
        worker_tasks.t.delay()
    """
    result = _run(code)
    assert result.returncode == 0, result.stderr
    assert "X-Request-ID" in result.stdout and "traceparent" in result.stdout
    assert '"service":"worker"' not in result.stdout


def test_publishing_is_instrumented_when_celery_is_imported_after_init() -> None:
    result = _run(
        """
        import sys, obskit
        obskit.init(None, service="web", log_format="json")
        assert "celery" not in sys.modules
        from celery import Celery, signals
        app = Celery("late", broker="memory://")
        seen = []
        signals.after_task_publish.connect(
            lambda headers=None, **kw: seen.append(headers), weak=False)
        with obskit.observe("request"):
            app.send_task("late.t")
            cid = obskit.correlation_id()
        assert seen[0]["X-Request-ID"] == cid, seen
        print("ok")
        """
    )
    assert result.returncode == 0, result.stderr
    assert "ok" in result.stdout.splitlines()


def test_a_process_that_never_uses_celery_never_imports_it() -> None:
    result = _run(
        """
        import sys, obskit
        obskit.init(None, service="web", log_format="json")
        print("celery" in sys.modules)
        """
    )
    assert result.stdout.strip() == "False", result.stderr


def _worker_task(app: Celery, headers: dict[str, Any]) -> Any:
    """A task and request shaped like a worker's (not eager), for driving the receivers."""
    request = SimpleNamespace(
        is_eager=False,
        delivery_info={"routing_key": "orders", "exchange": ""},
        headers=headers,
        eta=None,
        retries=0,
    )
    return SimpleNamespace(request=request, name="shop.charge", queue=None, app=app)


def test_a_workers_task_restores_the_context_and_its_records_keep_the_tasks_own_times(
    app: Celery, cap: Capture
) -> None:
    with obskit.observe("POST /orders"):
        cid = obskit.correlation_id()
        headers = obskit.inject({"id": "task-1", "task": "shop.charge"})
    assert obskit.correlation_id() is None
    outside = trace.get_current_span()
    task = _worker_task(app, headers)
    adapter._task_prerun(sender=task, task_id="task-1", task=task)
    assert obskit.correlation_id() == cid
    running = trace.get_current_span()
    assert running.is_recording()
    before_end = time.time_ns()
    adapter._task_postrun(sender=task, task_id="task-1", task=task, retval=1, state="SUCCESS")
    after_end = time.time_ns()
    # the worker's next task starts from a clean context: no correlation ID, no task span
    assert obskit.correlation_id() is None
    assert trace.get_current_span() is outside
    time.sleep(0.2)  # the line, metrics and span may be recorded later: with the task's times
    (line,) = cap.logs(event="task")
    assert (line["correlation_id"], line["outcome"], line["queue"]) == (cid, "success", "orders")
    stamp = datetime.fromisoformat(line["timestamp"].replace("Z", "+00:00")).timestamp()
    assert before_end // 1_000_000 <= round(stamp * 1000) <= after_end // 1_000_000
    assert cap.sample(PROCESSED, task="shop.charge", outcome="success") == 1
    assert cap.sample("messaging_queue_wait_seconds_count", task="shop.charge") == 1
    spans = {s.name: s for s in cap.spans()}
    consumer = spans["process shop.charge"]
    assert consumer.context.span_id == running.get_span_context().span_id
    assert consumer.parent.span_id == spans["POST /orders"].context.span_id  # type: ignore[union-attr]
    assert before_end <= consumer.end_time <= after_end
    assert consumer.attributes["messaging.outcome"] == "success"


def test_a_workers_task_whose_deferred_record_fails_still_exports_its_span(
    app: Celery, cap: Capture, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The batched record (line, histogram) failing is counted, and the span still ends."""
    rt = state.current()
    assert rt is not None and rt.metrics is not None

    def broken(*_: Any) -> None:
        raise RuntimeError("metrics backend gone")

    monkeypatch.setattr(rt.metrics, "process_duration", broken)
    task = _worker_task(app, obskit.inject({"id": "task-2", "task": "shop.charge"}))
    adapter._task_prerun(sender=task, task_id="task-2", task=task)
    adapter._task_postrun(sender=task, task_id="task-2", task=task, retval=1, state="SUCCESS")
    assert [s.name for s in cap.spans()] == ["process shop.charge"]
    assert cap.sample("obskit_instrumentation_errors_total") == 1
    assert cap.logs(event="task") == []  # the record stopped where it failed


def test_a_workers_publish_counts_and_ends_its_span_with_the_publish_time(
    app: Celery, redis: Redis, cap: Capture
) -> None:
    started = time.time_ns()
    app.tasks["shop.charge"].delay(1)
    ended = time.time_ns()
    time.sleep(0.2)
    assert cap.sample(SENT, task="shop.charge") == 1
    (span,) = cap.spans()
    assert started <= span.start_time <= span.end_time <= ended
    _queued(redis, "orders")


def test_a_sampled_out_publish_propagates_its_ids_unsampled_and_exports_no_span(
    app: Celery, redis: Redis
) -> None:
    with capture(service="web", sampler="always_off") as cap:
        app.tasks["shop.charge"].delay(2)
        (message,) = _queued(redis, "orders")
        version, trace_hex, span_hex, flags = message["headers"]["traceparent"].split("-")
        assert (version, flags, len(trace_hex), len(span_hex)) == ("00", "00", 32, 16)
        assert int(trace_hex, 16) and int(span_hex, 16)
        assert cap.spans() == []
        assert cap.sample(SENT, task="shop.charge") == 1
