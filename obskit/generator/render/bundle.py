"""Everything generated for one service, as file name -> text, validated before any write."""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from functools import partial
from typing import Any, Final, Literal

import promql_parser

from obskit.generator.model import Service
from obskit.generator.parallel import fork_imap
from obskit.generator.render import (
    alertmanager,
    alerts,
    grafana,
    output,
    prometheus,
    promtool,
    scenarios,
)
from obskit.generator.render.templates import Templates

Format = Literal["prometheus", "prometheus-operator"]
FORMATS: Final[tuple[Format, ...]] = ("prometheus", "prometheus-operator")

RULES: Final = "rules.yaml"
RULE_TESTS: Final = "rules.test.yaml"
ALERT_TESTS: Final = "alerts.test.yaml"
"""Unit tests of the alerts that are not SLO burn rates, at a fine step (the SLO tests of
rules.test.yaml span days at 15m; promtool evaluates one test file at one interval)."""
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


OPERATOR_API: Final = ("monitoring.coreos.com/v1", "PrometheusRule")
_K8S_NAME: Final = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")
_K8S_LABEL_VALUE: Final = re.compile(r"^(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?$")
_K8S_LABEL_NAME: Final = re.compile(
    r"^([a-z0-9]([-a-z0-9.]*[a-z0-9])?/)?[A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?$"
)


def k8s_name(service: str) -> str:
    """`obskit-<service>` as a Kubernetes object name (DNS-1123: no `_`, alphanumeric ends)."""
    return re.sub(r"[^a-z0-9-]+", "-", f"obskit-{service}").strip("-")[:253].rstrip("-")


def _k8s_metadata_problem(metadata: Any) -> str | None:
    if not isinstance(metadata, dict):
        return "must render a mapping with 'metadata'"
    name = metadata.get("name")
    if not isinstance(name, str) or len(name) > 253 or not _K8S_NAME.match(name):
        return f"metadata.name {name!r} is not a valid Kubernetes object name"
    labels = metadata.get("labels", {})
    if not isinstance(labels, dict):
        return "metadata.labels must be a mapping"
    for key, value in labels.items():
        if not isinstance(key, str) or len(key) > 317 or not _K8S_LABEL_NAME.match(key):
            return f"metadata.labels key {key!r} is not a valid Kubernetes label name"
        if not isinstance(value, str) or len(value) > 63 or not _K8S_LABEL_VALUE.match(value):
            return (
                f"metadata.labels.{key} {value!r} is not a valid Kubernetes label value "
                "(use the k8s_label filter)"
            )
    return None


def operator_resource(
    service: Service, rules: dict[str, Any], templates: Templates
) -> dict[str, Any]:
    """`rules` wrapped in a Kubernetes PrometheusRule (envelope from a template, checked)."""
    template = "prometheusrule.yaml.j2"
    envelope = templates.render_yaml_mapping(
        template,
        service=service.name,
        team=service.team,
        resource_name=k8s_name(service.name),
    )
    if (envelope.get("apiVersion"), envelope.get("kind")) != OPERATOR_API:
        raise templates.problem(
            template, f"must render apiVersion {OPERATOR_API[0]} and kind {OPERATOR_API[1]}"
        )
    if problem := _k8s_metadata_problem(envelope.get("metadata")):
        raise templates.problem(template, problem)
    if "spec" in envelope:
        raise templates.problem(template, "must leave 'spec' to obskit")
    return {**envelope, "spec": rules}


class ServiceFiles(dict[str, str]):
    """File name -> text of one service, plus the data of its Alertmanager part (`part`), so
    the assembly need not parse back what was just written (it travels with the texts)."""

    part: Mapping[str, Any] | None = None


def render_service(
    service: Service, templates: Templates, formats: Sequence[Format] = ("prometheus",)
) -> dict[str, str]:
    ctx = alerts.context(service, templates)
    rules = prometheus.rule_groups(service, templates, ctx)
    check_promql(prometheus.expressions(rules), f"{service.source} ({service.name}) rules")
    files = {
        RULES: output.dump_yaml(rules, service.name),
        RULE_TESTS: output.dump_yaml(
            promtool.rule_tests(service, templates, RULES, rules, ctx), service.name
        ),
        ALERT_TESTS: output.dump_yaml(
            scenarios.alert_tests(service, templates, RULES, rules), service.name
        ),
    }
    part = alertmanager.part(service, rules)
    files[alertmanager.PART] = output.dump_yaml(part, service.name)
    if "prometheus-operator" in formats:
        files[OPERATOR_RULES] = output.dump_yaml(
            operator_resource(service, rules, templates), service.name
        )
    dashboard = grafana.dashboard(service, templates, ctx.rows)
    check_promql(grafana.expressions(dashboard), f"{service.source} ({service.name}) dashboard")
    files[DASHBOARD] = output.dump_json(dashboard)
    rendered = ServiceFiles(files)
    rendered.part = part
    return rendered


def render_all(
    services: Sequence[Service],
    templates: Templates,
    formats: Sequence[Format],
    jobs: int = 1,
    on_result: Callable[[str, dict[str, str]], None] | None = None,
) -> dict[str, dict[str, str]]:
    """Every service's files, rendered by up to `jobs` processes (`parallel.fork_imap`: the
    same files whatever `jobs` is; the first service's problem is raised, as in order).
    `on_result(service, files)` sees each service's files as soon as they are rendered."""
    render = partial(render_service, templates=templates, formats=formats)
    files: dict[str, dict[str, str]] = {}
    for service, rendered in zip(services, fork_imap(render, services, jobs), strict=True):
        files[service.name] = rendered
        if on_result is not None:
            on_result(service.name, rendered)
    return files
