"""End to end (issue 9, item 9): shop's retries and circuit breaker against a real Prometheus.

One lab for the module: shop and payments as real processes, a real Prometheus (1 s scrape and
evaluation) loaded with the rules generated from the example manifests, shop's with
`resilience: {breaker_open: {for: 20s}}` (a test manifest may shorten `for:`). Steady traffic
on every route the whole time. The scenario, run once:

1. healthy: shop charges every order through its tenacity retry and pybreaker breaker;
2. payments fails hard (every POST /charge answers 500, the fault knob): shop retries, the
   breaker opens, shop fails fast (503), the breaker cycles open -> half-open -> open while
   payments stays down, until ObskitCircuitBreakerOpen fires;
3. payments recovers: the breaker half-opens and closes;
4. traffic stops; the counts are compared with what the fault injector and the client saw.

The ground truth is independent of obskit: payments' own count of the failures it injected and
the responses the traffic driver received. Every payments failure is followed by another attempt
(a scheduled retry) unless it was the third attempt (shop answers 502), and every
CircuitBreakerError is a rejection (shop answers 503; the example sets
`throw_new_error_on_trip=False`, so the call that trips the breaker raises payments' error, which
is retried like any other). Hence retries == failures injected - 502s, rejected == 503s.
"""

from __future__ import annotations

import contextlib
import shutil
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest

from examples.lab import generated, grafana
from examples.lab.processes import Supervisor, wait_until
from examples.lab.prometheus import Prometheus, Target
from examples.lab.system import SERVICES, ExampleSystem
from examples.lab.traffic import TrafficDriver
from obskit import semconv
from tests.conftest import require_binary

pytestmark = [pytest.mark.e2e, pytest.mark.prometheus, pytest.mark.integration]

OPERATION = "examples.shop.app.charge"
BREAKER = "payments"
OPEN_FOR = "20s"
SHOP = 'job="shop"'
ORDERS = ("shop", "/orders")


@dataclass
class Run:
    """What the scenario observed (the tests below each check one promise)."""

    out: Path
    system: ExampleSystem
    prom: Prometheus
    outage_started: float = 0.0
    alert_states: list[str] = field(default_factory=list)
    panels: dict[str, int] = field(default_factory=dict)  # "title [ref]" -> series returned
    failures_injected: int = 0
    answered: dict[int, int] = field(default_factory=dict)  # status of shop's POST /orders
    retries: float | None = None
    rejected: float | None = None
    open_values: list[float] = field(default_factory=list)  # the open gauge, 1 s apart


def _manifests(workdir: Path) -> tuple[Path, ...]:
    """The example manifests, shop's with a shortened breaker_open.for."""
    shop, payments = generated.EXAMPLE_MANIFESTS
    text = shop.read_text()
    assert "\nresilience:" not in text
    test_shop = workdir / "shop" / "obskit.yaml"
    test_shop.parent.mkdir(parents=True)
    test_shop.write_text(text + f"resilience:\n  breaker_open: {{for: {OPEN_FOR}}}\n")
    return (test_shop, payments)


def _series(prom: Prometheus, expr: str) -> float | None:
    samples = prom.query(expr)
    return sum(s.value for s in samples) if samples else None


def _breaker_alert(prom: Prometheus) -> str | None:
    for alert in prom.alerts():
        labels = alert["labels"]
        if (
            labels.get("alertname") == "ObskitCircuitBreakerOpen"
            and labels.get("breaker") == BREAKER
        ):
            return str(alert["state"])
    return None


def _resilience_panels(dashboard: dict[str, Any]) -> list[grafana.PanelQuery]:
    """The queries of the panels in the dashboard's Resilience row."""
    titles: set[str] = set()
    row = ""
    for panel in dashboard.get("panels", []):
        if panel.get("type") == "row":
            row = str(panel.get("title", ""))
            titles.update(
                str(p.get("title", ""))
                for p in panel.get("panels", [])
                if row.startswith("Resilience")
            )
        elif row.startswith("Resilience"):
            titles.add(str(panel.get("title", "")))
    return [q for q in grafana.panel_queries(dashboard) if q.panel_title in titles]


def _scenario(run: Run, driver: TrafficDriver) -> None:
    prom, system = run.prom, run.system
    success = f'{semconv.RETRY_CALLS}{{{SHOP},operation="{OPERATION}",outcome="success"}}'
    prom.wait_for_query(f"{success} > 0", timeout=30)  # shop charges orders, healthy

    # 2. payments fails hard until the alert fires
    run.outage_started = time.time()
    system.set_faults("payments", error_rate=1.0, routes=["/charge"])

    def firing() -> bool:
        state = _breaker_alert(prom)
        if state is not None and (not run.alert_states or run.alert_states[-1] != state):
            run.alert_states.append(state)
        return state == "firing"

    wait_until(firing, timeout=90, interval=0.5, what="ObskitCircuitBreakerOpen to fire")

    # 3. payments recovers: the breaker half-opens (5 s after it last opened) and closes
    system.set_faults("payments", error_rate=0.0, routes=["/charge"])
    closed = (
        f'max without (pid) ({semconv.BREAKER_STATE}{{{SHOP},breaker="{BREAKER}",state="closed"}})'
    )
    wait_until(
        lambda: prom.value(closed) == 1, timeout=40, interval=0.5, what="the breaker to close"
    )
    prom.wait_for_query(f"{semconv.HTTP_CLIENT_ACTIVE}{{{SHOP}}}", timeout=10)

    # every query of the Resilience row, while traffic still flows
    dashboard = generated.dashboards(run.out)["shop"]
    variables = grafana.resolve_variables(dashboard, prom)
    for q in _resilience_panels(dashboard):
        expr = grafana.substitute(q.expr, variables)
        run.panels[f"{q.panel_title} [{q.ref_id}]"] = len(prom.query(expr))

    # 4. stop, then compare with the ground truth once Prometheus has scraped the last calls
    driver.pause()
    tally = driver.tally()
    run.answered = {
        status: n for (svc, route, status), n in tally.items() if (svc, route) == ORDERS
    }
    faults = httpx.get(f"{system.url('payments')}/admin/faults", timeout=5).json()
    run.failures_injected = int(faults["requests_failed"])
    expected_retries = run.failures_injected - run.answered.get(502, 0)
    expected_rejected = run.answered.get(503, 0)
    retries = f'{semconv.RETRIES}{{{SHOP},operation="{OPERATION}"}}'
    rejected = f'{semconv.BREAKER_CALLS}{{{SHOP},breaker="{BREAKER}",outcome="rejected"}}'

    def caught_up() -> bool:
        run.retries, run.rejected = _series(prom, retries), _series(prom, rejected)
        return (run.retries, run.rejected) == (expected_retries, expected_rejected)

    with contextlib.suppress(TimeoutError):  # the tests compare and report the difference
        wait_until(caught_up, timeout=15, interval=0.5, what="Prometheus to scrape the last calls")
    opened = (
        f'max without (pid) ({semconv.BREAKER_STATE}{{{SHOP},breaker="{BREAKER}",state="open"}})'
    )

    def history() -> bool:  # the open gauge since just before the outage, until it reads closed
        data = prom.api(
            "query_range",
            {
                "query": opened,
                "start": f"{run.outage_started - 2:.3f}",
                "end": f"{time.time():.3f}",
                "step": "1",
            },
        )
        run.open_values = [float(v) for series in data["result"] for _, v in series["values"]]
        return bool(run.open_values) and run.open_values[-1] == 0.0

    with contextlib.suppress(TimeoutError):  # the test reports what the range held
        wait_until(history, timeout=10, interval=0.5, what="the open gauge back at 0")


@pytest.fixture(scope="module")
def run() -> Iterator[Run]:
    require_binary("prometheus")
    workdir = Path(tempfile.mkdtemp(prefix="obskit-e2e-resilience-"))
    supervisor = Supervisor()
    driver: TrafficDriver | None = None
    prom: Prometheus | None = None
    try:
        out = workdir / "generated"
        generated.generate(out, _manifests(workdir))
        system = ExampleSystem(
            workdir / "logs", supervisor=supervisor, env={"OBSKIT_TRACES_ENABLED": "false"}
        ).start()
        driver = TrafficDriver(system.url, rps=25.0).start()
        targets = [Target(name, system.services[name].address) for name in SERVICES]
        prom = Prometheus(targets, generated.rule_files(out), supervisor=supervisor).start()
        prom.wait_for_targets(timeout=45)
        observed = Run(out, system, prom)
        _scenario(observed, driver)
        yield observed
    finally:
        if driver is not None:
            driver.stop()
        if prom is not None:
            prom.stop()
        supervisor.stop_all()
        shutil.rmtree(workdir, ignore_errors=True)


def test_retries_equal_the_failed_attempts_followed_by_another_attempt(run: Run) -> None:
    """obskit_retries_total == payments' injected failures that shop attempted again, i.e. all
    of them but the third attempts (the calls shop answered 502)."""
    assert run.failures_injected > 0 and run.answered.get(502, 0) > 0, run.answered
    assert run.retries == run.failures_injected - run.answered[502], (run.retries, run.answered)


def test_rejected_equals_the_shop_requests_that_failed_fast(run: Run) -> None:
    """obskit_circuit_breaker_calls_total{outcome="rejected"} == shop's 503 answers."""
    assert run.answered.get(503, 0) > 0, run.answered
    assert run.rejected == run.answered[503], (run.rejected, run.answered)


def test_the_breaker_gauge_goes_open_then_closed(run: Run) -> None:
    values = run.open_values
    assert 1.0 in values, values
    last_open = len(values) - 1 - values[::-1].index(1.0)
    assert values[last_open + 1 :] and set(values[last_open + 1 :]) == {0.0}, values
    assert values[0] == 0.0, values  # closed before the outage


def test_circuit_breaker_open_alert_reaches_firing(run: Run) -> None:
    """Pending first (the breaker must stay not-closed for `for:`), then firing."""
    assert run.alert_states[-1] == "firing", run.alert_states
    assert "pending" in run.alert_states, run.alert_states


def test_every_resilience_panel_query_returns_data(run: Run) -> None:
    """Every query of the dashboard's Resilience row (in-flight, breaker state, calls and
    transitions, retries, retry ratio, calls by outcome, the payments client SLO) has data."""
    assert len(run.panels) >= 8, run.panels
    assert {k: n for k, n in run.panels.items() if n == 0} == {}


def test_breaker_transitions_are_in_shops_log(run: Run) -> None:
    """The log has closed -> open first, and half_open -> closed last."""
    transitions = [
        (r["from_state"], r["to_state"], r["level"])
        for r in run.system.log_records("shop")
        if r.get("event") == semconv.EVENT_BREAKER_STATE_CHANGED
    ]
    assert transitions[0] == ("closed", "open", "warning"), transitions
    assert transitions[-1] == ("half_open", "closed", "info"), transitions
