"""Background work end to end: shop -> outbox -> relay -> Redis -> Celery worker -> payments,
with a real Prometheus scraping all three (1 s) and an OTLP receiver.

One lab for the module. Each test uses its own correlation IDs and compares counter values
before and after what it does, so the tests do not depend on each other's traffic.
"""

from __future__ import annotations

import contextlib
import shutil
import tempfile
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from examples.lab import generated, grafana
from examples.lab.otlp_receiver import OTLPReceiver
from examples.lab.processes import Supervisor, wait_until
from examples.lab.prometheus import Prometheus, Target
from examples.lab.redis import find_binary
from examples.lab.system import ExampleSystem
from obskit import semconv
from tests.conftest import require_binary

pytestmark = [pytest.mark.e2e, pytest.mark.integration]

TASK = "examples.worker.tasks.charge_order"
PROCESSED = f'{semconv.MESSAGING_PROCESS_DURATION}_count{{job="worker",task="{TASK}"}}'
SERVER, CLIENT, PRODUCER, CONSUMER = 2, 3, 4, 5  # OTLP span kinds


@dataclass
class BackgroundLab:
    system: ExampleSystem
    receiver: OTLPReceiver
    prom: Prometheus
    shop: httpx.Client
    out: Path

    def checkout(self, correlation_id: str) -> str:
        resp = self.shop.post(
            "/checkout",
            json={"product_id": "mug", "quantity": 1},
            headers={semconv.REQUEST_ID_HEADER: correlation_id},
        )
        assert resp.status_code == 202, resp.text
        return str(resp.json()["id"])

    def lines(self, service: str, **match: Any) -> list[dict[str, Any]]:
        return [
            r
            for r in self.system.log_records(service)
            if all(r.get(k) == v for k, v in match.items())
        ]

    def outcomes(self) -> dict[str, float]:
        """The worker's processed count per outcome, as Prometheus scraped it."""
        return {
            s.labels["outcome"]: s.value for s in self.prom.query(f"sum by (outcome) ({PROCESSED})")
        }


@pytest.fixture(scope="module")
def bg() -> Iterator[BackgroundLab]:
    require_binary("prometheus")
    if find_binary() is None:
        require_binary("redis-server")
    workdir = Path(tempfile.mkdtemp(prefix="obskit-e2e-background-"))
    supervisor = Supervisor()
    receiver = OTLPReceiver().start()
    prom: Prometheus | None = None
    system: ExampleSystem | None = None
    try:
        out = workdir / "generated"
        generated.generate(out, generated.BACKGROUND_MANIFESTS)
        system = ExampleSystem(
            workdir / "logs",
            otlp_endpoint=receiver.endpoint,
            supervisor=supervisor,
            background=True,
        ).start()
        targets = [Target(name, system.services[name].address) for name in system.names]
        prom = Prometheus(targets, generated.rule_files(out), supervisor=supervisor).start()
        prom.wait_for_targets(timeout=40)
        with httpx.Client(base_url=system.url("shop"), timeout=10) as shop:
            yield BackgroundLab(system, receiver, prom, shop, out)
    finally:
        if prom is not None:
            prom.stop()
        if system is not None:
            system.stop()
        supervisor.stop_all()
        receiver.stop()
        shutil.rmtree(workdir, ignore_errors=True)


def _cid(prefix: str) -> str:
    return f"e2e-{prefix}-{uuid.uuid4().hex[:10]}"


def test_one_order_is_one_correlation_id_and_one_trace_across_http_celery_and_http(
    bg: BackgroundLab,
) -> None:
    cid = _cid("journey")
    order_id = bg.checkout(cid)
    wait_until(
        lambda: bg.lines("payments", event="charge_captured", order_id=order_id)
        and bg.lines("worker", event="task", correlation_id=cid),
        30, 0.2, "the order to be charged by the worker",
    )  # fmt: skip
    lines = {name: bg.lines(name, correlation_id=cid) for name in ("shop", "worker", "payments")}
    events = {name: {r["event"] for r in recs} for name, recs in lines.items()}
    assert {"order_placed", "request", "outbox_row_published", "task"} <= events["shop"]
    assert {"order_charged", "task"} <= events["worker"]
    assert {"charge_captured", "request"} <= events["payments"]
    traces = {r["trace_id"] for recs in lines.values() for r in recs}
    assert len(traces) == 1, traces
    (trace_id,) = traces

    def chain() -> list[tuple[str, int, str]]:
        spans = {s.span_id: s for s in bg.receiver.spans() if s.trace_id == trace_id}
        leaf = [s for s in spans.values() if s.kind == SERVER and
                s.resource.get("service.name") == "payments"]  # fmt: skip
        path = []
        node = leaf[0] if leaf else None
        while node is not None:
            path.append((node.resource.get("service.name", ""), node.kind, node.name))
            node = spans.get(node.parent_span_id)
        return list(reversed(path))

    wait_until(lambda: len(chain()) >= 6, 10, 0.2, "the whole trace at the receiver")
    assert chain() == [
        ("shop", SERVER, "POST /checkout"),
        ("shop", CONSUMER, "process relay"),
        ("shop", PRODUCER, f"send {TASK}"),
        ("worker", CONSUMER, f"process {TASK}"),
        ("worker", CLIENT, "POST"),
        ("payments", SERVER, "POST /charge"),
    ]


def _baseline(bg: BackgroundLab) -> dict[str, float]:
    """Per-outcome counts once Prometheus has scraped every task the worker logged so far."""
    found: dict[str, float] = {}

    def current() -> bool:
        nonlocal found
        found = bg.outcomes()
        lines = len(bg.lines("worker", event="task", task=TASK))
        if sum(found.values()) != lines:
            return False
        # a pool process records a task's line and metrics together, in a batch, within ~0.2 s
        # of its end (obskit/runtime/later.py): no line may still be on its way
        time.sleep(0.5)
        return len(bg.lines("worker", event="task", task=TASK)) == lines

    wait_until(current, 20, 0.25, "Prometheus to have scraped the worker's tasks so far")
    return found


def _settled(bg: BackgroundLab, expected: dict[str, float]) -> dict[str, float]:
    """Wait until Prometheus's per-outcome counts reach `expected` (exactly); return them."""
    found: dict[str, float] = {}

    def reached() -> bool:
        nonlocal found
        found = bg.outcomes()
        return all(found.get(k, 0.0) >= v for k, v in expected.items())

    with contextlib.suppress(TimeoutError):  # the assertions that follow say what is missing
        wait_until(reached, 20, 0.25, f"outcome counts {expected}")
    time.sleep(1.5)  # one more scrape: nothing beyond the expected may arrive
    return bg.outcomes()


def test_counts_by_outcome_equal_the_injected_faults_exactly(bg: BackgroundLab) -> None:
    before = _baseline(bg)
    prefix = _cid("faults")
    bg.system.set_worker_faults(error_rate=0.25)
    try:
        cids = [f"{prefix}-{i}" for i in range(20)]
        for cid in cids:
            bg.checkout(cid)
        wait_until(
            lambda: all(bg.lines("worker", event="task", correlation_id=c) for c in cids),
            40, 0.25, "every order's task line",
        )  # fmt: skip
    finally:
        bg.system.set_worker_faults(error_rate=0.0)
    injected = [r for r in bg.lines("worker", event="fault_injected")
                if str(r.get("correlation_id", "")).startswith(prefix)]  # fmt: skip
    assert 3 <= len(injected) <= 7  # a quarter of 20 per pool process, rounded down in each
    expected = {
        "success": before.get("success", 0.0) + 20 - len(injected),
        "failure": before.get("failure", 0.0) + len(injected),
    }
    after = _settled(bg, expected)
    assert after.get("success", 0.0) == expected["success"]
    assert after.get("failure", 0.0) == expected["failure"]
    assert after.get("retry", 0.0) == before.get("retry", 0.0)
    assert after.get("duplicate", 0.0) == before.get("duplicate", 0.0)


def test_a_duplicated_message_is_counted_once_as_duplicate_and_charged_once(
    bg: BackgroundLab,
) -> None:
    before = _baseline(bg)
    cid = _cid("twice")
    bg.system.set_relay(duplicate_rate=1.0)
    try:
        order_id = bg.checkout(cid)
        wait_until(
            lambda: len(bg.lines("worker", event="task", correlation_id=cid)) == 2,
            30, 0.2, "both deliveries to be processed",
        )  # fmt: skip
    finally:
        bg.system.set_relay(duplicate_rate=0.0)
    outcomes = sorted(r["outcome"] for r in bg.lines("worker", event="task", correlation_id=cid))
    assert outcomes == ["duplicate", "success"]
    assert len(bg.lines("worker", event="duplicate_skipped", order_id=order_id)) == 1
    assert len(bg.lines("payments", event="charge_captured", order_id=order_id)) == 1
    expected = {
        "success": before.get("success", 0.0) + 1,
        "duplicate": before.get("duplicate", 0.0) + 1,
    }
    after = _settled(bg, expected)
    assert after.get("duplicate", 0.0) == expected["duplicate"]
    assert after.get("success", 0.0) == expected["success"]
    # what the rules and panels read: the rate sees it, even when it is the worker's first
    # duplicate (its series exists at 0 since the task's first message; one born at 1 shows
    # no increase)
    duplicates = PROCESSED.replace("}", ',outcome="duplicate"}')
    seen = bg.prom.value(f"sum(increase({duplicates}[5m]))")
    assert seen is not None and seen >= 0.5, seen


def _outbox_stale(bg: BackgroundLab) -> list[str]:
    return [
        a["state"]
        for a in bg.prom.alerts()
        if a["labels"].get("alertname") == semconv.ALERT_OUTBOX_STALE
        and a["labels"].get("outbox") == "orders"
    ]


def test_a_stalled_relay_raises_the_outbox_gauges_fires_outbox_stale_and_they_fall_after(
    bg: BackgroundLab,
) -> None:
    """shop's manifest sets demo-sized thresholds (oldest row older than 10 s for 10 s)."""
    pending = f'{semconv.OUTBOX_PENDING}{{job="shop",outbox="orders"}}'
    age = f'{semconv.OUTBOX_OLDEST_AGE}{{job="shop",outbox="orders"}}'
    assert _outbox_stale(bg) == []
    bg.system.set_relay(stalled=True)
    try:
        for i in range(5):
            bg.checkout(_cid(f"stalled-{i}"))
        wait_until(
            lambda: (bg.prom.value(pending) or 0) >= 5 and (bg.prom.value(age) or 0) >= 2,
            20, 0.25, "the outbox gauges to show the backlog",
        )  # fmt: skip
        wait_until(lambda: _outbox_stale(bg) == ["firing"], 60, 0.5, "ObskitOutboxStale to fire")
    finally:
        bg.system.set_relay(stalled=False)
    wait_until(
        lambda: bg.prom.value(pending) == 0 and bg.prom.value(age) == 0,
        20, 0.25, "the outbox to drain after the relay resumed",
    )  # fmt: skip


def test_the_processing_and_freshness_slis_and_every_background_panel_return_data(
    bg: BackgroundLab,
) -> None:
    """The worker's generated recording rules (processing, freshness) evaluate to data, and
    every query of the worker's dashboard and of shop's outbox panels returns a series."""
    for slo in ("processing", "freshness"):
        bg.prom.wait_for_query(
            f'obskit_slo:error_ratio{{service="worker",slo="{slo}",window="5m"}}', timeout=30
        )
    bg.prom.wait_for_query("count_over_time(up[1m]) >= 10", timeout=60)
    dashboards = generated.dashboards(bg.out)
    empty: list[str] = []
    checked = 0
    for service in ("worker", "shop"):
        dashboard = dashboards[service]
        variables = grafana.resolve_variables(dashboard, bg.prom)
        for q in grafana.panel_queries(dashboard):
            if service == "shop" and "outbox" not in q.expr:
                continue  # shop's HTTP panels are test_example_system's
            expr = grafana.substitute(q.expr, variables)
            checked += 1
            if not bg.prom.query(expr):
                empty.append(f"{service} / {q.panel_title} [{q.ref_id}]: {expr}")
    assert checked > 5
    assert empty == [], "panels with no data:\n" + "\n".join(empty)
