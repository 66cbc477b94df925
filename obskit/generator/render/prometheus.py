"""Prometheus rule groups for one service: SLO recording rules and burn-rate alerts.

Per SLO, one group evaluated in order:

1. `obskit_slo:requests:rate5m` and `obskit_slo:errors:rate5m`: one series each, the summed
   5-minute rates of all requests the SLI counts and of the bad ones. `rate()` handles counter
   resets; the errors rule yields 0 rather than nothing while there is traffic but no error.
2. `obskit_slo:error_ratio{window=...}` for 5m, 30m, 1h, 2h, 6h, 1d, 3d and the SLO window:
   `sum_over_time(errors[w]) / sum_over_time(requests[w])`, a ratio of summed counts, so every
   request weighs the same whatever the traffic shape (never an average of short ratios). It reads
   two already-aggregated series, so a 30-day window costs one series' samples, not a range scan
   over every raw histogram series. `> 0` on the denominator: no traffic, no series (no NaN).
3. `obskit_slo:objective` (as a ratio) and `obskit_slo:error_budget_remaining` over the window.
4. Page and ticket alerts: rows of `model.BURN_RATE_ROWS` OR-ed, each row requiring both its
   long and short window above `factor * (1 - objective)`.

One more group holds the telemetry-absent alert of the service (`obskit_build_info` absent).
"""

from __future__ import annotations

from typing import Any

from obskit import semconv
from obskit.generator.model import (
    ABSENT_FOR,
    ALERT_ABSENT,
    ALERT_NAMES,
    BURN_RATE_ROWS,
    LABEL_DEPENDENCY,
    LABEL_SERVICE,
    LABEL_SLO,
    LABEL_WINDOW,
    RATIO_WINDOWS,
    REC_BUDGET_REMAINING,
    REC_ERROR_RATIO,
    REC_ERRORS,
    REC_OBJECTIVE,
    REC_REQUESTS,
    SEVERITIES,
    SLO,
    BurnRateRow,
    Service,
    Severity,
    format_decimal,
)
from obskit.generator.render import promql
from obskit.generator.render.templates import Templates


def group_name(service: Service, slo: SLO | None = None) -> str:
    if slo is None:
        return f"obskit-{service.name}-telemetry"
    return f"obskit-{service.name}-slo-{slo.name}"


def rows_of(slo: SLO, severity: Severity) -> list[BurnRateRow]:
    """The rows of `severity` that can fire for `slo` (threshold below a 100% error ratio)."""
    return [r for r in BURN_RATE_ROWS if r.severity == severity and slo.can_fire(r)]


def threshold(slo: SLO, row: BurnRateRow) -> str:
    """`factor * budget` as PromQL, e.g. `(14.4 * 0.001)`."""
    return f"({format_decimal(slo.factor(row))} * {format_decimal(slo.budget)})"


def alert_expr(service: Service, slo: SLO, severity: Severity) -> str:
    parts = []
    for row in rows_of(slo, severity):
        limit = threshold(slo, row)
        long = promql.error_ratio(service, slo, row.long)
        short = promql.error_ratio(service, slo, row.short)
        parts.append(
            f"max without ({LABEL_WINDOW}) (\n"
            f"  ({long} > {limit})\n"
            f"  and ignoring ({LABEL_WINDOW})\n"
            f"  ({short} > {limit})\n"
            ")"
        )
    return "\nor\n".join(parts)


def _slo_labels(service: Service, slo: SLO) -> dict[str, str]:
    return {LABEL_SERVICE: service.name, LABEL_SLO: slo.name}


def _recording_rules(service: Service, slo: SLO) -> list[dict[str, Any]]:
    labels = _slo_labels(service, slo)
    requests = promql.recorded(REC_REQUESTS, service, slo)
    errors = promql.recorded(REC_ERRORS, service, slo)
    rules: list[dict[str, Any]] = [
        {"record": REC_REQUESTS, "expr": promql.sli_totals(service, slo), "labels": labels},
        {"record": REC_ERRORS, "expr": promql.sli_errors(service, slo), "labels": labels},
    ]
    for window in slo.windows:
        if window == RATIO_WINDOWS[0]:
            expr = f"{errors}\n/\n({requests} > 0)"
        else:
            expr = (
                f"sum_over_time({errors}[{window}])\n/\n(sum_over_time({requests}[{window}]) > 0)"
            )
        rules.append(
            {
                "record": REC_ERROR_RATIO,
                "expr": expr,
                "labels": {**labels, LABEL_WINDOW: str(window)},
            }
        )
    objective = format_decimal(slo.objective / 100)
    rules.append({"record": REC_OBJECTIVE, "expr": f"vector({objective})", "labels": labels})
    rules.append(
        {
            "record": REC_BUDGET_REMAINING,
            "expr": (
                f"1 - {promql.error_ratio(service, slo, slo.window)} / {format_decimal(slo.budget)}"
            ),
            "labels": labels,
        }
    )
    return rules


def go_literal(text: str) -> str:
    """Prometheus template source that expands to exactly `text`.

    Prometheus expands alert annotations as Go templates, so a manifest's `{{` (in a
    description or URL) would be an action: a rules file promtool rejects, or text that changes
    when the alert fires. Each `{{` becomes the action `{{ "{{" }}`, which prints it.
    """
    return text.replace("{{", '{{ "{{" }}')


def _text(value: str | None, escape: bool) -> str | None:
    return go_literal(value) if escape and value is not None else value


def slo_context(slo: SLO, escape: bool = False) -> dict[str, Any]:
    return {
        "name": slo.name,
        "objective": format_decimal(slo.objective),
        "window": str(slo.window),
        "description": _text(slo.description, escape),
        "sli": slo.kind,
        "threshold": slo.threshold,
        "routes": list(slo.routes),
        "dependency": slo.dependency.name if slo.dependency is not None else None,
    }


def render_annotations(
    templates: Templates, name: str, service: Service, expanded: bool, **context: Any
) -> dict[str, str]:
    """Template `name` rendered with the service's links; every annotation must be a string."""
    data = templates.render_yaml_mapping(
        name,
        service=service.name,
        runbook_url=_text(service.runbook_url, not expanded),
        dashboard_url=_text(service.dashboard_url, not expanded),
        **context,
    )
    for key, value in data.items():
        if not isinstance(value, str):
            raise templates.problem(name, f"annotation {key!r} must be a string")
    return {str(k): str(v) for k, v in data.items()}


def _row_context(slo: SLO, row: BurnRateRow) -> dict[str, str]:
    factor = format_decimal(slo.factor(row))
    return {
        "factor": factor,
        "long": str(row.long),
        "short": str(row.short),
        "text": f"{factor}x over {row.long} and {row.short}",
    }


def alert_annotations(
    templates: Templates, service: Service, slo: SLO, severity: Severity, expanded: bool = False
) -> dict[str, str]:
    """Annotations as written in rules.yaml, or (`expanded`) as Prometheus shows them."""
    return render_annotations(
        templates,
        "alert_annotations.yaml.j2",
        service,
        expanded,
        slo=slo_context(slo, escape=not expanded),
        severity=severity,
        rows=[_row_context(slo, row) for row in rows_of(slo, severity)],
    )


def absent_annotations(
    templates: Templates, service: Service, expanded: bool = False
) -> dict[str, str]:
    """Annotations as written in rules.yaml, or (`expanded`) as Prometheus shows them."""
    return render_annotations(
        templates,
        "absent_annotations.yaml.j2",
        service,
        expanded,
        metric=semconv.BUILD_INFO,
        duration=str(ABSENT_FOR),
    )


def alert_labels(service: Service, slo: SLO, severity: Severity) -> dict[str, str]:
    """The policy's labels (a client SLO's own: severity warning by default), service, slo, and
    the dependency of a client SLO."""
    policy = slo.labels if slo.labels is not None else service.policy(severity).labels
    labels = {**dict(policy), **_slo_labels(service, slo)}
    if slo.dependency is not None:
        labels[LABEL_DEPENDENCY] = slo.dependency.name
    return labels


def absent_labels(service: Service) -> dict[str, str]:
    return {**dict(service.policy("ticket").labels), LABEL_SERVICE: service.name}


def absent_expr(service: Service) -> str:
    """The runtime exports `obskit_build_info` on every scrape, idle or busy: its absence means
    the service is down, unscraped, or lost its telemetry, never just that nobody called it."""
    return f"absent({semconv.BUILD_INFO}{{{service.selector}}})"


def rule_groups(service: Service, templates: Templates) -> dict[str, Any]:
    """The whole rules.yaml document of one service, as data."""
    groups: list[dict[str, Any]] = []
    for slo in service.slos:
        rules = _recording_rules(service, slo)
        for severity in SEVERITIES:
            if not rows_of(slo, severity):
                continue
            rules.append(
                {
                    "alert": ALERT_NAMES[severity],
                    "expr": alert_expr(service, slo, severity),
                    "for": str(service.policy(severity).for_),
                    "labels": alert_labels(service, slo, severity),
                    "annotations": alert_annotations(templates, service, slo, severity),
                }
            )
        groups.append({"name": group_name(service, slo), "rules": rules})
    groups.append(
        {
            "name": group_name(service),
            "rules": [
                {
                    "alert": ALERT_ABSENT,
                    "expr": absent_expr(service),
                    "for": str(ABSENT_FOR),
                    "labels": absent_labels(service),
                    "annotations": absent_annotations(templates, service),
                }
            ],
        }
    )
    return {"groups": groups}


def expressions(document: dict[str, Any]) -> list[str]:
    """Every PromQL expression of a rules document (for validation)."""
    return [rule["expr"] for group in document["groups"] for rule in group["rules"]]
