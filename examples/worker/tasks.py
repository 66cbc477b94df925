"""The example worker: a Celery app whose task charges an order through payments, idempotently.

    celery -A examples.worker.tasks worker --pool=prefork -c 2 -Q orders

shop's outbox relay publishes `charge_order(order_id, amount)` for every order. Delivery is at
least once (the relay may publish twice, a broker may redeliver), so the task is an idempotent
consumer, as the essay describes: it claims the order ID in Redis with `SET NX` before charging
and skips (and marks, `obskit.mark_duplicate()`) a message whose order was already claimed. A
charge that fails releases the claim, so a later delivery can try again.

The same module is imported by shop to publish: there `obskit.init(app, ...)` stays inert.

Settings: EXAMPLE_BROKER_URL (the Redis broker, also the idempotency store), PAYMENTS_URL.
Fault knob (read from Redis at every task, so every pool process sees it):
`examples.worker.knob.set_faults(redis_url, error_rate=0.3)`: that share of tasks fails for
good (an `InjectedFault`, logged as `fault_injected` before it is raised; deterministic per
process, as examples/lab/faults.py decides).
"""

from __future__ import annotations

import os
import threading
from typing import Any

import httpx
import redis
from celery import Celery

import obskit
from examples.lab.faults import Faults
from examples.worker.knob import read_faults

BROKER_URL = os.environ.get("EXAMPLE_BROKER_URL", "redis://127.0.0.1:6379/0")
PAYMENTS_URL = os.environ.get("PAYMENTS_URL", "http://localhost:8081").rstrip("/")
QUEUE = "orders"
CLAIM_TTL_S = 24 * 3600

app = Celery("worker", broker=BROKER_URL)
app.conf.update(
    task_default_queue=QUEUE,
    task_ignore_result=True,
    broker_connection_retry_on_startup=True,
    worker_prefetch_multiplier=1,
)
obskit.init(app, service="worker", version="1.0.0")

log = obskit.get_logger("worker")
_local = threading.local()
_faults = Faults()
_faults_lock = threading.Lock()


class InjectedFault(Exception):
    """Raised by the fault knob: the task fails for good (no retry)."""


class PaymentsUnavailable(Exception):
    """payments answered 5xx or could not be reached: retried (autoretry_for)."""


def _redis() -> redis.Redis:
    client: redis.Redis | None = getattr(_local, "redis", None)
    if client is None:
        client = _local.redis = redis.Redis.from_url(BROKER_URL, socket_timeout=5)
    return client


def _payments() -> httpx.Client:
    client: httpx.Client | None = getattr(_local, "payments", None)
    if client is None:
        client = _local.payments = httpx.Client(base_url=PAYMENTS_URL, timeout=5.0)
    return client


def _inject_fault() -> bool:
    """Decide (deterministically, per process) whether this task fails: the knob's error_rate."""
    rate = read_faults(_redis())["error_rate"]
    with _faults_lock:
        if rate != _faults.error_rate:
            _faults.update({"error_rate": rate})
        return _faults.decide("charge_order").fail


@app.task(
    bind=True,
    autoretry_for=(PaymentsUnavailable,),
    max_retries=3,
    default_retry_delay=0.5,
)
def charge_order(self: Any, order_id: str, amount: float) -> dict[str, str]:
    """Charge one order through payments, once, however often the message arrives."""
    claim = f"example:processed:{order_id}"
    if not _redis().set(claim, "processing", nx=True, ex=CLAIM_TTL_S):
        log.info("duplicate_skipped", order_id=order_id)
        obskit.mark_duplicate()
        return {"order_id": order_id, "status": "duplicate"}
    try:
        if _inject_fault():
            log.warning("fault_injected", order_id=order_id)
            raise InjectedFault(order_id)
        try:
            resp = _payments().post("/charge", json={"order_id": order_id, "amount": amount})
        except httpx.HTTPError as exc:
            raise PaymentsUnavailable(type(exc).__name__) from exc
        if resp.status_code >= 500:
            raise PaymentsUnavailable(f"payments answered {resp.status_code}")
        resp.raise_for_status()
    except BaseException:
        _redis().delete(claim)  # let a later delivery try again
        raise
    charge_id = str(resp.json()["id"])
    _redis().set(claim, charge_id, ex=CLAIM_TTL_S)
    log.info("order_charged", order_id=order_id, amount=amount, charge_id=charge_id)
    return {"order_id": order_id, "status": "charged", "charge_id": charge_id}
