"""Issue 9 on the generator side: dependency objects, client-side SLOs, and the circuit-breaker
and retry alerts with their promtool tests (real promtool), including tests that prove the
generated unit tests fail when a rule loses one of the semantics the issue asks for."""

from __future__ import annotations

import subprocess
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest
import yaml

from obskit import semconv
from obskit.generator.manifest import ManifestError
from obskit.generator.model import Duration, Service
from obskit.generator.render import output, prometheus, resilience
from obskit.generator.render.bundle import render_service
from obskit.generator.render.templates import Templates
from tests.conftest import require_binary
from tests.generator.conftest import MINIMAL, service_of

DEPENDENCY = (
    MINIMAL
    + """\
team: checkout-team
dependencies:
  - localhost
  - name: payments
    address: "payments:8080"
    breakers: [payments-breaker]
    operation: app.payments.charge
    slo: {objective: 99, description: Payments answers}
    resilience:
      breaker_open: {for: 2m}
resilience:
  flapping: {transitions: 4, window: 20m}
  labels: {component: api}
"""
)


def rules(service: Service) -> list[dict[str, Any]]:
    doc = prometheus.rule_groups(service, Templates())
    return [r for g in doc["groups"] for r in g["rules"]]


def alerts_named(service: Service, name: str) -> list[dict[str, Any]]:
    return [r for r in rules(service) if r.get("alert") == name]


# --------------------------------------------------------------------------- manifest


def test_a_dependency_object_names_address_breakers_operations_and_slo() -> None:
    service = service_of(DEPENDENCY)
    plain, payments = service.dependencies
    assert (plain.name, plain.address, plain.breakers, plain.resilience) == (
        "localhost",
        "localhost",
        (),
        None,
    )
    assert (payments.name, payments.address) == ("payments", "payments:8080")
    assert payments.breakers == ("payments-breaker",)
    assert payments.operations == ("app.payments.charge",)
    assert payments.resilience is not None
    # The dependency overrides what it says and inherits the rest from the service.
    assert payments.resilience.breaker_open_for == Duration(120)
    assert payments.resilience.flapping_transitions == 4
    assert service.resilience.breaker_open_for == Duration(300)
    [client] = [s for s in service.slos if s.dependency is not None]
    assert (client.name, client.kind, client.dependency) == ("payments", "client", payments)


def test_resilience_defaults_are_the_documented_ones() -> None:
    r = service_of(MINIMAL).resilience
    assert (str(r.breaker_open_for), r.flapping_transitions, str(r.flapping_window)) == (
        "5m",
        3,
        "30m",
    )
    assert (str(r.retry_ratio), str(r.retry_window), str(r.retry_min_call_rate)) == (
        "0.5",
        "10m",
        "0.1",
    )
    assert str(r.retry_for) == "2m"
    assert dict(r.breaker_open_labels) == {"severity": "warning"}


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (
            "dependencies:\n  - name: payments\n    adress: payments:8080\n",
            "test.yaml:9: unknown key 'adress' in dependencies[0] (did you mean 'address'?)",
        ),
        (
            "dependencies:\n  - 8080\n",
            "test.yaml:8: dependencies[0]: a dependency is a server_address string or a mapping",
        ),
        (
            "dependencies:\n  - 'pay ments'\n",
            "test.yaml:8: dependencies[0]: 'pay ments' is not a server_address",
        ),
        (
            "dependencies:\n  - address: p\n    breaker: a\n    breakers: [b]\n",
            "test.yaml:8: dependencies[0]: give either 'breaker' or 'breakers', not both",
        ),
        (
            "dependencies:\n  - {address: p, breaker: a}\n  - {address: q, breaker: a}\n",
            "test.yaml:9: breaker 'a' is listed by dependencies 'p' and 'q'; list it under one",
        ),
        (
            "dependencies:\n  - {name: p, address: a}\n  - {name: p, address: b}\n",
            "test.yaml:9: duplicate dependency name 'p' (also dependencies[0])",
        ),
        (
            "dependencies:\n  - {name: availability, address: a, slo: {objective: 99}}\n",
            "test.yaml:8: duplicate SLO name 'availability' (also slos[0]); give this dependency's",
        ),
        (
            "dependencies:\n  - {address: a, resilience: {breaker_open: {for: 1m}}}\n",
            "test.yaml:8: dependency 'a' lists no breakers and no operations",
        ),
        (
            "resilience:\n  breaker_open: {for: 5 minutes}\n",
            "test.yaml:8: resilience.breaker_open.for: cannot parse duration '5 minutes'",
        ),
        (
            "resilience:\n  flaping: {transitions: 2}\n",
            "test.yaml:8: unknown key 'flaping' in resilience (did you mean 'flapping'?)",
        ),
        (
            "resilience:\n  retry_storm: {labels: {operation: x}}\n",
            "test.yaml:8: label 'operation' is set by obskit",
        ),
        (
            "dependencies:\n  - {address: a, slo: {objective: 99, labels: {dependency: x}}}\n",
            "test.yaml:8: label 'dependency' is set by obskit",
        ),
    ],
)
def test_bad_dependency_and_resilience_input_gets_one_clear_line(text: str, expected: str) -> None:
    with pytest.raises(ManifestError) as caught:
        service_of(MINIMAL + text)
    assert any(str(p).startswith(expected) for p in caught.value.problems), caught.value


def test_the_same_address_string_twice_is_merged_not_an_error() -> None:
    service = service_of(MINIMAL + 'dependencies: ["payments:8080", "payments:8080"]\n')
    assert [d.address for d in service.dependencies] == ["payments:8080"]


# --------------------------------------------------------------------------- rules


def test_every_service_gets_the_resilience_alerts_with_the_contract_labels() -> None:
    service = service_of(MINIMAL + "team: t\n")
    for name in resilience.RESILIENCE_ALERTS:
        [rule] = alerts_named(service, name)
        assert rule["labels"] == {"service": "checkout", "severity": "warning", "team": "t"}
        assert set(rule["annotations"]) == {"summary", "description"}
    [opened] = alerts_named(service, semconv.ALERT_BREAKER_OPEN)
    assert opened["for"] == "5m" and "{{ $labels.breaker }}" in opened["annotations"]["summary"]


def test_a_dependency_scope_gets_its_own_rules_dependency_label_and_thresholds() -> None:
    service = service_of(DEPENDENCY)
    own, rest = alerts_named(service, semconv.ALERT_BREAKER_OPEN)
    assert own["labels"]["dependency"] == "payments" and "dependency" not in rest["labels"]
    assert own["labels"]["component"] == "api" and own["for"] == "2m" and rest["for"] == "5m"
    assert 'breaker=~"payments-breaker"' in own["expr"]
    assert 'breaker!~"payments-breaker"' in rest["expr"]
    assert "[2m]" in own["expr"] and "[5m]" in rest["expr"]  # calls within min(5m, for)
    own_storm, rest_storm = alerts_named(service, semconv.ALERT_RETRY_STORM)
    assert 'operation=~"app\\\\.payments\\\\.charge"' in own_storm["expr"]
    assert 'operation!~"app\\\\.payments\\\\.charge"' in rest_storm["expr"]
    flapping = alerts_named(service, semconv.ALERT_BREAKER_FLAPPING)
    assert all(r["expr"].endswith(">= 4") and "[20m]" in r["expr"] for r in flapping)


def test_breaker_open_counts_half_open_as_not_closed_and_aggregates_processes() -> None:
    [rule] = alerts_named(service_of(MINIMAL), semconv.ALERT_BREAKER_OPEN)
    expr = rule["expr"]
    assert 'state="closed"' in expr and "== 0" in expr and 'state="open"' not in expr
    assert "max without (pid, state)" in expr and "sum without (outcome)" in expr


def test_client_slo_counts_5xx_no_answer_and_rejections_over_calls_plus_rejections() -> None:
    service = service_of(DEPENDENCY)
    records = {
        r["record"]: r["expr"]
        for r in rules(service)
        if r.get("labels", {}).get("slo") == "payments" and "record" in r
    }
    total = records["obskit_slo:requests:rate5m"]
    errors = records["obskit_slo:errors:rate5m"]
    assert 'server_address=~"payments:8080"' in total and 'outcome="rejected"' in total
    assert 'breaker=~"payments-breaker"' in errors and 'error_type=""' in errors
    assert 'http_response_status_code!~"5.."' in errors
    [page] = [
        a
        for a in alerts_named(service, "ObskitSLOBurnRatePage")
        if a["labels"]["slo"] == "payments"
    ]
    assert page["labels"]["severity"] == "warning" and page["labels"]["dependency"] == "payments"
    assert "calls to payments" in page["annotations"]["description"]


def test_a_client_slo_severity_can_be_overridden() -> None:
    text = MINIMAL + (
        "dependencies:\n  - {name: p, address: a, slo: {objective: 99, "
        "labels: {severity: critical}}}\n"
    )
    alerts = [r for r in rules(service_of(text)) if r.get("labels", {}).get("dependency") == "p"]
    assert alerts and all(a["labels"]["severity"] == "critical" for a in alerts)


# --------------------------------------------------------------------------- real promtool


def _promtool(directory: Path, test_file: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [require_binary("promtool"), "test", "rules", str(directory / test_file)],
        capture_output=True,
        text=True,
        check=False,
        timeout=300,
    )


def _write(directory: Path, files: dict[str, str]) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    for name, content in files.items():
        (directory / name).write_text(content)
    return directory


Mutation = Callable[[str], str]


def _mutated(files: dict[str, str], alert: str, change: Mutation) -> dict[str, str]:
    """The rendered files with `change` applied to the expression of every `alert` rule."""
    doc = yaml.safe_load(files["rules.yaml"])
    changed = 0
    for group in doc["groups"]:
        for rule in group["rules"]:
            if rule.get("alert") == alert or rule.get("record") == alert:
                new = change(rule["expr"])
                assert new != rule["expr"], (alert, rule["expr"])
                rule["expr"] = new
                changed += 1
    assert changed
    return {**files, "rules.yaml": output.dump_yaml(doc, "checkout")}


def _without_calls(expr: str) -> str:
    head, _, _ = expr.partition("\n  and\n")
    return head + "\n)"


def _without_per_process(expr: str) -> str:
    head, _, tail = expr.partition("\n  /\n")
    return head + "\n" + tail.split("\n", 1)[1]


MUTATIONS: list[tuple[str, str, Mutation, str, str]] = [
    (
        "breaker open without 'calls keep arriving'",
        semconv.ALERT_BREAKER_OPEN,
        _without_calls,
        "alerts.test.yaml",
        "left open with no calls (idle): silent",
    ),
    (
        "breaker open when any process is open",
        semconv.ALERT_BREAKER_OPEN,
        lambda e: e.replace("max without (pid, state)", "min without (pid, state)"),
        "alerts.test.yaml",
        "open and idle in one process, closed and serving in another: silent",
    ),
    (
        "breaker open only while state is open (half-open would reset it)",
        semconv.ALERT_BREAKER_OPEN,
        lambda e: e.replace('state="closed"}) == 0', 'state="open"}) == 1'),
        "alerts.test.yaml",
        "open and half-open with calls arriving for 5m: fires",
    ),
    (
        "flapping summed over processes",
        semconv.ALERT_BREAKER_FLAPPING,
        _without_per_process,
        "alerts.test.yaml",
        "opens once in each of 3 processes: silent",
    ),
    (
        "retry storm without the minimum call rate",
        semconv.ALERT_RETRY_STORM,
        lambda e: e.split("\nand on (operation)\n")[0],
        "alerts.test.yaml",
        "below the minimum call rate (idle): silent",
    ),
    (
        "client SLO that ignores breaker rejections",
        "obskit_slo:errors:rate5m",
        lambda e: (
            e.split(" + (sum(rate(obskit_circuit_breaker_calls_total")[0]
            if "rejected" in e
            else e + " * 1"
        ),
        "rules.test.yaml",
        "checkout/payments: page row 1h/5m fires",
    ),
]


@pytest.mark.prometheus
def test_generated_resilience_tests_pass_and_fail_when_a_rule_loses_its_semantics(
    tmp_path: Path,
) -> None:
    """The generated alerts.test.yaml and rules.test.yaml pass; each mutation of a rule that
    drops one semantic the issue asks for makes the scenario that covers it fail. (Services
    without SLOs of their own keep each promtool run short.)"""
    bare = render_service(service_of("service: checkout\n"), Templates())
    client = render_service(
        service_of(
            "service: checkout\ndependencies:\n  - {name: payments, address: payments, "
            "breaker: pay, slo: {objective: 99}}\n"
        ),
        Templates(),
    )
    jobs = [
        (tmp_path / "bare", bare, "alerts.test.yaml"),
        (tmp_path / "client", client, "rules.test.yaml"),
    ]
    for index, (_, alert, change, test_file, _) in enumerate(MUTATIONS):
        files = client if test_file == "rules.test.yaml" else bare
        jobs.append((tmp_path / str(index), _mutated(files, alert, change), test_file))
    with ThreadPoolExecutor(2) as pool:
        results = list(pool.map(lambda j: _promtool(_write(j[0], j[1]), j[2]), jobs))
    for result in results[:2]:
        assert result.returncode == 0, result.stdout + result.stderr
    for (what, _, _, _, scenario), result in zip(MUTATIONS, results[2:], strict=True):
        assert result.returncode != 0, what
        assert scenario in result.stdout + result.stderr, (what, result.stdout + result.stderr)


@pytest.mark.prometheus
def test_the_breaker_state_timeline_query_reads_2_open_1_half_open_0_closed(
    tmp_path: Path,
) -> None:
    """The dashboard's state-timeline query, run by real promtool: one value per breaker, the
    worst of its processes."""
    from obskit.generator.render import grafana

    text = MINIMAL + "dependencies: [{address: payments, breaker: a}]\n"
    doc = grafana.dashboard(service_of(text), Templates())
    [expr] = [
        t["expr"] for p in doc["panels"] if p["type"] == "state-timeline" for t in p["targets"]
    ]

    def state(breaker: str, current: str, pid: str) -> list[dict[str, str]]:
        return [
            {
                "series": (
                    f'obskit_circuit_breaker_state{{job="checkout", breaker="{breaker}", '
                    f'state="{s}", pid="{pid}"}}'
                ),
                "values": "1x5" if s == current else "0x5",
            }
            for s in ("closed", "open", "half_open")
        ]

    series = [
        *state("a", "closed", "1"),
        *state("b", "half_open", "1"),
        *state("c", "closed", "1"),
        *state("c", "open", "2"),
    ]
    expected = [
        {"labels": f'{{breaker="{b}"}}', "value": v} for b, v in (("a", 0), ("b", 1), ("c", 2))
    ]
    test = {
        "rule_files": [],
        "evaluation_interval": "1m",
        "tests": [
            {
                "interval": "1m",
                "input_series": series,
                "promql_expr_test": [{"expr": expr, "eval_time": "3m", "exp_samples": expected}],
            }
        ],
    }
    (tmp_path / "t.yaml").write_text(yaml.safe_dump(test))
    result = _promtool(tmp_path, "t.yaml")
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.prometheus
def test_transition_and_retry_panels_read_zero_not_no_data_while_nothing_happens(
    tmp_path: Path,
) -> None:
    """A known breaker that stays closed and an operation that never retries chart 0."""
    from obskit.generator.render import grafana

    text = MINIMAL + "dependencies: [{address: payments, breaker: a, operation: app.pay}]\n"
    doc = grafana.dashboard(service_of(text), Templates())
    exprs = {p["title"]: p["targets"][0]["expr"] for p in doc["panels"] if p.get("targets")}
    series = [
        {
            "series": f'obskit_circuit_breaker_state{{job="checkout", breaker="a", state="{s}"}}',
            "values": "1x10" if s == "closed" else "0x10",
        }
        for s in ("closed", "open", "half_open")
    ] + [
        {
            "series": 'obskit_retry_calls_total{job="checkout", operation="app.pay", '
            'outcome="success"}',
            "values": "0+60x10",
        }
    ]
    zero = [
        {"labels": f'{{breaker="a", state="{s}"}}', "value": 0}
        for s in ("closed", "half_open", "open")
    ]
    test = {
        "rule_files": [],
        "evaluation_interval": "1m",
        "tests": [
            {
                "interval": "1m",
                "input_series": series,
                "promql_expr_test": [
                    {"expr": exprs["Breaker transitions"], "eval_time": "8m", "exp_samples": zero},
                    {
                        "expr": exprs["Retries per second"],
                        "eval_time": "8m",
                        "exp_samples": [{"labels": '{operation="app.pay"}', "value": 0}],
                    },
                ],
            }
        ],
    }
    (tmp_path / "t.yaml").write_text(yaml.safe_dump(test))
    result = _promtool(tmp_path, "t.yaml")
    assert result.returncode == 0, result.stdout + result.stderr
