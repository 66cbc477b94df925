"""The lab helpers the e2e tests trust: Grafana variable substitution, the fault knob, the
Prometheus configuration. Fast, no server."""

from __future__ import annotations

import ast
from collections.abc import Sequence
from pathlib import Path

import pytest

from examples.lab import grafana
from examples.lab.faults import Faults, FaultSettingsError
from examples.lab.prometheus import Target, render_config


class FakeLabels:
    """Answers label_values like Prometheus's /api/v1/label/<name>/values would."""

    def __init__(self, values: dict[str, list[str]]) -> None:
        self.values = values
        self.calls: list[tuple[str, tuple[str, ...]]] = []

    def label_values(self, label: str, match: Sequence[str] = ()) -> list[str]:
        self.calls.append((label, tuple(match)))
        return self.values.get(label, [])


def test_substitute_replaces_grafana_builtins_and_variable_syntaxes() -> None:
    expr = 'rate(x{job="$job", route=~"${route}", a="[[job]]"}[$__rate_interval])'
    out = grafana.substitute(expr, {"job": "shop", "route": ["/a", "/b.c"]})
    assert out == r'rate(x{job="shop", route=~"(/a|/b\.c)", a="shop"}[1m])'


def test_substitute_keeps_unknown_dollars_untouched() -> None:
    assert grafana.substitute('x{a=~"b$"} $unknown', {}) == 'x{a=~"b$"} $unknown'


def test_resolve_variables_refreshes_query_variables_and_chains_them() -> None:
    dashboard = {
        "templating": {
            "list": [
                {"name": "datasource", "type": "datasource", "query": "prometheus"},
                {
                    "name": "job",
                    "type": "query",
                    "query": {"query": "label_values(up, job)"},
                    "current": {"value": "gone"},
                },
                {
                    "name": "route",
                    "type": "query",
                    "query": 'label_values(m{job="$job"}, http_route)',
                    "includeAll": True,
                    "current": {"value": ["$__all"]},
                },
            ]
        }
    }
    prom = FakeLabels({"job": ["payments", "shop"], "http_route": ["/b", "/a"]})
    resolved = grafana.resolve_variables(dashboard, prom)
    assert resolved == {"job": "payments", "route": ["/a", "/b"]}
    assert prom.calls == [("job", ("up",)), ("http_route", ('m{job="payments"}',))]


def test_panel_queries_include_panels_nested_in_rows_and_skip_hidden_targets() -> None:
    dashboard = {
        "panels": [
            {"type": "row", "title": "r", "panels": [{"id": 2, "title": "in", "targets": [
                {"refId": "A", "expr": "a"}, {"refId": "B", "expr": "b", "hide": True}]}]},
            {"id": 3, "title": "top", "targets": [{"refId": "A", "expr": "c"}]},
        ]
    }  # fmt: skip
    assert [(q.panel_title, q.expr) for q in grafana.panel_queries(dashboard)] == [
        ("in", "a"),
        ("top", "c"),
    ]


def test_faults_fail_exactly_the_configured_share_per_route() -> None:
    faults = Faults()
    faults.update({"error_rate": 0.25, "routes": ["/a", "/b"]})
    decisions = [faults.decide(route) for _ in range(100) for route in ("/a", "/b", "/c")]
    # 25 of 100 on /a, 25 of 100 on /b, none on /c (not selected)
    assert sum(d.fail for d in decisions) == 50
    assert faults.snapshot()["requests_seen"] == 200


def test_faults_reject_a_bad_body_and_change_nothing() -> None:
    faults = Faults()
    faults.update({"error_rate": 0.5})
    for body in ({"error_rate": 2}, {"latency_ms": "x"}, {"routes": "/a"}, {"nope": 1}):
        with pytest.raises(FaultSettingsError):
            faults.update(body)
    assert faults.snapshot()["error_rate"] == 0.5


def test_prometheus_config_scrapes_each_service_as_its_own_job_every_second(
    tmp_path: Path,
) -> None:
    rules = tmp_path / "rules.yaml"
    config = render_config(
        [Target("shop", "127.0.0.1:1"), Target("payments", "127.0.0.1:2")], [rules]
    )
    assert config["global"] == {
        "scrape_interval": "1s",
        "scrape_timeout": "1s",
        "evaluation_interval": "1s",
    }
    assert config["rule_files"] == [str(rules.resolve())]
    jobs = {c["job_name"]: c["static_configs"][0]["targets"] for c in config["scrape_configs"]}
    assert jobs == {"payments": ["127.0.0.1:2"], "shop": ["127.0.0.1:1"]}


@pytest.mark.parametrize("service", ["shop", "payments"])
def test_each_example_service_is_instrumented_with_exactly_one_init_line(service: str) -> None:
    source = (Path(__file__).resolve().parents[2] / "examples" / service / "app.py").read_text()
    calls = [
        node
        for node in ast.walk(ast.parse(source))
        if isinstance(node, ast.Call)
        and isinstance(node.func, ast.Attribute)
        and isinstance(node.func.value, ast.Name)
        and node.func.value.id == "obskit"
        and node.func.attr == "init"
    ]
    assert len(calls) == 1
    assert "opentelemetry" not in source and "prometheus_client" not in source
