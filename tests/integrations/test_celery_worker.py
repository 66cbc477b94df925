"""Celery realities under real `celery worker` processes and a real Redis broker.

One Redis, one OTLP receiver per module; each test starts the worker it needs
(`celery -A tests.integrations.celery_app worker`) and stops it. The publishing side is this
test process, with obskit initialised in memory (`capture`).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from prometheus_client.parser import text_string_to_metric_families

import obskit
from examples.lab.otlp_receiver import OTLPReceiver, ReceivedSpan
from examples.lab.processes import free_port, wait_until
from examples.lab.redis import Redis
from obskit.testing import Capture, capture
from tests.conftest import require_binary

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
CONSUMER, PRODUCER = 5, 4  # OTLP span kinds
CELERY_LOG_FORMAT = "]: INFO/", "]: WARNING/", "]: ERROR/"  # Celery's own formatter


@pytest.fixture(scope="module")
def redis() -> Iterator[Redis]:
    with Redis(binary=require_binary("redis-server")) as server:
        yield server


@pytest.fixture(scope="module")
def rx() -> Iterator[OTLPReceiver]:
    with OTLPReceiver() as receiver:
        yield receiver


@pytest.fixture(scope="module")
def tasks(redis: Redis) -> Any:
    os.environ["OBSKIT_TEST_BROKER"] = redis.url
    try:
        import tests.integrations.celery_app as module
    finally:
        del os.environ["OBSKIT_TEST_BROKER"]
    module.app.conf.broker_url = module.app.conf.result_backend = redis.url
    return module


class Worker:
    """A real `celery worker` child process with its metrics port and its output file."""

    def __init__(self, tmp: Path, redis: Redis, rx: OTLPReceiver, pool: str, **env: str) -> None:
        self.metrics_port = free_port()
        self.log_path = tmp / f"worker-{pool}.log"
        argv = [sys.executable, "-m", "celery", "-A", "tests.integrations.celery_app", "-q",
                "worker", f"--pool={pool}", "--concurrency=2", "--loglevel=INFO",
                "--without-mingle", "--without-gossip", "--without-heartbeat"]  # fmt: skip
        full_env = dict(os.environ)
        full_env.pop("PROMETHEUS_MULTIPROC_DIR", None)
        full_env.update(
            OBSKIT_TEST_BROKER=redis.url,
            OBSKIT_METRICS_PORT=str(self.metrics_port),
            OBSKIT_METRICS_HOST="127.0.0.1",
            OBSKIT_LOG_FORMAT="json",
            OBSKIT_SPAN_EXPORT_INTERVAL="0.2",
            OTEL_EXPORTER_OTLP_ENDPOINT=rx.endpoint,
            PYTHONPATH=str(ROOT),
        )
        full_env.update(env)
        self._out = self.log_path.open("wb")
        self.process = subprocess.Popen(
            argv, cwd=ROOT, env=full_env, stdout=self._out, stderr=subprocess.STDOUT
        )
        wait_until(self._ready, 30, 0.1, f"the {pool} worker to be ready")

    def _ready(self) -> bool:
        if self.process.poll() is not None:
            raise RuntimeError(f"worker exited early:\n{self.output()}")
        return any(r.get("event", "").endswith(" ready.") for r in self.records())

    def output(self) -> str:
        return self.log_path.read_text(errors="replace")

    def records(self) -> list[dict[str, Any]]:
        found = []
        for line in self.output().splitlines():
            if line.startswith("{"):
                try:
                    found.append(json.loads(line))
                except ValueError:
                    continue
        return found

    def metrics(self) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
        url = f"http://127.0.0.1:{self.metrics_port}/metrics"
        with urllib.request.urlopen(url, timeout=5) as resp:
            text = resp.read().decode()
        return {
            (sample.name, frozenset(sample.labels.items())): sample.value
            for family in text_string_to_metric_families(text)
            for sample in family.samples
        }

    def count(self, name: str, **labels: str) -> float:
        wanted = set(labels.items())
        return sum(v for (n, lbls), v in self.metrics().items() if n == name and wanted <= lbls)

    def settled_count(self, name: str, **labels: str) -> float:
        """`count` once the pool processes' batched records are in (each runs within ~0.2 s
        of its task's end, obskit/runtime/later.py): unchanged for 0.5 s. A count read
        before that can still grow by an earlier test's last task."""
        last, since = self.count(name, **labels), time.monotonic()
        deadline = since + 20
        while time.monotonic() < deadline:
            time.sleep(0.1)
            now = self.count(name, **labels)
            if now != last:
                last, since = now, time.monotonic()
            elif time.monotonic() - since >= 0.5:
                break
        return last

    def terminate(self, timeout: float = 30) -> int:
        """SIGTERM (Celery's warm shutdown) and wait; the exit code."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
        try:
            return self.process.wait(timeout=timeout)
        finally:
            self.stop()

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait(timeout=10)
        self._out.close()


@pytest.fixture
def web() -> Iterator[Capture]:
    """The publishing side: obskit initialised in memory in this test process."""
    with capture(service="web") as cap:
        yield cap


def _task_spans(rx: OTLPReceiver, service: str = "test-worker") -> list[ReceivedSpan]:
    return [s for s in rx.spans() if s.resource.get("service.name") == service]


PROCESSED = "messaging_process_duration_seconds_count"


def _task_lines(worker: Worker, cid: str | None) -> list[dict[str, Any]]:
    return [r for r in worker.records() if r.get("event") == "task"
            and r.get("correlation_id") == cid]  # fmt: skip


@dataclass
class Lab:
    redis: Redis
    rx: OTLPReceiver
    tasks: Any


@pytest.fixture(scope="module")
def lab(redis: Redis, rx: OTLPReceiver, tasks: Any) -> Lab:
    return Lab(redis, rx, tasks)


@pytest.mark.parametrize("pool", ["prefork", "solo", "threads"])
def test_every_pool_exports_its_spans_counts_every_process_and_flushes_on_sigterm(
    pool: str, tmp_path: Path, lab: Lab, web: Capture
) -> None:
    """prefork: init() ran before the fork, yet each pool process exports its own spans (here
    only at shutdown: a 60 s export interval) and the worker's metrics cover every process."""
    rx, tasks = lab.rx, lab.tasks
    rx.clear()
    worker = Worker(tmp_path, lab.redis, rx, pool, OBSKIT_SPAN_EXPORT_INTERVAL="60")
    try:
        with obskit.observe("request"):
            cid = obskit.correlation_id()
            results = [tasks.where.delay(0.3) for _ in range(6)]
        ran = [r.get(timeout=30) for r in results]
        assert {r["correlation_id"] for r in ran} == {cid}
        if pool == "prefork":
            assert len({r["pid"] for r in ran}) == 2  # both pool processes ran tasks
            assert worker.process.pid not in {r["pid"] for r in ran}
        wait_until(
            lambda: worker.count(PROCESSED, task=tasks.where.name, outcome="success") == 6,
            10, 0.1, "the worker's metrics to count all six tasks",
        )  # fmt: skip
        assert _task_spans(rx) == []  # nothing exported yet: the interval is 60 s
        assert worker.terminate() == 0
    finally:
        worker.stop()
    producers = {s.context.span_id: s for s in web.spans() if s.kind.name == "PRODUCER"}
    consumers = [s for s in _task_spans(rx) if s.kind == CONSUMER]
    assert len(consumers) == 6
    for span in consumers:
        assert span.name == f"process {tasks.where.name}"
        assert int(span.parent_span_id, 16) in producers  # one trace across the queue
        assert span.attributes["correlation_id"] == cid
    # each process that ran tasks is an instance of its own (prefork: forked after init())
    pid_of = {r.id: ran_by["pid"] for r, ran_by in zip(results, ran, strict=True)}
    instances: dict[int, set[str]] = {}
    for span in consumers:
        pid = pid_of[span.attributes["messaging.message.id"]]
        instances.setdefault(pid, set()).add(span.resource["service.instance.id"])
    assert all(len(ids) == 1 for ids in instances.values())
    assert len(set().union(*instances.values())) == len(instances)


@pytest.fixture(scope="module")
def prefork(
    tmp_path_factory: pytest.TempPathFactory, redis: Redis, rx: OTLPReceiver, tasks: Any
) -> Iterator[Worker]:
    worker = Worker(tmp_path_factory.mktemp("prefork"), redis, rx, "prefork")
    try:
        yield worker
    finally:
        worker.terminate()


def test_celery_and_task_logs_come_out_as_obskit_json(prefork: Worker, tasks: Any, web: Capture):
    """Celery empties the root logger and installs its own handlers in a worker; obskit takes
    them back, so Celery's lines, stdlib and print() lines from tasks are JSON with the IDs."""
    with obskit.observe("request"):
        cid = obskit.correlation_id()
        tasks.where.delay().get(timeout=30)
    wait_until(lambda: _task_lines(prefork, cid), 10, 0.1, "the task line")  # after the result
    records = prefork.records()
    ours = [r for r in records if r.get("correlation_id") == cid]
    events = {r["event"] for r in ours}
    assert {"where", "stdlib line from a task", "task"} <= events
    assert any("a print() from a task" in e for e in events)  # stdout redirected by Celery
    assert any(r["logger"].startswith("celery.") for r in records)  # Celery's own lines
    assert all(r["service"] == "test-worker" for r in records)
    assert not [line for line in prefork.output().splitlines() if any(
        marker in line for marker in CELERY_LOG_FORMAT)]  # fmt: skip
    (line,) = [r for r in ours if r["event"] == "task"]
    assert line["logger"] == "obskit.task"
    assert (line["task"], line["queue"], line["outcome"], line["retries"]) == (
        tasks.where.name, "obskit-tests", "success", 0,
    )  # fmt: skip
    assert isinstance(line["duration_ms"], float)
    assert line["trace_id"] == f"{web.spans()[-1].context.trace_id:032x}"


def test_retries_are_counted_and_keep_the_correlation_id(
    prefork: Worker, tasks: Any, web: Capture, rx: OTLPReceiver
) -> None:
    """self.retry and autoretry_for: each failed attempt is a `retry`, the last one the final
    outcome; every attempt carries the publisher's correlation ID and trace."""
    name_flaky, name_auto = tasks.flaky.name, tasks.always_times_out.name
    before = {
        key: prefork.settled_count(PROCESSED, task=task, outcome=outcome)
        for key, (task, outcome) in {
            "flaky_retry": (name_flaky, "retry"),
            "flaky_ok": (name_flaky, "success"),
            "auto_retry": (name_auto, "retry"),
            "auto_fail": (name_auto, "failure"),
        }.items()
    }
    with obskit.observe("request"):
        cid = obskit.correlation_id()
        assert tasks.flaky.delay(2).get(timeout=30) == 2
        auto = tasks.always_times_out.delay()
        with pytest.raises(TimeoutError):
            auto.get(timeout=30)
    wait_until(
        lambda: prefork.count(PROCESSED, task=name_auto, outcome="failure")
        == before["auto_fail"] + 1,
        10, 0.1, "the autoretry task's failure to be counted",
    )  # fmt: skip
    assert prefork.count(PROCESSED, task=name_flaky, outcome="retry") == before["flaky_retry"] + 2
    assert prefork.count(PROCESSED, task=name_flaky, outcome="success") == before["flaky_ok"] + 1
    assert prefork.count(PROCESSED, task=name_auto, outcome="retry") == before["auto_retry"] + 1
    lines = _task_lines(prefork, cid)
    assert sorted((r["task"], r["outcome"], r["retries"]) for r in lines) == sorted([
        (name_flaky, "retry", 0), (name_flaky, "retry", 1), (name_flaky, "success", 2),
        (name_auto, "retry", 0), (name_auto, "failure", 1),
    ])  # fmt: skip
    trace = {r["trace_id"] for r in lines}
    assert len(trace) == 1  # every attempt in the request's trace
    # a retry is published from the worker: counted there, with the same task label
    assert prefork.count("messaging_client_sent_messages_total", task=name_flaky) >= 2


def test_a_duplicate_is_counted_as_such(prefork: Worker, tasks: Any, web: Capture) -> None:
    before = prefork.settled_count(PROCESSED, task=tasks.seen_before.name, outcome="duplicate")
    tasks.seen_before.delay().get(timeout=30)
    wait_until(
        lambda: prefork.count(PROCESSED, task=tasks.seen_before.name, outcome="duplicate")
        == before + 1,
        10, 0.1, "the duplicate to be counted",
    )  # fmt: skip


def test_a_poisoned_message_is_a_counted_failure_and_the_worker_goes_on(
    prefork: Worker, tasks: Any, web: Capture
) -> None:
    """A message naming no registered task is rejected by Celery: obskit counts it as a
    failure of task `__unknown__` (a bounded label, whatever the message says)."""
    before = prefork.settled_count(PROCESSED, task="__unknown__", outcome="failure")
    with obskit.observe("request"):
        cid = obskit.correlation_id()
        tasks.app.send_task("no.such.task", args=("x" * 1000,))
    wait_until(
        lambda: prefork.count(PROCESSED, task="__unknown__", outcome="failure") == before + 1,
        10, 0.1, "the poisoned message to be counted",
    )  # fmt: skip
    (line,) = _task_lines(prefork, cid)
    assert line["outcome"] == "failure"
    assert line["level"] == "error"
    assert tasks.where.delay().get(timeout=30)["pid"]  # the worker still processes


def test_the_worker_survives_a_broker_restart(
    prefork: Worker, redis: Redis, tasks: Any, web: Capture
) -> None:
    before = prefork.settled_count(PROCESSED, task=tasks.where.name, outcome="success")
    redis.restart(down_for=1.0)
    with obskit.observe("request"):
        cid = obskit.correlation_id()
        result = tasks.where.delay()
    assert result.get(timeout=60)["correlation_id"] == cid
    wait_until(
        lambda: prefork.count(PROCESSED, task=tasks.where.name, outcome="success") == before + 1,
        10, 0.1, "the task after the restart to be counted",
    )  # fmt: skip


def test_a_worker_under_load_exports_every_span_and_counts_every_task(
    prefork: Worker, tasks: Any, web: Capture, rx: OTLPReceiver
) -> None:
    n = 300
    before = prefork.settled_count(PROCESSED, task=tasks.where.name, outcome="success")
    with obskit.observe("load"):
        results = [tasks.where.delay() for _ in range(n)]
    for result in results:
        result.get(timeout=60)
    trace_id = f"{web.spans()[-1].context.trace_id:032x}"

    def consumers() -> list[ReceivedSpan]:
        return [s for s in _task_spans(rx) if s.kind == CONSUMER and s.trace_id == trace_id]

    wait_until(lambda: len(consumers()) >= n, 20, 0.2, f"{n} consumer spans at the receiver")
    assert len(consumers()) == n  # every task's span, exported by the pool processes
    assert prefork.settled_count(PROCESSED, task=tasks.where.name, outcome="success") == before + n


def test_the_queue_wait_of_a_countdown_task_runs_from_when_it_became_due(
    prefork: Worker, tasks: Any, web: Capture
) -> None:
    """A task published with countdown=2 waits ~2 s by design: its freshness is measured from
    its eta, not from the publish (which would say >= 2 s)."""
    with obskit.observe("request"):
        cid = obskit.correlation_id()
        tasks.where.apply_async(countdown=2).get(timeout=30)
    wait_until(lambda: _task_lines(prefork, cid), 10, 0.1, "the task line")
    (line,) = _task_lines(prefork, cid)
    assert 0 <= line["queue_wait_ms"] < 1500


def test_hostile_headers_from_another_producer_never_break_a_task(
    prefork: Worker, tasks: Any
) -> None:
    """A producer without obskit (or a hostile one) sends a 10 KB correlation ID, a broken
    traceparent and a non-numeric enqueue time: the task runs, with a fresh correlation ID and
    a new trace, and no queue wait is made up."""
    hostile = {
        "X-Request-ID": "x" * 10_000,
        "traceparent": "00-not-a-trace-01",
        "tracestate": "=" * 100,
        "baggage": "\x00\x01",
        "X-Enqueued-At": "yesterday",
    }
    ran = tasks.where.apply_async(headers=hostile).get(timeout=30)
    cid = ran["correlation_id"]
    assert cid and len(cid) == 32 and cid != hostile["X-Request-ID"]
    wait_until(lambda: _task_lines(prefork, cid), 10, 0.1, "the task line")
    (line,) = _task_lines(prefork, cid)
    assert line["outcome"] == "success"
    assert "queue_wait_ms" not in line
