"""`python -m examples.demo` shows what it promises (issue 13, item 14), ends by itself, and
leaves no process behind.

One demo run per module (shortened phases), under a timeout: a demo that hangs or goes silent
fails the test, it never hangs the suite. Each test checks one promise of the README against
evidence: the services' own JSON log files, and `<out>/findings.json`, the data behind each
printed section (spans as the OTLP receiver decoded them, Prometheus query results).

Adding a demo phase? Record its facts with `report.record("<name>", data)` in the demo, and add
a `test_the_demo_...` function here that takes the `demo` fixture and checks them.
"""

from __future__ import annotations

import contextlib
import json
import os
import select
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from examples.demo.report import FINDINGS
from examples.lab.system import REPO_ROOT
from tests.conftest import require_binary

pytestmark = [pytest.mark.e2e, pytest.mark.integration]

DEMO_TIMEOUT = 150.0
"""Seconds the shortened demo may take before the test kills it and fails (it takes ~20 s)."""
SECTIONS = (
    "== 1. Generate dashboards and SLO rules",
    "== 2. Start the services",
    "== 3. Traffic",
    "== 4. Correlated logs",
    "== 5. The same request's trace",
    "== 6. RED per route",
    "== 7. SLOs",
    "== 8. Resilience",
    "== 9. Alerts",
    "== 10. Background work",
    "== 11. At-least-once delivery",
    "== 12. Queue wait (freshness) and processing per task",
    "== 13. The relay stalls",
    "== 14. Use the generated files",
)
BURST_ROUTES = {"/orders", "/orders/{order_id}"}  # shop fails 40% of these in the burst


@dataclass
class DemoRun:
    returncode: int
    output: str
    out: Path
    findings: dict[str, Any]

    def log_records(self, service: str) -> list[dict[str, Any]]:
        path = self.out / "logs" / f"{service}.log"
        records = []
        for line in path.read_text().splitlines():
            if line.startswith("{"):
                records.append(json.loads(line))
        return records


def _processes_mentioning(text: str) -> list[str]:
    """Command lines of live processes that mention `text` (the demo's output directory)."""
    found = []
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit() or int(proc.name) == os.getpid():
            continue
        try:
            cmdline = (proc / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        if text in cmdline:
            found.append(f"{proc.name}: {cmdline}")
    return found


def _start(out: Path, *extra: str) -> subprocess.Popen[str]:
    if signal.getsignal(signal.SIGINT) is signal.SIG_IGN:
        # these tests run as a background job (`nohup ... &` ignores SIGINT, and an ignored
        # signal stays ignored across exec): handled here, it is the default in the demo again
        signal.signal(signal.SIGINT, signal.default_int_handler)
    return subprocess.Popen(
        [sys.executable, "-m", "examples.demo", "--out", str(out), *extra],
        cwd=REPO_ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,  # its own process group: a timeout kills the demo and children
    )


def _kill(proc: subprocess.Popen[str]) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGKILL)
    proc.wait(timeout=30)


def _finish(proc: subprocess.Popen[str], timeout: float) -> str:
    try:
        output, _ = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        _kill(proc)
        rest = proc.stdout.read() if proc.stdout else ""
        pytest.fail(f"the demo did not finish within {timeout:.0f}s; its output:\n{rest}")
    return output


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> Iterator[DemoRun]:
    require_binary("prometheus")  # the demo promises Prometheus figures: no silent fallback
    require_binary("redis-server")  # and the background-work part
    require_binary("prometheus-alertmanager")  # and a page delivered to the pager
    out = tmp_path_factory.mktemp("demo") / "demo-output"
    # a 14 s burst: payments fails hard for 5.6 s of it, long enough for shop's breaker to open
    # and for Prometheus to see it (it opened 2.3 s into a 4 s outage once: too late to be seen)
    proc = _start(
        out,
        "--healthy",
        "3",
        "--burst",
        "14",
        "--stall",
        "16",
        "--deadline",
        str(int(DEMO_TIMEOUT)),
    )
    output = _finish(proc, DEMO_TIMEOUT + 30)
    findings_file = out / FINDINGS
    findings = json.loads(findings_file.read_text()) if findings_file.exists() else {}
    yield DemoRun(proc.returncode, output, out, findings)


def test_the_demo_exits_0_prints_every_section_and_leaves_no_process(demo: DemoRun) -> None:
    assert demo.returncode == 0, demo.output
    for heading in SECTIONS:
        assert heading in demo.output, f"missing {heading!r} in:\n{demo.output}"
    assert "stopped: no process left behind" in demo.output
    assert (demo.out / "generated" / "shop" / "dashboard.json").is_file()
    assert _processes_mentioning(str(demo.out)) == []


def test_the_demo_request_has_one_correlation_id_and_trace_id_across_both_services(
    demo: DemoRun,
) -> None:
    """Section 4's promise, checked in the services' own log files."""
    correlation_id = demo.findings["request"]["correlation_id"]
    assert demo.findings["request"]["status"] == 201
    lines = {
        service: [r for r in demo.log_records(service) if r.get("correlation_id") == correlation_id]
        for service in ("shop", "payments")
    }
    assert lines["shop"] and lines["payments"], lines
    trace_ids = {r.get("trace_id") for records in lines.values() for r in records}
    assert len(trace_ids) == 1 and None not in trace_ids, trace_ids
    access = {s: [r for r in lines[s] if r["logger"] == "obskit.access"] for s in lines}
    assert [(r["method"], r["route"]) for r in access["shop"]] == [("POST", "/orders")]
    assert [(r["method"], r["route"]) for r in access["payments"]] == [("POST", "/charge")]
    assert demo.findings["correlated_logs"]["trace_ids"] == sorted(trace_ids)
    [trace_id] = trace_ids
    assert f"share correlation_id={correlation_id} and trace_id={trace_id}" in demo.output


def test_the_demo_shows_the_trace_tree_shop_server_client_payments_server(demo: DemoRun) -> None:
    """Section 5's promise: the spans of that request, as received over OTLP, form the tree
    shop server span -> shop client span -> payments server span, in the logs' trace."""
    spans = demo.findings["trace"]
    [trace_id] = demo.findings["correlated_logs"]["trace_ids"]
    assert {s["trace_id"] for s in spans} == {trace_id}
    by_id = {s["span_id"]: s for s in spans}
    [root] = [s for s in spans if s["parent_span_id"] not in by_id]
    assert (root["service"], root["kind"], root["name"]) == ("shop", "server", "POST /orders")
    [client] = [
        s for s in spans if s["parent_span_id"] == root["span_id"] and s["kind"] == "client"
    ]
    assert client["service"] == "shop"
    [callee] = [s for s in spans if s["parent_span_id"] == client["span_id"]]
    assert (callee["service"], callee["kind"], callee["name"]) == (
        "payments",
        "server",
        "POST /charge",
    )
    assert f"payments: POST /charge [server] span_id={callee['span_id']}" in demo.output


def test_the_demo_shows_non_zero_error_ratios_during_the_burst(demo: DemoRun) -> None:
    """Sections 6 and 7: shop's failing routes and SLOs show errors; payments fails only
    /charge (its hard-failure phase), its other routes none."""
    red = {(r["service"], r["route"]): r["error_ratio"] for r in demo.findings["red"]}
    for route in BURST_ROUTES:
        assert red[("shop", route)] > 0, red
    assert red[("payments", "/charge")] > 0, red
    assert all(
        v == 0
        for (service, route), v in red.items()
        if service == "payments" and route != "/charge"
    ), red
    slos = {(s["service"], s["slo"]): s for s in demo.findings["slos"]}
    for slo in ("availability", "latency"):  # 40% errors, and /charge 300 ms late (> 250 ms)
        assert slos[("shop", slo)]["error_ratio"]["5m"] > 0, slos[("shop", slo)]
        assert slos[("shop", slo)]["burn_rate"]["5m"] > 1
    assert slos[("payments", "availability")]["error_ratio"]["5m"] > 0  # the outage


def test_the_demo_shows_the_burn_rate_alerts_of_the_failing_service(demo: DemoRun) -> None:
    """Section 9: Prometheus holds shop's burn-rate alerts (pending or firing); payments', if
    any, are for its availability (its hard-failure phase)."""
    alerts = demo.findings["alerts"]
    burning = [
        a
        for a in alerts
        if a["alertname"].startswith("ObskitSLOBurnRate") and a["service"] == "shop"
    ]
    assert burning, alerts
    assert {a["state"] for a in burning} <= {"pending", "firing"}
    assert {a.get("slo") for a in alerts if a.get("service") == "payments" and a.get("slo")} <= {
        "availability"
    }, alerts
    for alert in burning:
        assert alert["alertname"] in demo.output


def test_the_demo_delivers_a_page_as_a_pager_receives_it(demo: DemoRun) -> None:
    """Section 9 goes past PENDING: Alertmanager (routes and inhibition generated by obskit)
    delivered a firing page to the team's page receiver, with what a pager needs."""
    pages = [
        (note, alert)
        for note in demo.findings["notifications"]
        for alert in note["alerts"]
        if alert["labels"]["alertname"] == "ObskitSLOBurnRatePage" and alert["status"] == "firing"
    ]
    assert pages, demo.findings["notifications"]
    note, alert = pages[0]
    labels, annotations = alert["labels"], alert["annotations"]
    assert (
        note["receiver"]
        == {"shop": "storefront-page", "payments": "payments-page"}[labels["service"]]
    )
    assert labels["severity"] == "critical" and labels["slo"] == "availability"
    assert "error budget burning" in annotations["summary"]
    assert annotations["runbook_url"] == f"https://runbooks.example.com/{labels['service']}"
    assert annotations["dashboard_url"].startswith(
        f"http://localhost:3000/d/obskit-{labels['service']}?viewPanel="
    )
    assert "as the pager's webhook received it" in demo.output
    assert annotations["summary"] in demo.output
    assert (demo.out / "notifications.json").is_file()


def test_the_demo_shows_retries_the_breaker_opening_and_a_resent_request(demo: DemoRun) -> None:
    """Section 8: while payments fails hard, shop's tenacity retry retries and its pybreaker
    breaker opens and fails fast; shop's log has the transitions, Prometheus the counts, and a
    retried request's trace has client spans with http.request.resend_count 1 (and 2)."""
    transitions = demo.findings["breaker_transitions"]
    assert {"level": "warning", "breaker": "payments", "transition": "closed -> open"} in (
        transitions
    ), transitions
    logged = [
        (r["from_state"], r["to_state"])
        for r in demo.log_records("shop")
        if r.get("event") == "circuit_breaker_state_changed"
    ]
    assert [t["transition"] for t in transitions] == [f"{a} -> {b}" for a, b in logged]
    resilience = demo.findings["resilience"]
    retries = {r["operation"]: r["value"] for r in resilience["retries"]}
    scheduled = [r for r in demo.log_records("shop") if r.get("event") == "retry_scheduled"]
    assert 0 < retries["examples.shop.app.charge"] <= len(scheduled)
    breaker_calls = {r["outcome"]: r["value"] for r in resilience["breaker_calls"]}
    assert breaker_calls["rejected"] > 0 and breaker_calls["failure"] >= 5  # fail_max=5
    outcomes = {r["outcome"] for r in resilience["retry_calls"]}
    assert {"success", "failed"} <= outcomes  # failed: rejected on the first attempt
    spans = demo.findings["retried_trace"]
    resent = sorted(
        s["http.request.resend_count"]
        for s in spans
        if s["kind"] == "client" and "http.request.resend_count" in s
    )
    assert resent and resent[0] == 1, spans
    assert "http.request.resend_count=1" in demo.output
    # the breaker is not closed at the end of the outage: ObskitCircuitBreakerOpen is active
    # (pending: its default `for: 5m` is longer than the demo)
    breaker_open = [
        a
        for a in demo.findings["resilience_alerts"]
        if (a["alertname"], a["subject"]) == ("ObskitCircuitBreakerOpen", "payments")
    ]
    assert [a["state"] for a in breaker_open] in (["PENDING"], ["FIRING"]), demo.findings


def test_the_demo_follows_one_order_through_the_outbox_celery_the_worker_and_payments(
    demo: DemoRun,
) -> None:
    """Section 10: one order, one correlation_id in every line of shop (request and relay), the
    worker and payments, and one trace: server -> relay -> producer -> consumer -> client ->
    payments server, as received over OTLP."""
    journey = demo.findings["background_journey"]
    correlation_id = journey["correlation_id"]
    lines = {
        service: [r for r in demo.log_records(service) if r.get("correlation_id") == correlation_id]
        for service in ("shop", "worker", "payments")
    }
    assert all(lines.values()), lines
    trace_ids = {r.get("trace_id") for records in lines.values() for r in records}
    assert len(trace_ids) == 1 and None not in trace_ids, trace_ids
    assert journey["trace_ids"] == sorted(trace_ids)
    spans = demo.findings["background_trace"]
    by_id = {s["span_id"]: s for s in spans}
    [leaf] = [s for s in spans if s["service"] == "payments" and s["kind"] == "server"]
    chain = []
    node: dict[str, Any] | None = leaf
    while node is not None:
        chain.append((node["service"], node["kind"], node["name"]))
        node = by_id.get(node["parent_span_id"])
    task = "examples.worker.tasks.charge_order"
    assert list(reversed(chain)) == [
        ("shop", "server", "POST /checkout"),
        ("shop", "consumer", "process relay"),
        ("shop", "producer", f"send {task}"),
        ("worker", "consumer", f"process {task}"),
        ("worker", "client", "POST"),
        ("payments", "server", "POST /charge"),
    ]
    assert f"the worker and payments share correlation_id={correlation_id}" in demo.output


def test_the_demo_shows_a_duplicate_delivery_skipped_and_charged_once(demo: DemoRun) -> None:
    """Section 11: the relay delivers one order twice; the worker processes it once."""
    duplicate = demo.findings["background_duplicate"]
    assert duplicate["outcomes"] == ["duplicate", "success"]
    charges = [
        r
        for r in demo.log_records("payments")
        if r.get("event") == "charge_captured" and r.get("order_id") == duplicate["order_id"]
    ]
    assert len(charges) == 1
    assert "counted as outcome=duplicate; payments charged it 1 time(s)" in demo.output


def test_the_demo_shows_queue_wait_and_processing_per_task(demo: DemoRun) -> None:
    """Section 12: p99 queue wait and processing from Prometheus for the relay and the task."""
    rows = {row[0]: row for row in demo.findings["background_per_task"]}
    assert set(rows) >= {"relay", "examples.worker.tasks.charge_order"}
    for task, wait, processing, outcomes in rows.values():
        assert wait.endswith(" ms") and processing.endswith(" ms"), rows[task]
        assert "success" in outcomes


def test_the_demo_shows_the_outbox_age_climbing_while_the_relay_is_stalled(
    demo: DemoRun,
) -> None:
    """Section 13: while stalled the outbox's pending rows and oldest age grow, and
    ObskitOutboxStale turns pending (or firing); after the relay resumes they fall to 0."""
    samples = demo.findings["background_outbox"]
    ages = [s["age"] for s in samples]
    assert max(ages) >= 4 and ages == sorted(ages[:-1]) + ages[-1:], ages  # climbing, then drop
    assert int(samples[-2]["pending"]) > 5 and samples[-1]["pending"] == "0", samples
    assert ages[-1] == 0
    # shop's manifest: oldest row older than 10 s (for 10 s): past 10 s the alert is on its way
    stalled = samples[-2]
    assert stalled["age"] > 12 and stalled["alert"] in (
        "ObskitOutboxStale: PENDING",
        "ObskitOutboxStale: FIRING",
    ), samples


def test_ctrl_c_stops_the_demo_and_every_process_it_started(tmp_path: Path) -> None:
    require_binary("prometheus")
    out = tmp_path / "demo-output"
    proc = _start(out)
    assert proc.stdout is not None
    lines: list[str] = []
    deadline = time.monotonic() + 90
    try:
        while "healthy traffic" not in "".join(lines):  # every child is running by then
            remaining = deadline - time.monotonic()
            if remaining <= 0 or proc.poll() is not None:
                pytest.fail("the demo never reached its traffic phase:\n" + "".join(lines))
            ready, _, _ = select.select([proc.stdout], [], [], min(remaining, 1.0))
            if ready:  # never blocks on a silent demo
                lines.append(proc.stdout.readline())
        assert _processes_mentioning(str(out)), "the demo's children should be running now"
        proc.send_signal(signal.SIGINT)
        rest = _finish(proc, 60)
    finally:
        if proc.poll() is None:
            _kill(proc)
    output = "".join(lines) + rest
    assert proc.returncode == 130, output
    assert "no process left behind" in output
    assert _processes_mentioning(str(out)) == []
