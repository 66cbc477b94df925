"""Everything generated for one service, as file name -> text, validated before any write."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any, Final, Literal

import promql_parser

from obskit.model import Service
from obskit.render import grafana, output, prometheus, promtool
from obskit.render.templates import TemplateProblem, Templates

Format = Literal["prometheus", "prometheus-operator"]
FORMATS: Final[tuple[Format, ...]] = ("prometheus", "prometheus-operator")

RULES: Final = "rules.yaml"
RULE_TESTS: Final = "rules.test.yaml"
OPERATOR_RULES: Final = "prometheusrule.yaml"
DASHBOARD: Final = "dashboard.json"


class PromQLProblem(Exception):
    """A generated expression does not parse (a bug, or a selector promql-parser rejects)."""


def check_promql(expressions: Iterable[str], where: str) -> None:
    for expr in expressions:
        try:
            promql_parser.parse(expr)
        except ValueError as exc:
            raise PromQLProblem(
                f"{where}: generated PromQL does not parse: {exc}\n{expr}"
            ) from None


def operator_resource(
    service: Service, rules: dict[str, Any], templates: Templates
) -> dict[str, Any]:
    """`rules` wrapped in a Kubernetes PrometheusRule (envelope from a template)."""
    name = "prometheusrule.yaml.j2"
    envelope = templates.render_yaml_mapping(name, service=service.name, team=service.team)
    if not isinstance(envelope.get("metadata"), dict):
        raise TemplateProblem(f"template {name} must render a mapping with 'metadata'")
    return {**envelope, "spec": rules}


def render_service(
    service: Service, templates: Templates, formats: Sequence[Format] = ("prometheus",)
) -> dict[str, str]:
    rules = prometheus.rule_groups(service, templates)
    check_promql(prometheus.expressions(rules), f"{service.source} ({service.name}) rules")
    files = {
        RULES: output.dump_yaml(rules, service.name),
        RULE_TESTS: output.dump_yaml(promtool.rule_tests(service, templates, RULES), service.name),
    }
    if "prometheus-operator" in formats:
        files[OPERATOR_RULES] = output.dump_yaml(
            operator_resource(service, rules, templates), service.name
        )
    dashboard = grafana.dashboard(service, templates)
    check_promql(grafana.expressions(dashboard), f"{service.source} ({service.name}) dashboard")
    files[DASHBOARD] = output.dump_json(dashboard)
    return files


def render_all(
    services: Sequence[Service], templates: Templates, formats: Sequence[Format]
) -> dict[str, dict[str, str]]:
    return {s.name: render_service(s, templates, formats) for s in services}
