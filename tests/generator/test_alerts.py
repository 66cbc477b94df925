"""Every generated alert carries summary, description, runbook_url and dashboard_url; its value
prints exactly as Prometheus prints it; ObskitSLOBucketMissing guards latency SLOs.

The Go formatting of `$value` is checked against the real promtool: obskit's expected text for a
spread of awkward values must equal what Prometheus's template functions print.
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from obskit.generator.model import ALERT_BUCKET_MISSING, Duration
from obskit.generator.render import alerts, grafana
from obskit.generator.render.bundle import render_service
from obskit.generator.render.templates import Templates
from tests.conftest import require_binary
from tests.generator.conftest import service_of

EVERYTHING = """\
service: checkout
team: payments
runbook_url: https://runbooks.example.com/checkout
grafana_url: https://grafana.example.com/
slos:
  - name: availability
    objective: 99.9
    description: Orders succeed
    sli: {availability: {}}
    routes: ["/orders", "/orders/{order_id}"]
  - name: latency
    objective: 99
    sli: {latency: {threshold: 0.25}}
  - name: search-latency
    objective: 95
    window: 28d
    sli: {latency: {threshold: 1}}
    routes: ["/search"]
dependencies: ["payments:8080"]
"""


def _alert_rules(files: dict[str, str]) -> list[dict[str, Any]]:
    doc = yaml.safe_load(files["rules.yaml"])
    return [r for g in doc["groups"] for r in g["rules"] if "alert" in r]


def test_every_generated_alert_carries_the_four_annotations() -> None:
    files = render_service(service_of(EVERYTHING), Templates())
    rules = _alert_rules(files)
    assert {r["alert"] for r in rules} == {
        "ObskitSLOBurnRatePage",
        "ObskitSLOBurnRateTicket",
        "ObskitSLOBucketMissing",
        "ObskitTelemetryAbsent",
        "ObskitCircuitBreakerOpen",
        "ObskitCircuitBreakerFlapping",
        "ObskitRetryStorm",
        "ObskitOutboxStale",
    }
    for rule in rules:
        annotations = rule["annotations"]
        assert set(annotations) == {"summary", "description", "runbook_url", "dashboard_url"}
        assert annotations["runbook_url"] == "https://runbooks.example.com/checkout"
        assert annotations["dashboard_url"].startswith(
            "https://grafana.example.com/d/obskit-checkout"
        )
        assert rule["alert"].startswith(alerts.PREFIX)


def test_each_slo_links_its_own_burn_rate_panel() -> None:
    """dashboard_url opens the dashboard on the panel of the alert's SLO: every SLO's differs,
    and the id is the one the generated dashboard gives that panel."""
    files = render_service(service_of(EVERYTHING), Templates())
    dashboard = json.loads(files["dashboard.json"])
    titles = {p["id"]: p["title"] for p in dashboard["panels"]}
    urls: dict[str, set[str]] = {}
    for rule in _alert_rules(files):
        if rule["alert"].startswith("ObskitSLOBurnRate"):
            urls.setdefault(rule["labels"]["slo"], set()).add(rule["annotations"]["dashboard_url"])
    assert sorted(urls) == ["availability", "latency", "search-latency"]
    assert all(len(u) == 1 for u in urls.values())  # page and ticket open the same panel
    assert len({next(iter(u)) for u in urls.values()}) == 3
    for slo, [url] in ((s, sorted(u)) for s, u in urls.items()):
        panel_id = int(url.rsplit("?viewPanel=", 1)[1])
        assert titles[panel_id] == f"{slo}: burn rate"


def test_burn_rate_alerts_print_their_burn_rate_for_humans() -> None:
    files = render_service(service_of(EVERYTHING), Templates())
    [page] = [
        r
        for r in _alert_rules(files)
        if r["alert"] == "ObskitSLOBurnRatePage" and r["labels"]["slo"] == "availability"
    ]
    action = '{{ printf "%.1f" $value }}x'
    assert action in page["annotations"]["summary"] and action in page["annotations"]["description"]
    assert "/ 0.001 > 14.4)" in page["expr"]  # the value is the burn rate, not the ratio
    tests = yaml.safe_load(files["rules.test.yaml"])["tests"]
    fired = [
        a
        for t in tests
        if t["name"].startswith("checkout/availability: page row 1h/5m")
        for case in t["alert_rule_test"]
        for a in case["exp_alerts"]
    ]
    assert [a["exp_annotations"]["summary"] for a in fired] == [
        "checkout availability SLO: error budget burning 21.6x too fast (page)"
    ]


def test_a_slo_template_override_sees_every_alert(tmp_path: Path) -> None:
    """One template renders every alert's annotations; it gets the alert name and labels."""
    (tmp_path / "alert_annotations.yaml.j2").write_text(
        "summary: {{ (alert ~ ' ' ~ labels.severity) | yaml }}\n"
        "description: {{ description | yaml }}\n"
    )
    files = render_service(service_of(EVERYTHING), Templates(tmp_path))
    summaries = {r["annotations"]["summary"] for r in _alert_rules(files)}
    assert summaries == {
        "ObskitSLOBurnRatePage critical",
        "ObskitSLOBurnRateTicket warning",
        "ObskitSLOBucketMissing warning",
        "ObskitTelemetryAbsent warning",
        "ObskitCircuitBreakerOpen warning",
        "ObskitCircuitBreakerFlapping warning",
        "ObskitRetryStorm warning",
        "ObskitOutboxStale warning",
    }


def test_an_override_that_drops_the_summary_is_an_input_error(tmp_path: Path) -> None:
    from obskit.generator.render.templates import TemplateProblem

    (tmp_path / "alert_annotations.yaml.j2").write_text("description: {{ description | yaml }}\n")
    with pytest.raises(TemplateProblem, match="must render summary and description"):
        render_service(service_of(EVERYTHING), Templates(tmp_path))


def test_alert_names_must_carry_the_obskit_prefix_and_value_markers_a_format() -> None:
    base: dict[str, Any] = {
        "expr": "vector(1)",
        "for_": Duration.parse("5m"),
        "labels": {"service": "x"},
        "description": "d",
    }
    with pytest.raises(ValueError, match="must start with 'Obskit'"):
        alerts.Alert(name="HighErrors", summary="s", **base)
    with pytest.raises(ValueError, match="VALUE placeholder"):
        alerts.Alert(name="ObskitX", summary=f"at {alerts.VALUE}", **base)
    with pytest.raises(ValueError, match="VALUE placeholder"):
        alerts.Alert(name="ObskitX", summary="s", value=alerts.Value.RATE, **base)


def test_a_dashboard_panel_key_that_does_not_exist_is_a_bug_not_a_broken_link() -> None:
    service = service_of(EVERYTHING)
    ctx = alerts.context(service, Templates())
    with pytest.raises(KeyError, match="no dashboard panel"):
        ctx.dashboard_url("nope")
    assert ctx.dashboard_url(grafana.slo_panel(service.slos[0])) is not None


def test_the_latency_guard_fires_only_while_requests_flow_without_the_bucket() -> None:
    files = render_service(service_of(EVERYTHING), Templates())
    guards = [r for r in _alert_rules(files) if r["alert"] == ALERT_BUCKET_MISSING]
    assert sorted(r["labels"]["slo"] for r in guards) == ["latency", "search-latency"]
    [latency] = [r for r in guards if r["labels"]["slo"] == "latency"]
    assert latency["expr"] == (
        'sum(rate(http_server_request_duration_seconds_count{job="checkout"}[5m])) > 0\n'
        "unless\n"
        'sum(rate(http_server_request_duration_seconds_bucket{job="checkout", le="0.25"}[5m]))'
    )
    assert latency["labels"]["severity"] == "warning"
    assert "{{ $value | humanize }} requests/s" in latency["annotations"]["summary"]


# --------------------------------------------------------------------------- real promtool

VALUES = (
    0.0,
    0.5,
    1.0,
    2.5,
    14.4,
    21.599999999999998,
    999.99,
    1234.5,
    16666.666666666668,
    1.5e7,
    1e21,
    0.000123,
    1e-9,
    59.99,
    60.0,
    3661.0,
    90061.5,
    -3.25,
    -0.004,
    0.0216,
)


def test_value_formats_print_exactly_what_prometheus_prints(tmp_path: Path) -> None:
    """For each format and value: an alert `vector(value)` whose annotation holds the Go action;
    promtool must find exactly the text `Value.format()` predicts."""
    promtool = require_binary("promtool")
    rules, expected = [], []
    for value_format in alerts.Value:
        for index, value in enumerate(VALUES):
            name = f"ObskitFormat{value_format.name.title().replace('_', '')}{index}"
            rules.append(
                {
                    "alert": name,
                    "expr": f"vector({value!r})",
                    "annotations": {"shown": f"[{value_format.action}]"},
                }
            )
            expected.append(
                {
                    "eval_time": "1m",
                    "alertname": name,
                    "exp_alerts": [
                        {
                            "exp_labels": {},
                            "exp_annotations": {"shown": f"[{value_format.format(value)}]"},
                        }
                    ],
                }
            )
    (tmp_path / "rules.yaml").write_text(
        yaml.safe_dump({"groups": [{"name": "f", "rules": rules}]})
    )
    (tmp_path / "test.yaml").write_text(
        yaml.safe_dump(
            {
                "rule_files": ["rules.yaml"],
                "evaluation_interval": "1m",
                "tests": [{"interval": "1m", "input_series": [], "alert_rule_test": expected}],
            }
        )
    )
    result = subprocess.run(
        [promtool, "test", "rules", str(tmp_path / "test.yaml")],
        capture_output=True,
        text=True,
        check=False,
        timeout=120,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_stable_rejects_values_on_a_rounding_edge() -> None:
    assert alerts.stable(alerts.Value.BURN_RATE, 21.6)
    assert not alerts.stable(alerts.Value.BURN_RATE, 0.25)  # 0.2 or 0.3 by a hair
    assert not alerts.stable(alerts.Value.RATE, 1234.5)


def test_the_generated_guard_tests_fail_when_the_guard_is_wrong(tmp_path: Path) -> None:
    """`unless` turned into `and`: the guard's own test (fires without the bucket) and the
    healthy-traffic test (silent with it) must both fail."""
    promtool = require_binary("promtool")
    files = render_service(service_of(EVERYTHING), Templates())
    broken = files["rules.yaml"].replace(" unless\n", " and\n")
    assert broken != files["rules.yaml"]
    (tmp_path / "rules.yaml").write_text(broken)
    suite = yaml.safe_load(files["rules.test.yaml"])
    suite["tests"] = [t for t in suite["tests"] if "healthy" in t["name"] or "bucket" in t["name"]]
    assert len(suite["tests"]) == 2
    (tmp_path / "rules.test.yaml").write_text(yaml.safe_dump(suite))
    result = subprocess.run(
        [promtool, "test", "rules", str(tmp_path / "rules.test.yaml")],
        capture_output=True,
        text=True,
        check=False,
        timeout=300,
    )
    assert result.returncode != 0
    output = result.stdout + result.stderr
    assert "no histogram bucket at the latency thresholds" in output
    assert "healthy traffic" in output and ALERT_BUCKET_MISSING in output
