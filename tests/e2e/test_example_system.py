"""End to end: the example services, scraped by a real Prometheus loaded with the generated rules.

See conftest.py for the scenario (shop healthy, payments failing a fixed share of one route).
Waits poll Prometheus until a condition holds (bounded); no assertion depends on timing.
"""

from __future__ import annotations

import time
import uuid
from collections import Counter
from typing import Any

import httpx
import pytest

from examples.lab import generated, grafana
from examples.lab.processes import wait_until
from examples.lab.traffic import Call
from obskit import semconv
from tests.e2e.scenario import (
    FAULTY_ROUTE,
    FAULTY_SERVICE,
    HEALTHY_SERVICE,
    INJECTED_ERROR_RATE,
    Lab,
)

pytestmark = [pytest.mark.e2e, pytest.mark.prometheus, pytest.mark.integration]

RATIO_TOLERANCE = 0.02
"""Absolute tolerance between the recorded error ratio and the one the service served."""

ORDER = Call("shop", "POST", "/orders", "/orders", {"product_id": "kettle", "quantity": 1})


def _slo_alerts(lab: Lab, service: str) -> list[dict[str, Any]]:
    return [
        a
        for a in lab.prom.alerts()
        if a["labels"].get("service") == service and "slo" in a["labels"]
    ]


def _served_error_ratio(lab: Lab, service: str, routes: set[str] | None) -> tuple[float, int]:
    """Error ratio of what the service itself logged (its access log), and the request count."""
    statuses: Counter[bool] = Counter()
    for rec in lab.system.log_records(service):
        if rec.get("logger") != "obskit.access":
            continue
        if routes is not None and rec.get("route") not in routes:
            continue
        statuses[int(rec["status"]) >= 500] += 1
    total = statuses[True] + statuses[False]
    return (statuses[True] / total if total else 0.0), total


def test_generated_rules_load_and_evaluate_without_error(lab: Lab) -> None:
    """Prometheus loads every generated rule file and evaluates every rule without an error."""
    wait_until(
        lambda: all(h == "ok" for h in lab.prom.rule_health().values()),
        timeout=20,
        what="every rule evaluated",
    )
    health = lab.prom.rule_health()
    assert health, "Prometheus loaded no rules"
    assert {k: v for k, v in health.items() if v != "ok"} == {}


def test_one_request_is_one_trace_across_both_services_and_one_correlation_id(lab: Lab) -> None:
    """shop -> payments: spans share one trace id with a parent/child link; logs share the ids."""
    request_id = f"e2e-{uuid.uuid4().hex[:16]}"
    resp = lab.driver.send(ORDER, headers={"X-Request-ID": request_id})
    assert resp.status_code == 201
    assert resp.headers["x-request-id"] == request_id

    def logged_by_both() -> bool:
        return all(
            any(r.get(semconv.LOG_CORRELATION_ID) == request_id for r in lab.system.log_records(s))
            for s in ("shop", "payments")
        )

    wait_until(logged_by_both, timeout=10, what="both services to log the request")
    records = [
        r
        for s in ("shop", "payments")
        for r in lab.system.log_records(s)
        if r.get(semconv.LOG_CORRELATION_ID) == request_id
    ]
    assert {r["service"] for r in records} == {"shop", "payments"}
    trace_ids = {r[semconv.LOG_TRACE_ID] for r in records}
    assert len(trace_ids) == 1, trace_ids
    (trace_id,) = trace_ids

    def trace_spans() -> list[Any]:
        return [s for s in lab.receiver.spans() if s.trace_id == trace_id]

    wait_until(
        lambda: {s.resource.get("service.name") for s in trace_spans()} >= {"shop", "payments"},
        timeout=15,
        interval=0.5,
        what="spans of both services at the OTLP receiver",
    )
    spans = trace_spans()
    by_id = {s.span_id: s for s in spans}
    shop_server = [
        s for s in spans if s.resource["service.name"] == "shop" and s.parent_span_id == ""
    ]
    assert len(shop_server) == 1, [(s.name, s.parent_span_id) for s in spans]
    payments_server = [s for s in spans if s.resource["service.name"] == "payments"]
    assert payments_server, "no payments span in the trace"
    # payments' server span is a descendant of shop's root span, through shop's client span.
    for span in payments_server:
        chain, cursor = [], span
        while cursor.parent_span_id:
            cursor = by_id[cursor.parent_span_id]
            chain.append(cursor)
        assert chain and chain[-1] is shop_server[0]
        assert chain[0].resource["service.name"] == "shop"  # the outbound client span
    assert {r[semconv.LOG_SPAN_ID] for r in records if r["service"] == "payments"} <= {
        s.span_id for s in payments_server
    }


def test_killing_the_otlp_receiver_fails_no_request(lab: Lab) -> None:
    """With the trace collector killed (connections reset, then refused), no request fails."""
    lab.receiver.kill()
    try:
        before = lab.driver.tally()
        failures_before = len(lab.driver.failures)
        statuses = Counter(lab.driver.send(ORDER).status_code for _ in range(40))
        time.sleep(1.5)  # let both services try (and fail) to export at least once
        statuses.update(lab.driver.send(ORDER).status_code for _ in range(20))
        during = lab.driver.tally() - before
    finally:
        lab.receiver.start()  # same port: the services' exporters reconnect by themselves
    assert statuses == Counter({201: 60})
    shop_failures = {k: n for k, n in during.items() if k[0] == HEALTHY_SERVICE and k[2] >= 500}
    assert shop_failures == {}
    assert lab.driver.failures[failures_before:] == []
    # ...and the loss is not silent: both services count failed exports, Prometheus sees them.
    failing = f"sum by (job) ({semconv.SPAN_EXPORT_FAILURES}) > 0"
    wait_until(
        lambda: {s.labels["job"] for s in lab.prom.query(failing)} == {"shop", "payments"},
        timeout=15,
        what="span export failures counted by both services",
    )
    wait_until(
        lambda: lab.receiver.stats()["spans"] > 0,
        timeout=15,
        what="spans to reach the restarted receiver",
    )


def test_restarting_a_service_does_not_trip_an_alert(lab: Lab) -> None:
    """A restart resets the service's counters; no SLO alert appears and none fires."""
    start_expr = f'process_start_time_seconds{{job="{HEALTHY_SERVICE}"}}'
    started_before = lab.prom.value(start_expr)
    lab.driver.pause()
    try:
        lab.system.restart(HEALTHY_SERVICE)
    finally:
        lab.driver.resume()
    wait_until(
        lambda: (lab.prom.value(start_expr) or 0) > (started_before or 0),
        timeout=20,
        what="Prometheus to scrape the restarted service",
    )
    deadline = time.monotonic() + 8  # 8 rule evaluations after the reset was scraped
    while time.monotonic() < deadline:
        assert _slo_alerts(lab, HEALTHY_SERVICE) == []
        firing = [a["labels"] for a in lab.prom.alerts() if a["state"] == "firing"]
        assert [a for a in firing if a.get("service") == HEALTHY_SERVICE] == []
        time.sleep(0.5)
    ratios = lab.prom.query(f'obskit_slo:error_ratio{{service="{HEALTHY_SERVICE}"}}')
    assert ratios, "no error ratio recorded for the restarted service"
    # A reset mistaken for traffic would show up as a negative or inflated ratio. shop serves
    # no 5xx at all; a slow request (latency SLO) is possible on a busy machine, a ratio < 0 not.
    assert all(0 <= s.value <= 1 for s in ratios), [(s.labels, s.value) for s in ratios]
    availability = [s.value for s in ratios if s.labels["slo"] == "availability"]
    assert availability and set(availability) == {0.0}


def test_healthy_traffic_raises_no_slo_alert(lab: Lab) -> None:
    """shop serves no error: its SLO ratios are recorded and no SLO alert is pending or firing."""
    lab.prom.wait_for_query(f'obskit_slo:error_ratio{{service="{HEALTHY_SERVICE}"}}', timeout=20)
    time.sleep(2)
    assert _slo_alerts(lab, HEALTHY_SERVICE) == []


def test_recording_rules_report_the_injected_error_ratio(lab: Lab) -> None:
    """payments' recorded availability error ratio equals the share of 5xx it served (+-0.02).

    The lab is younger than 5 minutes, so the 5m window holds every request payments served
    since its first scrape: its ratio must equal the one in payments' own access log. The longer
    windows average the recorded 5m rates over time (traffic-weighted), which the other tests'
    extra requests shift a little, so they are only required to burn above the page threshold.
    """
    assert time.monotonic() - lab.started < 280, "the lab outlived the 5m window"
    expr = f'obskit_slo:error_ratio{{service="{FAULTY_SERVICE}",slo="availability",window="5m"}}'
    lab.prom.wait_for_query(expr, timeout=20)
    time.sleep(3)  # a few more scrapes and evaluations past the first
    recorded = lab.prom.value(expr)
    served, count = _served_error_ratio(lab, FAULTY_SERVICE, routes=None)
    assert count > 100
    assert recorded is not None
    assert abs(recorded - served) <= RATIO_TOLERANCE, (recorded, served, count)
    faulty, _ = _served_error_ratio(lab, FAULTY_SERVICE, routes={FAULTY_ROUTE})
    assert abs(faulty - INJECTED_ERROR_RATE) <= 0.01  # the knob does what it says
    every_window = lab.prom.query(
        f'obskit_slo:error_ratio{{service="{FAULTY_SERVICE}",slo="availability"}}'
    )
    assert {s.labels["window"] for s in every_window} >= {"5m", "30m", "1h", "6h", "1d", "3d"}
    page_ratio = 13.44 * 0.001  # payments: 99.9% over 28d
    assert {s.labels["window"]: s.value for s in every_window if s.value <= page_ratio} == {}


def test_high_error_rate_makes_the_availability_page_alert_pending_or_firing(lab: Lab) -> None:
    """payments burns its availability budget far above 14.4x: the page alert becomes active."""

    def paging() -> list[dict[str, Any]]:
        return [
            a
            for a in _slo_alerts(lab, FAULTY_SERVICE)
            if a["labels"]["slo"] == "availability"
            and a["labels"].get("severity") == "critical"
            and a["state"] in ("pending", "firing")
        ]

    wait_until(lambda: bool(paging()), timeout=30, what="the page alert of payments")
    alert = paging()[0]
    assert alert["labels"]["alertname"] == "ObskitSLOBurnRatePage"
    assert alert["annotations"].get("summary")


def test_every_dashboard_panel_query_returns_data(lab: Lab) -> None:
    """Every PromQL query of every panel of every generated dashboard returns a series."""
    dashboards = generated.dashboards(lab.out)
    assert set(dashboards) == {"shop", "payments"}
    # Grafana's default range and $__rate_interval (1m) need a minute of scraped data.
    lab.prom.wait_for_query("count_over_time(up[1m]) >= 10", timeout=30)
    empty: list[str] = []
    checked = 0
    for service, dashboard in sorted(dashboards.items()):
        variables = grafana.resolve_variables(dashboard, lab.prom)
        for q in grafana.panel_queries(dashboard):
            expr = grafana.substitute(q.expr, variables)
            assert "$" not in expr, f"unsubstituted variable in {expr!r}"
            checked += 1
            if not lab.prom.query(expr):
                empty.append(f"{service} / {q.panel_title} [{q.ref_id}]: {expr}")
    assert checked > 10
    assert empty == [], "panels with no data:\n" + "\n".join(empty)


def test_the_faults_knob_is_set_at_run_time(lab: Lab) -> None:
    """The example services' failure knob reports what it injected (what the scenario relies on)."""
    resp = httpx.get(f"{lab.system.url(FAULTY_SERVICE)}/admin/faults", timeout=5)
    state = resp.json()
    assert state["error_rate"] == INJECTED_ERROR_RATE
    assert state["routes"] == [FAULTY_ROUTE]
    assert state["requests_failed"] == int(state["requests_seen"] * INJECTED_ERROR_RATE)
