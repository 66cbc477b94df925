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
4. Page and ticket alerts: rows of `model.BURN_RATE_ROWS` OR-ed, each row requiring the burn
   rate (error ratio / (1 - objective)) of both its long and short window above its factor; the
   alert's value is that burn rate, which its annotations print.
5. For a latency SLO, `ObskitSLOBucketMissing`: requests flow on its routes but the histogram has
   no bucket at its threshold, so the SLO would read as no data and never fire.

One more group holds the telemetry-absent alert of the service (`obskit_build_info` absent), and
the last the circuit-breaker and retry alerts (`resilience`).
Every alert is built as an `alerts.Alert` and written by `alerts.rule()` (annotations, links).
"""

from __future__ import annotations

from functools import partial
from typing import Any

from obskit import semconv
from obskit.generator.model import (
    ABSENT_FOR,
    ALERT_ABSENT,
    ALERT_BUCKET_MISSING,
    ALERT_NAMES,
    BURN_RATE_ROWS,
    GUARD_FOR,
    LABEL_DEPENDENCY,
    LABEL_LE,
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
    format_le,
)
from obskit.generator.render import alerts, grafana, promql, resilience
from obskit.generator.render.templates import Templates


def group_name(service: Service, slo: SLO | None = None) -> str:
    if slo is None:
        return f"obskit-{service.name}-telemetry"
    return f"obskit-{service.name}-slo-{slo.name}"


def rows_of(slo: SLO, severity: Severity) -> list[BurnRateRow]:
    """The rows of `severity` that can fire for `slo` (threshold below a 100% error ratio)."""
    return [r for r in BURN_RATE_ROWS if r.severity == severity and slo.can_fire(r)]


def alert_expr(service: Service, slo: SLO, severity: Severity) -> str:
    """Rows OR-ed; a row holds when both its windows burn faster than its factor. The value is
    the burn rate over the long window of the first row that holds (`and` keeps the left side)."""
    budget = format_decimal(slo.budget)
    parts = []
    for row in rows_of(slo, severity):
        factor = format_decimal(slo.factor(row))
        long = promql.error_ratio(service, slo, row.long)
        short = promql.error_ratio(service, slo, row.short)
        parts.append(
            f"max without ({LABEL_WINDOW}) (\n"
            f"  ({long} / {budget} > {factor})\n"
            f"  and ignoring ({LABEL_WINDOW})\n"
            f"  ({short} / {budget} > {factor})\n"
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


def slo_context(slo: SLO, severity: Severity) -> dict[str, Any]:
    """What the annotation template gets as `slo` for an SLO's alerts."""
    return {
        "name": slo.name,
        "objective": format_decimal(slo.objective),
        "window": str(slo.window),
        "description": slo.description,
        "sli": slo.kind,
        "threshold": slo.threshold,
        "routes": list(slo.routes),
        "dependency": slo.dependency.name if slo.dependency is not None else None,
        "severity": severity,
        "rows": [_row_context(slo, row) for row in rows_of(slo, severity)],
    }


def _row_context(slo: SLO, row: BurnRateRow) -> dict[str, str]:
    factor = format_decimal(slo.factor(row))
    return {
        "factor": factor,
        "long": str(row.long),
        "short": str(row.short),
        "text": f"{factor}x over {row.long} and {row.short}",
    }


def burn_alert(service: Service, slo: SLO, severity: Severity) -> alerts.Alert:
    """The page or ticket burn-rate alert of `slo`; its value is the burn rate."""
    rows = " or ".join(_row_context(slo, row)["text"] for row in rows_of(slo, severity))
    prefix = f"{slo.description}. " if slo.description else ""
    return alerts.Alert(
        name=ALERT_NAMES[severity],
        expr=alert_expr(service, slo, severity),
        for_=service.policy(severity).for_,
        labels=alert_labels(service, slo, severity),
        summary=(
            f"{service.name} {slo.name} SLO: error budget burning {alerts.VALUE}x too fast "
            f"({severity})"
        ),
        description=(
            f"{prefix}The {slo.kind} SLO ({format_decimal(slo.objective)}% over {slo.window}) "
            f"of {_whose(service, slo)} is spending its error budget {alerts.VALUE}x as fast as "
            f"the objective allows; this {severity} fires at {rows}."
        ),
        value=alerts.Value.BURN_RATE,
        panel=grafana.slo_panel(slo),
        slo=slo_context(slo, severity),
    )


def _whose(service: Service, slo: SLO) -> str:
    if slo.dependency is None:
        return service.name
    return (
        f"{service.name}'s calls to {slo.dependency.name} (bad: a 5xx, no answer, or rejected "
        "by a breaker)"
    )


def bucket_missing_alert(service: Service, slo: SLO) -> alerts.Alert:
    """Requests flow but the latency threshold's bucket does not exist: the SLO's good side
    (`sum(rate(bucket{le=...}[5m]))`) is empty, it reads as no data and could never fire. Its
    value is the request rate."""
    assert slo.threshold is not None
    le = format_le(slo.threshold)
    bucket = promql.SERVER_BUCKET + promql.selector(
        *promql.slo_matchers(service, slo), promql.eq(LABEL_LE, le)
    )
    return alerts.Alert(
        name=ALERT_BUCKET_MISSING,
        # Both sides read the same 5m range: an instant `count(bucket)` would lose the bucket
        # at a restart (stale series) while `rate()` still sees the old requests.
        expr=f"{promql.sli_totals(service, slo)} > 0\nunless\nsum(rate({bucket}[{promql.RATE}]))",
        for_=GUARD_FOR,
        labels={**dict(service.policy("ticket").labels), **_slo_labels(service, slo)},
        summary=(
            f'{service.name} {slo.name} SLO is blind: no le="{le}" bucket while '
            f"{alerts.VALUE} requests/s flow"
        ),
        description=(
            f"{service.name} serves {alerts.VALUE} requests/s on the routes of its {slo.name} "
            f'SLO, but its {promql.SERVER_BUCKET} series have no le="{le}" bucket, so the '
            f"latency SLO reads as no data and cannot alert. Give the runtime histogram a "
            f"{le}s bucket (obskit buckets setting, OBSKIT_BUCKETS) or set the SLO threshold "
            f"to one of its buckets; `obskit verify` lists them."
        ),
        value=alerts.Value.RATE,
        panel=grafana.slo_sli_panel(slo),
        slo=slo_context(slo, "ticket"),
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


def absent_alert(service: Service) -> alerts.Alert:
    return alerts.Alert(
        name=ALERT_ABSENT,
        expr=absent_expr(service),
        for_=ABSENT_FOR,
        labels=absent_labels(service),
        summary=f"{service.name}: no obskit metrics for {ABSENT_FOR}",
        description=(
            f"Prometheus has had no {semconv.BUILD_INFO} series of {service.name} for "
            f"{ABSENT_FOR}: the service is down, not scraped, or its telemetry stopped. Its SLO "
            "alerts cannot fire meanwhile."
        ),
    )


def slo_alerts(service: Service, slo: SLO, ctx: alerts.Context) -> list[alerts.Alert]:
    """Every alert of one SLO, in rule order (built once per `ctx`)."""
    out = [
        ctx.alert((ALERT_NAMES[s], slo.name), partial(burn_alert, service, slo, s))
        for s in SEVERITIES
        if rows_of(slo, s)
    ]
    if slo.kind == "latency":
        key = (ALERT_BUCKET_MISSING, slo.name)
        out.append(ctx.alert(key, partial(bucket_missing_alert, service, slo)))
    return out


def rule_groups(
    service: Service, templates: Templates, ctx: alerts.Context | None = None
) -> dict[str, Any]:
    """The whole rules.yaml document of one service, as data (`ctx`: the service's rendering
    context when the caller shares one)."""
    ctx = ctx if ctx is not None else alerts.context(service, templates)
    groups: list[dict[str, Any]] = []
    for slo in service.slos:
        rules = _recording_rules(service, slo)
        rules.extend(alerts.rule(ctx, alert) for alert in slo_alerts(service, slo, ctx))
        groups.append({"name": group_name(service, slo), "rules": rules})
    absent = ctx.alert(ALERT_ABSENT, lambda: absent_alert(service))
    groups.append({"name": group_name(service), "rules": [alerts.rule(ctx, absent)]})
    groups.append(resilience.group(ctx))
    return {"groups": groups}


def expressions(document: dict[str, Any]) -> list[str]:
    """Every PromQL expression of a rules document (for validation)."""
    return [rule["expr"] for group in document["groups"] for rule in group["rules"]]
