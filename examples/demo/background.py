"""The demo's background-work part: one order through the outbox, Celery, the worker and payments.

It prints the order's journey (one correlation_id in every log line of shop, its relay, the
worker and payments, and one trace), queue wait and processing per task, a duplicate delivery
the idempotent worker skipped (payments charged once), and the outbox's oldest age climbing
while the relay is stalled, with ObskitOutboxStale, then falling once it recovers.
"""

from __future__ import annotations

import math
import time
import uuid
from collections.abc import Callable
from typing import Any

import httpx

from examples.demo import report
from examples.demo.report import say, section, table
from examples.lab.otlp_receiver import OTLPReceiver
from examples.lab.processes import wait_until
from examples.lab.prometheus import Prometheus
from examples.lab.system import ExampleSystem
from obskit import semconv

JOURNEY = ("shop", "worker", "payments")
TASK = "examples.worker.tasks.charge_order"


class Background:
    def __init__(
        self,
        system: ExampleSystem,
        receiver: OTLPReceiver,
        prom: Prometheus | None,
        elapsed: Callable[[], str],
        stall_seconds: float = 30.0,
    ) -> None:
        self.system = system
        self.receiver = receiver
        self.prom = prom
        self.elapsed = elapsed
        self.stall_seconds = stall_seconds
        self.client = httpx.Client(base_url=system.url("shop"), timeout=10.0)
        self._samples: list[dict[str, Any]] = []

    def run(self) -> None:
        try:
            self.journey()
            self.duplicate()
            self.per_task()
            self.stalled_relay()
        finally:
            self.client.close()

    # -- steps ---------------------------------------------------------------------------
    def checkout(self, correlation_id: str | None = None) -> str:
        headers = {semconv.REQUEST_ID_HEADER: correlation_id} if correlation_id else {}
        resp = self.client.post("/checkout", json={"product_id": "teapot", "quantity": 2},
                                headers=headers)  # fmt: skip
        resp.raise_for_status()
        return str(resp.json()["id"])

    def _task_lines(self, correlation_id: str) -> list[dict[str, Any]]:
        return [
            r
            for r in self.system.log_records("worker")
            if r.get(semconv.LOG_EVENT) == semconv.EVENT_TASK
            and r.get(semconv.LOG_CORRELATION_ID) == correlation_id
        ]

    def journey(self) -> None:
        section("10. Background work: one order through the outbox, Celery and the worker")
        cid = f"demo-bg-{uuid.uuid4().hex[:12]}"
        order_id = self.checkout(cid)
        say(
            f"{self.elapsed()} POST /checkout with X-Request-ID: {cid} -> 202, order {order_id}: "
            "shop wrote the order and an outbox row in one SQLite transaction; its relay "
            "publishes the row as a Celery task; the worker charges payments"
        )
        wait_until(lambda: bool(self._task_lines(cid)), 30, 0.2, "the worker's task line")
        records = {name: self.system.log_records(name) for name in JOURNEY}
        n = report.correlated_logs(records, cid)
        trace_ids = {
            str(r.get(semconv.LOG_TRACE_ID))
            for recs in records.values()
            for r in recs
            if r.get(semconv.LOG_CORRELATION_ID) == cid and r.get(semconv.LOG_TRACE_ID)
        }
        say(
            f"  -> {n} lines from shop (request + relay), the worker and payments share "
            f"correlation_id={cid} and trace_id={', '.join(sorted(trace_ids)) or '-'}"
        )
        report.record(
            "background_journey",
            {"correlation_id": cid, "order_id": order_id, "trace_ids": sorted(trace_ids)},
        )
        say("\n  the trace, as received over OTLP/HTTP (server -> relay -> producer -> consumer "
            "-> client -> payments):")  # fmt: skip
        time.sleep(0.6)  # one export interval, so the last spans are in
        spans = [s for s in self.receiver.spans() if s.trace_id in trace_ids]
        if spans:
            report.trace_tree(spans, record_as="background_trace")
        else:
            say("  no span of that trace reached the receiver")

    def duplicate(self) -> None:
        section("11. At-least-once delivery: the relay delivers one order twice")
        self.system.set_relay(duplicate_rate=1.0)
        cid = f"demo-dup-{uuid.uuid4().hex[:12]}"
        order_id = self.checkout(cid)
        try:
            wait_until(lambda: len(self._task_lines(cid)) >= 2, 30, 0.2, "both deliveries")
        finally:
            self.system.set_relay(duplicate_rate=0.0)
        rows = [
            (
                str(r.get("timestamp", ""))[11:23],
                r.get("message_id", "-"),
                r.get("outcome"),
                f"{r.get('duration_ms', 0):.1f} ms",
            )
            for r in self._task_lines(cid)
        ]
        report.record(
            "background_duplicate",
            {
                "correlation_id": cid,
                "order_id": order_id,
                "outcomes": sorted(str(r.get("outcome")) for r in self._task_lines(cid)),
            },
        )
        say(f"  order {order_id} (correlation_id={cid}) reached the worker twice:")
        table(("time", "task id", "outcome", "processing"), rows)
        skipped = [
            r
            for r in self.system.log_records("worker")
            if r.get(semconv.LOG_EVENT) == "duplicate_skipped" and r.get("order_id") == order_id
        ]
        charges = [
            r
            for r in self.system.log_records("payments")
            if r.get(semconv.LOG_EVENT) == "charge_captured" and r.get("order_id") == order_id
        ]
        say(
            f"  the worker claimed the order ID with Redis SET NX, so the second delivery was "
            f"skipped ({len(skipped)} `duplicate_skipped` line) and counted as outcome="
            f"duplicate; payments charged it {len(charges)} time(s)."
        )

    def per_task(self) -> None:
        section("12. Queue wait (freshness) and processing per task")
        for _ in range(10):
            self.checkout()
        time.sleep(2.5)
        if self.prom is None:
            self._per_task_from_logs()
            return
        window = "2m"
        wait = semconv.MESSAGING_QUEUE_WAIT + semconv.BUCKET
        proc = semconv.MESSAGING_PROCESS_DURATION
        label = semconv.LABEL_TASK
        q99 = report._by(
            self.prom,
            f"histogram_quantile(0.99, sum by ({label}, le) (rate({wait}[{window}])))",
            label,
        )
        p99 = report._by(
            self.prom,
            f"histogram_quantile(0.99, sum by ({label}, le) "
            f"(rate({proc}{semconv.BUCKET}[{window}])))",
            label,
        )
        counts = report._by(
            self.prom,
            f"sum by ({label}, {semconv.LABEL_OUTCOME}) "
            f"(increase({proc}{semconv.COUNT}[{window}]))",
            label,
            semconv.LABEL_OUTCOME,
        )
        rows = []
        for (task,), value in sorted(q99.items()):
            outcomes = ", ".join(
                f"{outcome} {n:.0f}" for (t, outcome), n in sorted(counts.items()) if t == task
            )
            rows.append(
                (
                    task,
                    report.fmt_number(value * 1000, " ms", 0),
                    report.fmt_number(p99.get((task,), math.nan) * 1000, " ms", 0),
                    outcomes,
                )
            )
        report.record("background_per_task", [list(r) for r in rows])
        say(f"  from Prometheus, over the last {window} (histogram_quantile over the buckets):")
        table(("task", "queue wait p99", "processing p99", "outcomes"), rows)
        say(
            "  `relay` is shop's outbox relay (its queue wait is a row's age), "
            f"`{TASK}` the Celery task."
        )

    def _per_task_from_logs(self) -> None:
        rows = []
        for name in ("shop", "worker"):
            lines = [r for r in self.system.log_records(name)
                     if r.get(semconv.LOG_EVENT) == semconv.EVENT_TASK]  # fmt: skip
            for task in sorted({str(r.get("task")) for r in lines}):
                mine = [r for r in lines if r.get("task") == task]
                waits = [float(r["queue_wait_ms"]) for r in mine if "queue_wait_ms" in r]
                rows.append(
                    (
                        task,
                        str(len(mine)),
                        report.fmt_number(max(waits) if waits else math.nan, " ms", 1),
                        report.fmt_number(max(float(r["duration_ms"]) for r in mine), " ms", 1),
                    )
                )
        say("  from the `event: task` log lines (Prometheus is not installed):")
        table(("task", "messages", "queue wait max", "processing max"), rows)

    def stalled_relay(self) -> None:
        section("13. The relay stalls: the outbox falls behind, and ObskitOutboxStale")
        self.system.set_relay(stalled=True)
        say(f"{self.elapsed()} relay stalled (POST /admin/relay {{\"stalled\": true}}); "
            "orders keep coming")  # fmt: skip
        start = time.monotonic()
        next_report = start
        try:
            while time.monotonic() - start < self.stall_seconds:
                self.checkout()
                if time.monotonic() >= next_report:
                    next_report += 5
                    self._outbox_line()
                time.sleep(0.5)
            self._outbox_line()
        finally:
            self.system.set_relay(stalled=False)
        say(f"{self.elapsed()} relay resumed")
        time.sleep(3)
        self._outbox_line()

    def _outbox_line(self) -> None:
        pending, age = self._outbox()
        alert = self._alert_state()
        self._samples.append({"pending": pending, "age": age, "alert": alert.strip("; ")})
        report.record("background_outbox", self._samples)
        say(
            f"{self.elapsed()} outbox orders: {pending} pending, oldest "
            f"{report.fmt_number(age, ' s', 1)}{alert}"
        )

    def _outbox(self) -> tuple[str, float | None]:
        if self.prom is not None:
            pending = self.prom.value(f'{semconv.OUTBOX_PENDING}{{job="shop",outbox="orders"}}')
            age = self.prom.value(f'{semconv.OUTBOX_OLDEST_AGE}{{job="shop",outbox="orders"}}')
            return ("-" if pending is None else f"{pending:.0f}"), age
        text = httpx.get(f"{self.system.url('shop')}/metrics", timeout=5).text
        values: dict[str, float] = {}
        for line in text.splitlines():
            for name in (semconv.OUTBOX_PENDING, semconv.OUTBOX_OLDEST_AGE):
                if line.startswith(name + "{"):
                    values[name] = float(line.rsplit(" ", 1)[1])
        return f"{values.get(semconv.OUTBOX_PENDING, math.nan):.0f}", values.get(
            semconv.OUTBOX_OLDEST_AGE
        )

    def _alert_state(self) -> str:
        if self.prom is None:
            return ""
        rules = [
            rule
            for group in self.prom.rule_groups()
            for rule in group["rules"]
            if rule.get("name") == semconv.ALERT_OUTBOX_STALE
        ]
        if not rules:
            return f"; {semconv.ALERT_OUTBOX_STALE}: no rule loaded"
        states = [
            a["state"].upper()
            for a in self.prom.alerts()
            if a["labels"].get("alertname") == semconv.ALERT_OUTBOX_STALE
        ]
        return f"; {semconv.ALERT_OUTBOX_STALE}: {', '.join(states) if states else 'inactive'}"
