"""PromQL building blocks shared by the rule and dashboard renderers.

Every metric and label name comes from `obskit.semconv` (what the runtime emits) or from
`obskit.generator.model` (what the generated recording rules produce). Strings are quoted through
`quote()`; route templates become regex alternations through `route_regex()`, so `{order_id}`
in a route never turns into a regex quantifier. Prometheus anchors every `=~` matcher
(`^(?:...)$`), so an alternation of escaped routes matches exactly those routes.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Final

from obskit import semconv
from obskit.generator.model import (
    LABEL_LE,
    LABEL_SERVICE,
    LABEL_SLO,
    LABEL_WINDOW,
    REC_ERROR_RATIO,
    SLO,
    Dependency,
    Duration,
    Service,
    format_le,
)

_RE2_SPECIAL: Final = frozenset("\\.+*?()|[]{}^$")

SERVER_COUNT: Final = semconv.HTTP_SERVER_DURATION + semconv.COUNT
SERVER_BUCKET: Final = semconv.HTTP_SERVER_DURATION + semconv.BUCKET
CLIENT_COUNT: Final = semconv.HTTP_CLIENT_DURATION + semconv.COUNT
CLIENT_BUCKET: Final = semconv.HTTP_CLIENT_DURATION + semconv.BUCKET
RATE: Final = "5m"
"""Range of every `rate()` the rules and the dashboard compute."""
SERVER_ERROR_STATUS: Final = "5.."
"""Regex on `http_response_status_code` for server errors."""


def quote(value: str) -> str:
    """A PromQL double-quoted string literal holding exactly `value`."""
    escaped = value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")
    return f'"{escaped}"'


def regex_escape(value: str) -> str:
    """Escape RE2 metacharacters so `value` matches only itself."""
    return "".join(f"\\{c}" if c in _RE2_SPECIAL else c for c in value)


def route_regex(routes: Iterable[str]) -> str:
    """Alternation of escaped route templates (anchored by Prometheus)."""
    return "|".join(regex_escape(r) for r in routes)


def dependency_regex(dependencies: Iterable[str]) -> str:
    """`host:port` matches itself; a bare `host` matches that host on any port."""
    parts = []
    for dep in dependencies:
        escaped = regex_escape(dep)
        parts.append(escaped if ":" in dep.lstrip("[").split("]")[-1] else f"{escaped}(:[0-9]+)?")
    return "|".join(parts)


def selector(*matchers: str) -> str:
    return "{" + ", ".join(m for m in matchers if m) + "}"


def eq(label: str, value: str) -> str:
    return f"{label}={quote(value)}"


def match(label: str, regex: str) -> str:
    return f"{label}=~{quote(regex)}"


def slo_matchers(service: Service, slo: SLO) -> tuple[str, ...]:
    """The service selector plus the SLO's route filter."""
    if slo.routes:
        return (service.selector, match(semconv.LABEL_ROUTE, route_regex(slo.routes)))
    return (service.selector,)


def recorded(name: str, service: Service, slo: SLO, window: Duration | None = None) -> str:
    """Selector of one recorded series of `slo` (optionally one window of it)."""
    matchers = [eq(LABEL_SERVICE, service.name), eq(LABEL_SLO, slo.name)]
    if window is not None:
        matchers.append(eq(LABEL_WINDOW, str(window)))
    return name + selector(*matchers)


def error_ratio(service: Service, slo: SLO, window: Duration) -> str:
    return recorded(REC_ERROR_RATIO, service, slo, window)


PROCESS_COUNT: Final = semconv.MESSAGING_PROCESS_DURATION + semconv.COUNT
PROCESS_BUCKET: Final = semconv.MESSAGING_PROCESS_DURATION + semconv.BUCKET
WAIT_COUNT: Final = semconv.MESSAGING_QUEUE_WAIT + semconv.COUNT
WAIT_BUCKET: Final = semconv.MESSAGING_QUEUE_WAIT + semconv.BUCKET
COUNTED_OUTCOMES: Final = f"{semconv.PROCESS_SUCCESS}|{semconv.PROCESS_FAILURE}"
"""A processing SLI counts successes and failures; retries and duplicates on neither side."""


def task_matchers(service: Service, slo: SLO) -> tuple[str, ...]:
    """The service selector plus the SLO's task and queue filters."""
    matchers: tuple[str, ...] = (service.selector,)
    if slo.tasks:
        matchers += (match(semconv.LABEL_TASK, alternation(slo.tasks)),)
    if slo.queues:
        matchers += (match(semconv.LABEL_DESTINATION, alternation(slo.queues)),)
    return matchers


def sli_totals(service: Service, slo: SLO) -> str:
    """Rate of every event the SLI counts (requests, calls to a dependency, processed messages)."""
    if slo.kind == "client":
        calls, rejected = _client_parts(service, slo)
        return (
            f"{calls} or vector(0)" if rejected is None else f"({calls} or vector(0)) + {rejected}"
        )
    if slo.kind == "processing":
        outcomes = match(semconv.LABEL_OUTCOME, COUNTED_OUTCOMES)
        sel = selector(*task_matchers(service, slo), outcomes)
        return f"sum(rate({PROCESS_COUNT}{sel}[{RATE}]))"
    if slo.kind == "freshness":
        return f"sum(rate({WAIT_COUNT}{selector(*task_matchers(service, slo))}[{RATE}]))"
    sel = selector(*slo_matchers(service, slo))
    return f"sum(rate({SERVER_COUNT}{sel}[{RATE}]))"


def sli_errors(service: Service, slo: SLO) -> str:
    """Rate of bad events: 5xx (availability), slower than the threshold (latency), a call to a
    dependency that got a 5xx, no response, or a breaker's rejection (client), a message that
    failed for good (processing), or one that waited longer than the threshold (freshness).

    Every form returns 0, not nothing, while there is traffic and no error yet, so ratios and
    panels never go blank on a healthy service.
    """
    if slo.kind == "client":
        calls, rejected = _client_parts(service, slo)
        good = client_calls(service, slo, good=True)
        bad = f"({calls} or vector(0)) - ({good} or vector(0))"
        return bad if rejected is None else f"{bad} + {rejected}"
    total = sli_totals(service, slo)
    if slo.kind == "processing":
        failed = eq(semconv.LABEL_OUTCOME, semconv.PROCESS_FAILURE)
        sel = selector(*task_matchers(service, slo), failed)
        return f"sum(rate({PROCESS_COUNT}{sel}[{RATE}])) or 0 * {total}"
    if slo.kind == "freshness":
        assert slo.threshold is not None
        fresh = selector(*task_matchers(service, slo), eq(LABEL_LE, format_le(slo.threshold)))
        return f"{total} - sum(rate({WAIT_BUCKET}{fresh}[{RATE}]))"
    base = slo_matchers(service, slo)
    if slo.kind == "availability":
        sel = selector(*base, match(semconv.LABEL_STATUS, SERVER_ERROR_STATUS))
        return f"sum(rate({SERVER_COUNT}{sel}[{RATE}])) or 0 * {total}"
    assert slo.threshold is not None
    good_sel = selector(*base, eq(LABEL_LE, format_le(slo.threshold)))
    return f"{total} - sum(rate({SERVER_BUCKET}{good_sel}[{RATE}]))"


def client_matchers(
    service: Service, dependency: Dependency, *, good: bool = False
) -> tuple[str, ...]:
    """Outbound calls of the service to `dependency`; `good`: those answered below 500."""
    matchers: tuple[str, ...] = (
        service.selector,
        match(semconv.LABEL_SERVER_ADDRESS, dependency_regex([dependency.address])),
    )
    if good:
        matchers += (
            f"{semconv.LABEL_STATUS}!~{quote(SERVER_ERROR_STATUS)}",
            eq(semconv.LABEL_ERROR_TYPE, ""),
        )
    return matchers


def client_calls(service: Service, slo: SLO, *, good: bool = False) -> str:
    assert slo.dependency is not None
    sel = selector(*client_matchers(service, slo.dependency, good=good))
    return f"sum(rate({CLIENT_COUNT}{sel}[{RATE}]))"


def rejections(service: Service, breakers: Iterable[str]) -> str:
    """Rate of calls the named breakers rejected (failed fast while open)."""
    sel = selector(
        service.selector,
        match(semconv.LABEL_BREAKER, alternation(breakers)),
        eq(semconv.LABEL_OUTCOME, semconv.BREAKER_REJECTED),
    )
    return f"sum(rate({semconv.BREAKER_CALLS}{sel}[{RATE}]))"


def _client_parts(service: Service, slo: SLO) -> tuple[str, str | None]:
    """The client-histogram call rate, and `(rejections or vector(0))` when breakers are listed.

    Each part is `or vector(0)`-guarded where it is used: a breaker that has been open since the
    process started leaves no client series at all, and must still read as 100% errors."""
    assert slo.dependency is not None
    calls = client_calls(service, slo)
    if not slo.dependency.breakers:
        return calls, None
    return calls, f"({rejections(service, slo.dependency.breakers)} or vector(0))"


def alternation(values: Iterable[str]) -> str:
    """Regex matching exactly the given label values (anchored by Prometheus)."""
    return "|".join(regex_escape(v) for v in values)


def fmt_number(value: float) -> str:
    """A float literal for PromQL without exponent surprises (0.99, 14.4)."""
    text = repr(float(value))
    return text[:-2] if text.endswith(".0") else text
