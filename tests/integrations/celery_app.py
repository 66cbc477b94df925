"""The Celery app the worker tests run under real `celery worker` processes.

`celery -A tests.integrations.celery_app worker ...` with OBSKIT_TEST_BROKER set (a real Redis).
The same module is imported by the tests to publish, where `obskit.init(app, ...)` stays inert.
"""

from __future__ import annotations

import logging
import os
import time

from celery import Celery

import obskit

BROKER = os.environ.get("OBSKIT_TEST_BROKER", "redis://127.0.0.1:1/0")
app = Celery("obskit_tests", broker=BROKER, backend=BROKER)
app.conf.update(
    broker_connection_retry_on_startup=True,
    task_default_queue="obskit-tests",
    result_expires=300,
    worker_prefetch_multiplier=1,
)
obskit.init(app, service="test-worker")

log = obskit.get_logger(__name__)
stdlib_log = logging.getLogger("tests.tasks")


@app.task
def where(delay: float = 0.0) -> dict[str, object]:
    """Where and with which correlation ID the task ran."""
    if delay:
        time.sleep(delay)
    log.info("where", pid=os.getpid())
    stdlib_log.info("stdlib line from a task")
    print("a print() from a task")
    return {"pid": os.getpid(), "correlation_id": obskit.correlation_id()}


@app.task(bind=True, max_retries=3, default_retry_delay=0.1)
def flaky(self: object, fail_times: int) -> int:
    """Fails (self.retry) `fail_times` times, then succeeds."""
    retries: int = self.request.retries  # type: ignore[attr-defined]
    log.info("flaky attempt", attempt=retries)
    if retries < fail_times:
        raise self.retry(exc=ConnectionError("payments unreachable"))  # type: ignore[attr-defined]
    return retries


@app.task(autoretry_for=(TimeoutError,), max_retries=1, default_retry_delay=0.1)
def always_times_out() -> None:
    """autoretry_for: retried once, then fails for good."""
    raise TimeoutError("still down")


@app.task
def seen_before() -> None:
    """An idempotent consumer skipping a message it already processed."""
    obskit.mark_duplicate()
