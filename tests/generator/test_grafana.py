"""dashboard.json: importable structure, stable ids and layout, the panels the issue lists."""

from __future__ import annotations

import json
from typing import Any

from obskit.generator.model import Service
from obskit.generator.render import grafana
from obskit.generator.render.templates import Templates
from tests.generator.conftest import MINIMAL, service_of


def board(service: Service) -> dict[str, Any]:
    return grafana.dashboard(service, Templates())


def panels(doc: dict[str, Any]) -> list[dict[str, Any]]:
    return [p for p in doc["panels"] if p["type"] != "row"]


def test_dashboard_identity_schema_and_datasource_variable() -> None:
    doc = board(service_of(MINIMAL))
    assert doc["schemaVersion"] == grafana.SCHEMA_VERSION == 42
    assert doc["uid"] == "obskit-checkout" and doc["id"] is None
    [variable] = doc["templating"]["list"]
    assert (variable["name"], variable["type"], variable["query"]) == (
        "datasource",
        "datasource",
        "prometheus",
    )
    for panel in panels(doc):
        assert panel["datasource"] == {"type": "prometheus", "uid": "${datasource}"}
        assert all(t["datasource"]["uid"] == "${datasource}" for t in panel["targets"])


def test_long_service_names_get_distinct_uids_within_grafanas_limit() -> None:
    """Grafana uids hold at most 40 characters; names sharing a long prefix stay apart."""
    prefix = "payments-gateway-reconciliation-service"
    uids = {board(service_of(f"service: {prefix}-{n}\n"))["uid"] for n in ("eu", "us")}
    assert len(uids) == 2 and all(len(u) <= 40 and u.startswith("obskit-payments-") for u in uids)
    exact = "x" * 33
    assert board(service_of(f"service: {exact}\n"))["uid"] == f"obskit-{exact}"


def test_queries_contain_no_template_variables() -> None:
    """Every query runs verbatim against Prometheus (what the e2e suite does)."""
    exprs = grafana.expressions(board(service_of(MINIMAL + 'dependencies: ["payments:8080"]\n')))
    assert exprs and not any("$" in e for e in exprs)


def test_ids_are_sequential_and_the_grid_never_overlaps() -> None:
    text = MINIMAL + "  - name: fast\n    objective: 99\n    sli: {latency: {threshold: 0.5}}\n"
    doc = board(service_of(text + 'dependencies: ["payments:8080"]\n'))
    assert [p["id"] for p in doc["panels"]] == list(range(1, len(doc["panels"]) + 1))
    cells: set[tuple[int, int]] = set()
    for panel in doc["panels"]:
        pos = panel["gridPos"]
        assert pos["x"] + pos["w"] <= 24
        mine = {
            (x, y)
            for x in range(pos["x"], pos["x"] + pos["w"])
            for y in range(pos["y"], pos["y"] + pos["h"])
        }
        assert not cells & mine, panel["title"]
        cells |= mine


def test_rows_red_overview_per_route_one_per_slo_and_dependencies() -> None:
    text = MINIMAL + "  - name: fast\n    objective: 99\n    sli: {latency: {threshold: 0.5}}\n"
    doc = board(service_of(text + 'dependencies: ["payments:8080"]\n'))
    rows = [p["title"] for p in doc["panels"] if p["type"] == "row"]
    assert rows[:2] == ["RED overview", "Per route"]
    assert rows[2].startswith("SLO availability: 99.9% of requests not answered 5xx")
    assert rows[3].startswith("SLO fast: 99% of requests faster than 0.5s")
    assert rows[4] == "Dependencies (outbound): payments:8080"
    titles = [p["title"] for p in panels(doc)]
    assert "All routes: latency p50, p90, p99" in titles
    assert "availability: error budget remaining" in titles and "fast: burn rate" in titles


def test_no_dependency_row_without_dependencies() -> None:
    rows = [p["title"] for p in board(service_of(MINIMAL))["panels"] if p["type"] == "row"]
    assert not any(r.startswith("Dependencies") for r in rows)


def test_burn_rate_panel_draws_the_alert_thresholds_for_1h_6h_3d() -> None:
    doc = board(service_of(MINIMAL))
    [burn] = [p for p in panels(doc) if p["title"] == "availability: burn rate"]
    assert [t["legendFormat"] for t in burn["targets"]] == [
        "burn rate (1h)",
        "burn rate (6h)",
        "burn rate (3d)",
    ]
    steps = burn["fieldConfig"]["defaults"]["thresholds"]["steps"]
    assert [s["value"] for s in steps] == [None, 1.0, 3.0, 6.0, 14.4]
    assert burn["fieldConfig"]["defaults"]["custom"]["thresholdsStyle"] == {"mode": "line"}


def test_latency_panels_enable_exemplars_and_only_they_do() -> None:
    doc = board(service_of(MINIMAL + 'dependencies: ["payments"]\n'))
    for panel in panels(doc):
        is_latency = panel["fieldConfig"]["defaults"]["unit"] == "s"
        assert all(t["exemplar"] is is_latency for t in panel["targets"]), panel["title"]


def test_error_ratio_panels_read_zero_on_a_healthy_service() -> None:
    doc = board(service_of(MINIMAL))
    [ratio] = [p for p in panels(doc) if p["title"] == "All routes: error ratio"]
    assert " or 0 * sum(rate(" in ratio["targets"][0]["expr"]


def test_loki_and_tempo_links_are_optional_datasource_variables() -> None:
    plain = board(service_of(MINIMAL))
    assert plain["links"] == []
    linked = board(service_of(MINIMAL + "links: {logs: true, traces: true}\n"))
    names = [v["name"] for v in linked["templating"]["list"]]
    assert names == ["datasource", "loki", "tempo"]
    urls = [link["url"] for link in linked["links"]]
    assert urls[0].startswith("/explore?left=") and "%24%7Bloki%7D" in urls[0]
    assert "%24%7Btempo%7D" in urls[1]


def test_the_dashboard_is_deterministic_json() -> None:
    first = json.dumps(board(service_of(MINIMAL)), sort_keys=True)
    assert first == json.dumps(board(service_of(MINIMAL)), sort_keys=True)


def test_resilience_row_charts_saturation_breakers_retries_and_dependency_slos() -> None:
    text = MINIMAL + (
        "dependencies:\n  - {name: payments, address: payments, breaker: pay, "
        "operation: app.pay, slo: {objective: 99}}\n"
    )
    doc = board(service_of(text))
    rows = [p["title"] for p in doc["panels"] if p["type"] == "row"]
    assert rows[-1] == "Resilience: saturation, circuit breakers, retries"
    assert not any(r.startswith("SLO payments") for r in rows)  # its panels are in Resilience
    start = [p["title"] for p in doc["panels"]].index(rows[-1])
    resilience = doc["panels"][start + 1 :]
    titles = [p["title"] for p in resilience]
    assert titles[:8] == [
        "In-flight inbound requests",
        "In-flight outbound requests",
        "Circuit breaker state",
        "Breaker calls by outcome",
        "Breaker transitions",
        "Retries per second",
        "Retry ratio",
        "Retry calls by outcome",
    ]
    assert "payments: SLI vs objective" in titles and "payments: burn rate" in titles
    [timeline] = [p for p in resilience if p["type"] == "state-timeline"]
    [mapping] = timeline["fieldConfig"]["defaults"]["mappings"]
    assert {k: v["text"] for k, v in mapping["options"].items()} == {
        "0": "closed",
        "1": "half-open",
        "2": "open",
    }
    [target] = timeline["targets"]
    assert target["legendFormat"] == "{{breaker}}" and "max by (breaker)" in target["expr"]
    assert timeline["fieldConfig"]["defaults"]["noValue"] == "No circuit breaker seen"


def test_resilience_panels_appear_for_what_the_manifest_names_so_none_stays_empty() -> None:
    """Every service gets the row with in-flight inbound requests; outbound, breaker and retry
    panels come with dependencies, listed breakers and listed operations."""

    def titles(text: str) -> list[str]:
        doc = board(service_of(text))
        start = next(i for i, p in enumerate(doc["panels"]) if p["title"].startswith("Resil"))
        return [p["title"] for p in doc["panels"][start + 1 :]]

    assert titles(MINIMAL) == ["In-flight inbound requests"]
    assert titles(MINIMAL + 'dependencies: ["payments"]\n') == [
        "In-flight inbound requests",
        "In-flight outbound requests",
    ]
    with_breaker = titles(MINIMAL + "dependencies: [{address: payments, breaker: pay}]\n")
    assert "Circuit breaker state" in with_breaker and "Retry ratio" not in with_breaker
    with_retry = titles(MINIMAL + "dependencies: [{address: payments, operation: app.pay}]\n")
    assert "Retry ratio" in with_retry and "Circuit breaker state" not in with_retry
