"""Every generated PromQL expression parses and names only series and labels obskit produces."""

from __future__ import annotations

import json
import re
from typing import Any

import promql_parser
import pytest
import yaml

from obskit import semconv
from obskit.generator.model import PROMETHEUS_LABELS, RECORDED_NAMES, RULE_LABELS, Service
from obskit.generator.render import grafana, prometheus, promql
from obskit.generator.render.bundle import PromQLProblem, check_promql
from obskit.generator.render.promtool import selector_labels
from obskit.generator.render.templates import Templates
from tests.generator.conftest import MINIMAL, service_of

RUNTIME_METRICS = {
    base + suffix
    for base in (
        semconv.HTTP_SERVER_DURATION,
        semconv.HTTP_CLIENT_DURATION,
        semconv.OPERATION_DURATION,
    )
    for suffix in (semconv.BUCKET, semconv.COUNT, semconv.SUM)
} | {
    semconv.BUILD_INFO,
    semconv.HTTP_SERVER_ACTIVE,
    semconv.HTTP_CLIENT_ACTIVE,
    semconv.RETRIES,
    semconv.RETRY_CALLS,
    semconv.BREAKER_STATE,
    semconv.BREAKER_TRANSITIONS,
    semconv.BREAKER_CALLS,
    semconv.MESSAGING_SENT,
    semconv.OUTBOX_PENDING,
    semconv.OUTBOX_OLDEST_AGE,
    *(
        base + suffix
        for base in (semconv.MESSAGING_PROCESS_DURATION, semconv.MESSAGING_QUEUE_WAIT)
        for suffix in (semconv.BUCKET, semconv.COUNT, semconv.SUM)
    ),
}
RUNTIME_LABELS = {
    *semconv.SERVER_LABELS,
    *semconv.CLIENT_LABELS,
    *semconv.OPERATION_LABELS,
    *semconv.RETRY_LABELS,
    *semconv.RETRY_CALL_LABELS,
    *semconv.BREAKER_STATE_LABELS,
    *semconv.BREAKER_CALL_LABELS,
    semconv.LABEL_PID,
    *semconv.MESSAGING_PROCESS_LABELS,
    semconv.LABEL_OUTBOX,
}


def names_in(expr: str) -> tuple[set[str], set[str]]:
    """Metric names and label names (selectors, by/without, on/ignoring) of one expression."""
    metrics: set[str] = set()
    labels: set[str] = set()

    def visit(node: Any) -> bool:
        if isinstance(node, promql_parser.VectorSelector):
            if node.name:
                metrics.add(node.name)
            labels.update(m.name for m in node.matchers.matchers)
        if isinstance(node, promql_parser.AggregateExpr) and node.modifier is not None:
            labels.update(node.modifier.labels)
        if isinstance(node, promql_parser.BinaryExpr) and node.modifier is not None:
            matching = node.modifier.matching
            if matching is not None:
                labels.update(matching.labels)
        return True

    promql_parser.walk(promql_parser.parse(expr), visit)
    return metrics, labels


def all_expressions(files: dict[str, dict[str, str]]) -> list[tuple[str, str]]:
    out = []
    for service, contents in files.items():
        rules = yaml.safe_load(contents["rules.yaml"])
        out += [(service, e) for e in prometheus.expressions(rules)]
        out += [(service, e) for e in grafana.expressions(json.loads(contents["dashboard.json"]))]
    return out


def test_every_expression_uses_only_semconv_and_recorded_names(
    example_services: list[Service], example_files: dict[str, dict[str, str]]
) -> None:
    selectors = {s.name: set(selector_labels(s)) for s in example_services}
    expressions = all_expressions(example_files)
    assert len(expressions) > 50
    seen_metrics: set[str] = set()
    for service, expr in expressions:
        metrics, labels = names_in(expr)
        seen_metrics |= metrics
        assert metrics <= RUNTIME_METRICS | RECORDED_NAMES, expr
        allowed = RUNTIME_LABELS | RULE_LABELS | PROMETHEUS_LABELS | selectors[service]
        assert labels <= allowed, (labels - allowed, expr)
    # The walk really sees the names (a test that could not fail would prove nothing).
    assert promql.SERVER_COUNT in seen_metrics and promql.CLIENT_BUCKET in seen_metrics
    assert {semconv.BREAKER_STATE, semconv.RETRIES, semconv.HTTP_CLIENT_ACTIVE} <= seen_metrics
    assert {semconv.MESSAGING_SENT, semconv.OUTBOX_OLDEST_AGE, promql.WAIT_BUCKET} <= seen_metrics


def test_the_name_walk_catches_a_name_the_runtime_does_not_emit() -> None:
    metrics, labels = names_in('sum by (path) (rate(http_requests_total{code="500"}[5m]))')
    assert metrics == {"http_requests_total"} and labels == {"path", "code"}


def test_check_promql_rejects_broken_expressions() -> None:
    check_promql(["sum(rate(a[5m]))"], "x")
    with pytest.raises(PromQLProblem, match="does not parse"):
        check_promql(["sum(rate(a[5m])"], "x")
    with pytest.raises(PromQLProblem):
        check_promql(["rate(a)"], "x")


def _route_matcher_regex(service: Service) -> str:
    expr = promql.sli_totals(service, service.slos[0])
    node = promql_parser.parse(expr)
    found: list[str] = []

    def visit(n: Any) -> bool:
        if isinstance(n, promql_parser.VectorSelector):
            found.extend(m.value for m in n.matchers.matchers if m.name == semconv.LABEL_ROUTE)
        return True

    promql_parser.walk(node, visit)
    [regex] = found
    return regex


def test_route_filter_matches_exactly_the_listed_route_templates() -> None:
    """`{order_id}` is escaped (not a quantifier); Prometheus anchors the alternation."""
    text = MINIMAL + '    routes: ["/orders", "/orders/{order_id}", "/a.b+c"]\n'
    regex = _route_matcher_regex(service_of(text))
    assert regex == r"/orders|/orders/\{order_id\}|/a\.b\+c"
    anchored = re.compile(f"^(?:{regex})$")
    for route in ("/orders", "/orders/{order_id}", "/a.b+c"):
        assert anchored.match(route)
    for route in ("/orders/1", "/orders/{order_id}/items", "/aXb+c", "/a.bbc", "/", "x/orders"):
        assert not anchored.match(route), route


def test_route_regex_survives_promql_string_escaping() -> None:
    """Backslashes are doubled inside the PromQL string and arrive single in the matcher."""
    text = MINIMAL + '    routes: ["/orders/{order_id}"]\n'
    service = service_of(text)
    assert "\\\\{order_id\\\\}" in promql.sli_totals(service, service.slos[0])
    assert _route_matcher_regex(service) == r"/orders/\{order_id\}"


@pytest.mark.parametrize(
    ("dependency", "matches", "rejects"),
    [
        ("localhost", ["localhost", "localhost:8081"], ["localhostx", "localhost:", "other:1"]),
        ("payments:8080", ["payments:8080"], ["payments", "payments:8081", "payments:80800"]),
        ("api.example.com", ["api.example.com", "api.example.com:443"], ["apiXexample.com"]),
    ],
)
def test_dependency_matchers(dependency: str, matches: list[str], rejects: list[str]) -> None:
    anchored = re.compile(f"^(?:{promql.dependency_regex([dependency])})$")
    assert all(anchored.match(m) for m in matches)
    assert not any(anchored.match(r) for r in rejects)


def test_availability_errors_read_zero_not_nothing_and_latency_uses_the_exact_le() -> None:
    text = MINIMAL + "  - name: fast\n    objective: 99\n    sli: {latency: {threshold: 1}}\n"
    service = service_of(text)
    availability, latency = service.slos
    assert " or 0 * sum(rate(" in promql.sli_errors(service, availability)
    assert 'le="1.0"' in promql.sli_errors(service, latency)


def test_rendering_validates_promql_before_anything_is_written() -> None:
    """A selector promql-parser accepts only inside braces still yields parseable rules."""
    text = MINIMAL + 'selector: \'job="checkout", namespace=~"prod|staging"\'\n'
    rules = prometheus.rule_groups(service_of(text), Templates())
    check_promql(prometheus.expressions(rules), "test")
