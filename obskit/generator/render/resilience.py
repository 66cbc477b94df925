"""Alert rules that are not SLO burn rates: circuit breakers and retries (issue 9).

Every service gets them (the adapters emit the signals with no code change), in one group
`obskit-<service>-resilience`, one rule per alert and *scope*: each dependency that lists
breakers or operations is a scope with its own thresholds and a `dependency` label, and the rest
of the service's breakers and operations (those no dependency lists) is the last scope.

Under PROMETHEUS_MULTIPROC_DIR the breaker state gauge has one series per live process (a `pid`
label, `semconv.LABEL_PID`); counters are summed over processes. So, per scrape target:

- ObskitCircuitBreakerOpen: `max without (pid, state)` of the `closed` series is 0, i.e. no live
  process has the breaker closed (open and half_open both count as not closed), and the target's
  calls through it arrived within the last min(5m, for); held for `for`. An idle open breaker
  (pybreaker half-opens only on a call) is silent: with no calls the condition drops after
  min(5m, for), before `for` can elapse.
- ObskitCircuitBreakerFlapping: transitions into `open` over the window, divided by the number
  of live processes that report the breaker (1 without a gauge): a per-process count, so four
  workers that each open once in one blip are not flapping.
- ObskitRetryStorm: retries / logical calls over the window above the ratio, while the calls
  arrive at least at the minimum rate; held for `for`.

Each alert is then reduced `max by (<subject>)` over targets: one alert per breaker or operation.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Final

from obskit import semconv
from obskit.generator.model import (
    LABEL_DEPENDENCY,
    LABEL_SERVICE,
    Dependency,
    Duration,
    Labels,
    Resilience,
    Service,
    format_decimal,
)
from obskit.generator.render import alerts, grafana, promql

RESILIENCE_ALERTS: Final = (
    semconv.ALERT_BREAKER_OPEN,
    semconv.ALERT_BREAKER_FLAPPING,
    semconv.ALERT_RETRY_STORM,
)


@dataclass(frozen=True)
class Scope:
    """Breakers and operations that share thresholds: one dependency's, or the service's rest."""

    resilience: Resilience
    dependency: Dependency | None
    breakers: str | None
    """Matcher on `breaker` ("" for every breaker), or None: this scope has no breaker alerts."""
    operations: str | None
    """Matcher on `operation` ("" for every operation), or None: no retry alert."""


def _only(label: str, values: tuple[str, ...]) -> str | None:
    return promql.match(label, promql.alternation(values)) if values else None


def _except(label: str, values: tuple[str, ...]) -> str:
    return f"{label}!~{promql.quote(promql.alternation(values))}" if values else ""


def scopes(service: Service) -> list[Scope]:
    """Each dependency that lists breakers or operations, then the rest of the service."""
    out = [
        Scope(
            resilience=dep.resilience,
            dependency=dep,
            breakers=_only(semconv.LABEL_BREAKER, dep.breakers),
            operations=_only(semconv.LABEL_OPERATION, dep.operations),
        )
        for dep in service.dependencies
        if dep.resilience is not None
    ]
    out.append(
        Scope(
            resilience=service.resilience,
            dependency=None,
            breakers=_except(semconv.LABEL_BREAKER, service.listed_breakers),
            operations=_except(semconv.LABEL_OPERATION, service.listed_operations),
        )
    )
    return out


def _sel(service: Service, *matchers: str | None) -> str:
    return promql.selector(service.selector, *(m for m in matchers if m))


def breaker_open_expr(service: Service, scope: Scope) -> str:
    r = scope.resilience
    closed = _sel(service, scope.breakers, promql.eq(semconv.LABEL_STATE, semconv.STATE_CLOSED))
    calls = _sel(service, scope.breakers)
    return (
        f"max by ({semconv.LABEL_BREAKER}) (\n"
        f"  (max without ({semconv.LABEL_PID}, {semconv.LABEL_STATE}) "
        f"({semconv.BREAKER_STATE}{closed}) == 0)\n"
        "  and\n"
        f"  (sum without ({semconv.LABEL_OUTCOME}) "
        f"(rate({semconv.BREAKER_CALLS}{calls}[{r.calls_window}])) > 0)\n"
        ")"
    )


def flapping_expr(service: Service, scope: Scope) -> str:
    r = scope.resilience
    opened = _sel(service, scope.breakers, promql.eq(semconv.LABEL_STATE, semconv.STATE_OPEN))
    closed = _sel(service, scope.breakers, promql.eq(semconv.LABEL_STATE, semconv.STATE_CLOSED))
    opens = (
        f"sum without ({semconv.LABEL_STATE}) "
        f"(increase({semconv.BREAKER_TRANSITIONS}{opened}[{r.flapping_window}]))"
    )
    processes = (
        f"count without ({semconv.LABEL_PID}, {semconv.LABEL_STATE}) "
        f"({semconv.BREAKER_STATE}{closed})"
    )
    return (
        f"max by ({semconv.LABEL_BREAKER}) (\n"
        f"  {opens}\n"
        "  /\n"
        f"  ({processes} or 0 * {opens} + 1)\n"
        f") >= {r.flapping_transitions}"
    )


def retry_storm_expr(service: Service, scope: Scope) -> str:
    r = scope.resilience
    sel = _sel(service, scope.operations)
    by = f"sum by ({semconv.LABEL_OPERATION})"
    calls = f"{by} (rate({semconv.RETRY_CALLS}{sel}[{r.retry_window}]))"
    retries = f"{by} (rate({semconv.RETRIES}{sel}[{r.retry_window}]))"
    return (
        f"({retries}\n/\n{calls}) > {format_decimal(r.retry_ratio)}\n"
        f"and on ({semconv.LABEL_OPERATION})\n"
        f"{calls} >= {format_decimal(r.retry_min_call_rate)}"
    )


def alert_labels(service: Service, scope: Scope, alert: str) -> dict[str, str]:
    r = scope.resilience
    by_alert: dict[str, Labels] = {
        semconv.ALERT_BREAKER_OPEN: r.breaker_open_labels,
        semconv.ALERT_BREAKER_FLAPPING: r.flapping_labels,
        semconv.ALERT_RETRY_STORM: r.retry_storm_labels,
    }
    labels = {**dict(by_alert[alert]), LABEL_SERVICE: service.name}
    if scope.dependency is not None:
        labels[LABEL_DEPENDENCY] = scope.dependency.name
    return labels


def subject_label(alert: str) -> str:
    return semconv.LABEL_OPERATION if alert == semconv.ALERT_RETRY_STORM else semconv.LABEL_BREAKER


def _panel(ctx: alerts.Context, key: str) -> str | None:
    """The Resilience panel an alert opens, when the dashboard has it (else its top)."""
    return key if key in ctx.panels else None


def breaker_open_alert(ctx: alerts.Context, scope: Scope) -> alerts.Alert:
    service, r = ctx.service, scope.resilience
    calls_to = f" (calls to {scope.dependency.name})" if scope.dependency is not None else ""
    name = semconv.ALERT_BREAKER_OPEN
    return alerts.Alert(
        name=name,
        expr=breaker_open_expr(service, scope),
        for_=r.breaker_open_for,
        labels=alert_labels(service, scope, name),
        summary=f"{service.name}: circuit breaker {alerts.SUBJECT} open for {r.breaker_open_for}",
        description=(
            f"Circuit breaker {alerts.SUBJECT}{calls_to} of {service.name} has not been closed "
            f"(open or half-open) for {r.breaker_open_for} while calls kept arriving: those "
            "calls fail fast."
        ),
        panel=_panel(ctx, grafana.RESILIENCE_PANELS["breakers"]),
        subject=semconv.LABEL_BREAKER,
    )


def flapping_alert(ctx: alerts.Context, scope: Scope) -> alerts.Alert:
    service, r = ctx.service, scope.resilience
    calls_to = f" (calls to {scope.dependency.name})" if scope.dependency is not None else ""
    name = semconv.ALERT_BREAKER_FLAPPING
    return alerts.Alert(
        name=name,
        expr=flapping_expr(service, scope),
        for_=Duration(0),
        labels=alert_labels(service, scope, name),
        summary=f"{service.name}: circuit breaker {alerts.SUBJECT} is flapping",
        description=(
            f"Circuit breaker {alerts.SUBJECT}{calls_to} of {service.name} opened at least "
            f"{r.flapping_transitions} times in {r.flapping_window} (per process): the calls it "
            "protects keep failing intermittently."
        ),
        panel=_panel(ctx, grafana.RESILIENCE_PANELS["breakers"]),
        subject=semconv.LABEL_BREAKER,
    )


def retry_storm_alert(ctx: alerts.Context, scope: Scope) -> alerts.Alert:
    service, r = ctx.service, scope.resilience
    calls_to = f" (calls to {scope.dependency.name})" if scope.dependency is not None else ""
    name = semconv.ALERT_RETRY_STORM
    return alerts.Alert(
        name=name,
        expr=retry_storm_expr(service, scope),
        for_=r.retry_for,
        labels=alert_labels(service, scope, name),
        summary=(
            f"{service.name}: retry storm in {alerts.SUBJECT} (retries at {alerts.VALUE} of calls)"
        ),
        description=(
            f"{alerts.SUBJECT}{calls_to} in {service.name} schedules retries at {alerts.VALUE} "
            f"of its calls over {r.retry_window} (threshold {format_decimal(r.retry_ratio * 100)}%,"
            f" at {format_decimal(r.retry_min_call_rate)} calls/s or more): retries multiply the "
            "load on a struggling dependency."
        ),
        value=alerts.Value.RATIO,
        panel=_panel(ctx, grafana.RESILIENCE_PANELS["retries"]),
        subject=semconv.LABEL_OPERATION,
    )


def scope_alerts(ctx: alerts.Context, scope: Scope) -> list[alerts.Alert]:
    """The alerts of one scope, in rule order."""
    out: list[alerts.Alert] = []
    if scope.breakers is not None:
        out += [breaker_open_alert(ctx, scope), flapping_alert(ctx, scope)]
    if scope.operations is not None:
        out.append(retry_storm_alert(ctx, scope))
    return out


def group(ctx: alerts.Context) -> dict[str, Any]:
    """The `obskit-<service>-resilience` rule group."""
    service = ctx.service
    rules = [alerts.rule(ctx, a) for scope in scopes(service) for a in scope_alerts(ctx, scope)]
    return {"name": f"obskit-{service.name}-resilience", "rules": rules}
