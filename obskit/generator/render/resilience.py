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
    Labels,
    Resilience,
    Service,
    format_decimal,
)
from obskit.generator.render import promql
from obskit.generator.render.prometheus import render_annotations
from obskit.generator.render.templates import Templates

RESILIENCE_ALERTS: Final = (
    semconv.ALERT_BREAKER_OPEN,
    semconv.ALERT_BREAKER_FLAPPING,
    semconv.ALERT_RETRY_STORM,
)
RESILIENCE_TEMPLATE: Final = "resilience_annotations.yaml.j2"


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
    own = by_alert[alert]
    labels = {**dict(own), LABEL_SERVICE: service.name}
    if scope.dependency is not None:
        labels[LABEL_DEPENDENCY] = scope.dependency.name
    return labels


def subject_label(alert: str) -> str:
    return semconv.LABEL_OPERATION if alert == semconv.ALERT_RETRY_STORM else semconv.LABEL_BREAKER


def alert_annotations(
    templates: Templates, service: Service, scope: Scope, alert: str, subject: str | None = None
) -> dict[str, str]:
    """As written in rules.yaml (`subject` None: the label as a Go template), or as Prometheus
    shows them for the alert of `subject` (in the unit tests)."""
    r = scope.resilience
    label = subject_label(alert)
    return render_annotations(
        templates,
        RESILIENCE_TEMPLATE,
        service,
        expanded=subject is not None,
        alert=alert,
        subject=subject if subject is not None else "{{ $labels." + label + " }}",
        dependency=scope.dependency.name if scope.dependency is not None else None,
        thresholds={
            "for": str(r.breaker_open_for),
            "calls_window": str(r.calls_window),
            "transitions": r.flapping_transitions,
            "flapping_window": str(r.flapping_window),
            "ratio": format_decimal(r.retry_ratio),
            "retry_window": str(r.retry_window),
            "min_call_rate": format_decimal(r.retry_min_call_rate),
            "retry_for": str(r.retry_for),
        },
    )


def rules_of(service: Service, scope: Scope) -> list[tuple[str, str, str | None]]:
    """(alert, expression, `for`) of the scope's alerts."""
    r = scope.resilience
    out: list[tuple[str, str, str | None]] = []
    if scope.breakers is not None:
        out.append(
            (semconv.ALERT_BREAKER_OPEN, breaker_open_expr(service, scope), str(r.breaker_open_for))
        )
        out.append((semconv.ALERT_BREAKER_FLAPPING, flapping_expr(service, scope), None))
    if scope.operations is not None:
        out.append((semconv.ALERT_RETRY_STORM, retry_storm_expr(service, scope), str(r.retry_for)))
    return out


def resilience_group(service: Service, templates: Templates) -> dict[str, Any]:
    rules: list[dict[str, Any]] = []
    for scope in scopes(service):
        for alert, expr, for_ in rules_of(service, scope):
            rule: dict[str, Any] = {"alert": alert, "expr": expr}
            if for_ is not None:
                rule["for"] = for_
            rule["labels"] = alert_labels(service, scope, alert)
            rule["annotations"] = alert_annotations(templates, service, scope, alert)
            rules.append(rule)
    return {"name": f"obskit-{service.name}-resilience", "rules": rules}
