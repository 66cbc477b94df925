"""promtool unit tests (`rules.test.yaml`) proving the generated alerts behave.

For every SLO and every burn-rate row that can fire, one test group builds a synthetic history
in which *only that row* holds, and asserts the alert fires with its exact labels and annotations:

    phase A  (min(long, 6h)): healthy traffic, 100x the request rate of phase B, no errors
    phase B  (long + for + 5m + 3 evaluations): 1x rate with an error ratio of 1.5x the row's
             threshold, capped below the threshold of the next faster row of the same severity

Longer windows still see phase A's heavy healthy traffic, so their ratio (a ratio of summed
counts) stays far below their thresholds; faster rows need more than 1.5x. The alert must also
be silent at the end of phase A. Further groups assert: silence under healthy traffic whose error
ratio is half of the smallest threshold (over 3 days), no ratio series at all on zero traffic, no
alert across a counter reset, none for a service that is up but never called, and the
telemetry-absent alert when `obskit_build_info` vanishes. Every group but the last carries the
build-info series of a running service.

Counts are integers (1e6 requests a minute in phase B) so every sample is exact; assertions are
on alerts and on `count(...)` results. A firing alert is expected with its annotations as
Prometheus expands them, its value printed (`alerts.expected`): a burn scenario adds a few bad
requests when needed so that no printed value sits on a rounding edge, and a value that cannot be
predicted exactly (a window reaching into phase A) leaves the row untested, like a close call.
One more group: requests flowing without the latency threshold's bucket raise the guard alert.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from decimal import Decimal
from functools import partial
from typing import Any, Final

from obskit import semconv
from obskit.generator.model import (
    ABSENT_FOR,
    ALERT_ABSENT,
    ALERT_BUCKET_MISSING,
    ALERT_NAMES,
    BURN_RATE_ROWS,
    GUARD_FOR,
    LABEL_LE,
    LABEL_SERVICE,
    RATIO_WINDOWS,
    REC_ERROR_RATIO,
    SEVERITIES,
    SLO,
    BurnRateRow,
    Dependency,
    Duration,
    Service,
    Severity,
    format_decimal,
    format_le,
    hours,
    minutes,
)
from obskit.generator.render import alerts, promql
from obskit.generator.render.prometheus import (
    absent_alert,
    bucket_missing_alert,
    burn_alert,
    rows_of,
    rule_groups,
)
from obskit.generator.render.templates import Templates
from obskit.generator.selectors import equality_labels, example_labels

RATE: Final = 1_000_000
"""Requests per minute in the burn phase; integer counts keep every sample exact."""
HEAVY: Final = 100
"""Traffic multiplier of the healthy phase A."""
EVAL_INTERVAL: Final = minutes(15)
"""Coarse on purpose: days of history evaluate in about a second per test."""
SCRAPE_INTERVAL: Final = minutes(1)
DEFAULT_ROUTE: Final = "/"
OK_STATUS: Final = "200"
ERROR_STATUS: Final = "500"
METHOD: Final = "GET"
CLIENT_ERROR_TYPE: Final = "ConnectError"
"""`error_type` of synthetic outbound calls that got no answer."""
NUDGES: Final = 20
"""Extra bad requests a burn scenario may add so every value it shows prints unambiguously."""


@dataclass(frozen=True)
class Phase:
    minutes: int
    rate: int
    """Requests per minute."""
    bad: Decimal
    """Share of bad requests (5xx for availability, slow for latency)."""


def _labels(pairs: dict[str, str]) -> str:
    return "{" + ", ".join(f"{k}={promql.quote(v)}" for k, v in sorted(pairs.items())) + "}"


def _values(increments: list[tuple[int, int]]) -> str:
    """promtool expanding notation for a counter growing `per_minute` for `n` minutes each."""
    parts = []
    value = 0
    first = True
    for n, per_minute in increments:
        if n <= 0:
            continue
        if first:
            parts.append(f"{value}+{per_minute}x{n}")
            first = False
        else:
            parts.append(f"{value + per_minute}+{per_minute}x{n - 1}")
        value += per_minute * n
    return " ".join(parts)


def selector_labels(service: Service) -> dict[str, str]:
    """Labels the synthetic series carry so that the service selector matches them."""
    return example_labels(service.selector)


def _route(slo: SLO) -> str:
    return slo.routes[0] if slo.routes else DEFAULT_ROUTE


def _series(
    service: Service,
    route: str,
    phases: list[Phase],
    *,
    errors: bool,
    slow: frozenset[float],
) -> list[dict[str, str]]:
    """Input series of one route: request counts by status and the latency buckets.

    `errors`: the phase's bad share answers 5xx; `slow`: thresholds the bad share misses.
    """
    base = {
        **selector_labels(service),
        semconv.LABEL_METHOD: METHOD,
        semconv.LABEL_ROUTE: route,
    }

    bad = _bad_count
    ok = [(p.minutes, p.rate - (bad(p) if errors else 0)) for p in phases]
    failed = [(p.minutes, bad(p) if errors else 0) for p in phases]
    out = [
        {
            "series": promql.SERVER_COUNT + _labels({**base, semconv.LABEL_STATUS: status}),
            "values": _values(increments),
        }
        for status, increments in ((OK_STATUS, ok), (ERROR_STATUS, failed))
    ]
    thresholds = sorted(
        {s.threshold for s in service.slos if s.threshold is not None and _matches(s, route)}
    )
    for value in thresholds:
        fast_ok = [
            (p.minutes, ok_count - (bad(p) if value in slow else 0))
            for p, (_, ok_count) in zip(phases, ok, strict=True)
        ]
        for status, increments in ((OK_STATUS, fast_ok), (ERROR_STATUS, failed)):
            labels = {**base, semconv.LABEL_STATUS: status, LABEL_LE: format_le(value)}
            out.append(
                {"series": promql.SERVER_BUCKET + _labels(labels), "values": _values(increments)}
            )
    return out


def _matches(slo: SLO, route: str) -> bool:
    return not slo.routes or route in slo.routes


Subject = tuple[str, str]
"""What one scenario's synthetic series are about: ("http", route) or ("client", dependency)."""


def _subject(slo: SLO) -> Subject:
    if slo.dependency is not None:
        return ("client", slo.dependency.name)
    return ("http", _route(slo))


def _dependency(service: Service, name: str) -> Dependency:
    return next(d for d in service.dependencies if d.name == name)


def _subject_series(
    service: Service, subject: Subject, phases: list[Phase], *, bad: bool, slow: frozenset[float]
) -> list[dict[str, str]]:
    family, key = subject
    if family == "client":
        return _client_series(service, _dependency(service, key), phases, bad=bad)
    return _series(service, key, phases, errors=bad, slow=slow)


def _client_series(
    service: Service, dependency: Dependency, phases: list[Phase], *, bad: bool
) -> list[dict[str, str]]:
    """Calls to one dependency: the bad share split between 5xx answers, calls with no answer
    (`error_type`) and, when the dependency lists breakers, rejections by its first breaker."""
    base = {
        **selector_labels(service),
        semconv.LABEL_METHOD: METHOD,
        semconv.LABEL_SERVER_ADDRESS: dependency.address,
    }
    shares: list[tuple[int, int, int, int]] = []  # ok, 5xx, no answer, rejected (per minute)
    for p in phases:
        n = _bad_count(p) if bad else 0
        rejected = n // 3 if dependency.breakers else 0
        no_answer = (n - rejected) // 2
        shares.append((p.rate - n, n - rejected - no_answer, no_answer, rejected))
    kinds = (
        (promql.CLIENT_COUNT, {**base, semconv.LABEL_STATUS: OK_STATUS}),
        (promql.CLIENT_COUNT, {**base, semconv.LABEL_STATUS: ERROR_STATUS}),
        (promql.CLIENT_COUNT, {**base, semconv.LABEL_ERROR_TYPE: CLIENT_ERROR_TYPE}),
    )
    out = [
        {
            "series": metric + _labels(labels),
            "values": _values(
                [(p.minutes, share[i]) for p, share in zip(phases, shares, strict=True)]
            ),
        }
        for i, (metric, labels) in enumerate(kinds)
    ]
    if dependency.breakers:
        labels = {
            **selector_labels(service),
            semconv.LABEL_BREAKER: dependency.breakers[0],
            semconv.LABEL_OUTCOME: semconv.BREAKER_REJECTED,
        }
        out.append(
            {
                "series": semconv.BREAKER_CALLS + _labels(labels),
                "values": _values(
                    [(p.minutes, share[3]) for p, share in zip(phases, shares, strict=True)]
                ),
            }
        )
    return out


def _burn_ratio(slo: SLO, row: BurnRateRow) -> Decimal:
    """1.5x the row's threshold, below the next faster row of its severity, below 100%."""
    low = slo.limit(row)
    faster = [
        slo.limit(r) for r in BURN_RATE_ROWS if r.severity == row.severity and r.long < row.long
    ]
    high = min([Decimal(1), *faster])
    return min(low * Decimal("1.5"), (low + high) / 2)


def _bad_count(phase: Phase) -> int:
    return int((phase.rate * phase.bad).to_integral_value())


def _window_ratio(phases: list[Phase], end: int, window: Duration) -> Decimal | None:
    """Error ratio over (end - window, end] minutes of a phased history, as summed counts."""
    start = end - window.seconds // 60
    errors = total = 0
    t = 0
    for phase in phases:
        overlap = min(t + phase.minutes, end) - max(t, start)
        if overlap > 0:
            total += phase.rate * overlap
            errors += _bad_count(phase) * overlap
        t += phase.minutes
    return Decimal(errors) / Decimal(total) if total else None


def _fires_at(slo: SLO, severity: Severity, phases: list[Phase], at: int) -> bool:
    for row in rows_of(slo, severity):
        limit = slo.limit(row)
        ratios = [_window_ratio(phases, at, w) for w in (row.long, row.short)]
        if all(r is not None and r > limit for r in ratios):
            return True
    return False


def _expected_firing(
    service: Service, slo: SLO, severity: Severity, phases: list[Phase], end: int
) -> bool | None:
    """Whether `slo` fires at `end` by the numbers; None when too close to call."""
    step = EVAL_INTERVAL.seconds // 60
    since = end - service.policy(severity).for_.seconds // 60 - 2 * step - 5
    now, before = _fires_at(slo, severity, phases, end), _fires_at(slo, severity, phases, since)
    return now if now == before else None


def _shares_series(slo: SLO, other: SLO, subject: Subject) -> bool | None:
    """`other` counts the same bad events as `slo` in a scenario on `subject` (None: some of
    them, so its ratio is not `slo`'s and the scenario cannot say whether it fires)."""
    family, key = subject
    if family == "client" or other.kind == "client":
        if family != "client" or other.dependency is None or slo.dependency is None:
            return False
        regex = promql.dependency_regex([other.dependency.address])
        if not re.fullmatch(f"(?:{regex})", slo.dependency.address):
            return False
        return True if other.dependency.breakers == slo.dependency.breakers else None
    return (
        other.kind == slo.kind
        and other.threshold == slo.threshold
        and (not other.routes or key in other.routes)
    )


@dataclass(frozen=True)
class Scenario:
    phases: list[Phase]
    healthy: int
    end: int
    """Minutes: end of the healthy phase, and the time of the firing assertion."""
    firing: list[tuple[SLO, Decimal]]
    """Every SLO expected to fire at `end`, with the burn rate its alert shows then."""


def _shown_burn(slo: SLO, severity: Severity, phases: list[Phase], end: int) -> Decimal | None:
    """The burn rate `slo`'s alert shows at `end`: the long window of its first row that holds
    (`or` keeps the left side). None unless that window (plus the 5m rate range) lies inside
    the burn phase, where every recorded ratio is exactly the phase's bad share."""
    healthy = phases[0].minutes
    for row in rows_of(slo, severity):
        ratios = [_window_ratio(phases, end, w) for w in (row.long, row.short)]
        if all(r is not None and r > slo.limit(row) for r in ratios):
            if end - row.long.seconds // 60 - 5 < healthy:
                return None
            return Decimal(_bad_count(phases[1])) / Decimal(phases[1].rate) / slo.budget
    return None


def _burn_scenario(service: Service, slo: SLO, row: BurnRateRow) -> Scenario | None:
    """The row's history, and every SLO expected to fire in it with the value it shows.

    None when another SLO counting the same series is too close to its own threshold to call,
    or when a shown value cannot be predicted exactly enough to print it as Prometheus will.
    """
    policy = service.policy(row.severity)
    healthy = min(row.long, hours(6)).seconds // 60
    step = EVAL_INTERVAL.seconds // 60
    # The long window must leave phase A (+5m of rate range), then stay true for `for` plus
    # two evaluations; rounded up to whole evaluation steps.
    burn = (row.long.seconds + policy.for_.seconds) // 60 + 5 + 3 * step
    burn = -(-burn // step) * step
    subject = _subject(slo)
    end = healthy + burn
    for nudge in range(NUDGES):
        ratio = _burn_ratio(slo, row) + Decimal(nudge) / RATE
        phases = [Phase(healthy, RATE * HEAVY, Decimal(0)), Phase(burn, RATE, ratio)]
        firing = [slo]
        for other in service.slos:
            if other is slo:
                continue
            shares = _shares_series(slo, other, subject)
            if shares is None:
                return None
            if not shares:
                continue
            expected = _expected_firing(service, other, row.severity, phases, end)
            if expected is None:
                return None
            if expected:
                firing.append(other)
        shown = [_shown_burn(s, row.severity, phases, end) for s in firing]
        values = [v for v in shown if v is not None]
        if len(values) < len(shown):
            return None
        if all(alerts.stable(alerts.Value.BURN_RATE, float(v)) for v in values):
            return Scenario(phases, healthy, end, list(zip(firing, values, strict=True)))
    return None


def untested_rows(service: Service) -> list[tuple[SLO, BurnRateRow]]:
    """Burn-rate rows that get no promtool unit test (see `_burn_scenario`), for a note."""
    return [
        (slo, row)
        for slo in service.slos
        for severity in SEVERITIES
        for row in rows_of(slo, severity)
        if _burn_scenario(service, slo, row) is None
    ]


def _burn_test(ctx: alerts.Context, slo: SLO, row: BurnRateRow) -> dict[str, Any] | None:
    """The row's unit test, or None when its scenario is too close to call."""
    service = ctx.service
    scenario = _burn_scenario(service, slo, row)
    if scenario is None:
        return None
    alertname = ALERT_NAMES[row.severity]
    burning = Decimal(_bad_count(scenario.phases[1])) / RATE / slo.budget
    return {
        "name": (
            f"{service.name}/{slo.name}: {row.severity} row {row.long}/{row.short} fires at "
            f"{format_decimal(burning)}x the budget rate, silent before"
        ),
        "interval": str(SCRAPE_INTERVAL),
        "input_series": _subject_series(
            service,
            _subject(slo),
            scenario.phases,
            bad=slo.kind != "latency",
            slow=frozenset({slo.threshold}) if slo.threshold is not None else frozenset(),
        ),
        "alert_rule_test": [
            {"eval_time": f"{scenario.healthy}m", "alertname": alertname, "exp_alerts": []},
            {
                "eval_time": f"{scenario.end}m",
                "alertname": alertname,
                "exp_alerts": [
                    alerts.expected(
                        ctx,
                        ctx.alert(
                            (ALERT_NAMES[row.severity], s.name),
                            partial(burn_alert, service, s, row.severity),
                        ),
                        float(value),
                    )
                    for s, value in sorted(scenario.firing, key=lambda pair: pair[0].name)
                ],
            },
        ],
    }


def _healthy_phases(service: Service, total: Duration) -> tuple[list[Phase], Decimal]:
    smallest = min((s.limit(r) for s in service.slos for r in BURN_RATE_ROWS), default=Decimal(0))
    ratio = smallest / 2
    return [Phase(total.seconds // 60, RATE, ratio)], ratio


def _all_subjects_series(
    service: Service, phases: list[Phase], *, bad: bool
) -> list[dict[str, str]]:
    """Series for every SLO's route and dependency; when `bad`, the bad share is both 5xx and
    slow (and failed or rejected calls)."""
    thresholds = frozenset(s.threshold for s in service.slos if s.threshold is not None)
    subjects = sorted({_subject(s) for s in service.slos} or {("http", DEFAULT_ROUTE)})
    out: list[dict[str, str]] = []
    for subject in subjects:
        out.extend(
            _subject_series(
                service, subject, phases, bad=bad, slow=thresholds if bad else frozenset()
            )
        )
    return out


def _silent(eval_times: list[str], names: list[str]) -> list[dict[str, Any]]:
    """Every alert of the service (`names`) asserted silent at each of `eval_times`."""
    return [
        {"eval_time": t, "alertname": name, "exp_alerts": []} for t in eval_times for name in names
    ]


def _healthy_test(service: Service, names: list[str]) -> dict[str, Any]:
    total = Duration(3 * 86400 + 3600)
    phases, ratio = _healthy_phases(service, total)
    return {
        "name": (
            f"{service.name}: healthy traffic ({float(ratio * 100):.3g}% bad) "
            "raises no alert for 3 days"
        ),
        "interval": str(SCRAPE_INTERVAL),
        "input_series": _all_subjects_series(service, phases, bad=True),
        "alert_rule_test": _silent(["1h", "1d", f"{total.seconds // 60}m"], names),
    }


def _zero_traffic_test(service: Service, names: list[str]) -> dict[str, Any]:
    phases = [Phase(60, 0, Decimal(0))]
    return {
        "name": f"{service.name}: no traffic means no error-ratio series and no alert",
        "interval": str(SCRAPE_INTERVAL),
        "input_series": _all_subjects_series(service, phases, bad=False),
        "alert_rule_test": _silent(["30m", "1h"], names),
        "promql_expr_test": [
            {
                "expr": f"{REC_ERROR_RATIO}{{{LABEL_SERVICE}={promql.quote(service.name)}}}",
                "eval_time": "1h",
                "exp_samples": [],
            }
        ],
    }


def _reset_test(service: Service, names: list[str]) -> dict[str, Any]:
    """Healthy traffic whose counters restart from zero halfway: ratios stay sane, no alert."""
    phases, _ = _healthy_phases(service, hours(1))
    before = _all_subjects_series(service, phases, bad=True)
    series = []
    for entry in before:
        series.append(
            {"series": entry["series"], "values": entry["values"] + " " + entry["values"]}
        )
    checks = []
    for slo in service.slos:
        window = hours(1)
        limit = min(slo.limit(r) for r in BURN_RATE_ROWS)
        ratio = promql.error_ratio(service, slo, window)
        checks.append(
            {
                "expr": f"count({ratio} < {format_decimal(limit)})",
                "eval_time": "2h",
                "exp_samples": [{"labels": "{}", "value": 1}],
            }
        )
    test: dict[str, Any] = {
        "name": f"{service.name}: a counter reset (restart) keeps ratios sane and raises no alert",
        "interval": str(SCRAPE_INTERVAL),
        "input_series": series,
        "alert_rule_test": _silent(["1h", "2h"], names),
    }
    if checks:
        test["promql_expr_test"] = checks
    return test


def _open_breaker_test(service: Service, slo: SLO) -> dict[str, Any]:
    """A client SLO whose breaker has been open since the process started (no client series at
    all, only rejections) reads a 100% error ratio."""
    assert slo.dependency is not None
    labels = {
        **selector_labels(service),
        semconv.LABEL_BREAKER: slo.dependency.breakers[0],
        semconv.LABEL_OUTCOME: semconv.BREAKER_REJECTED,
    }
    ratio = promql.error_ratio(service, slo, RATIO_WINDOWS[0])
    return {
        "name": f"{service.name}/{slo.name}: a breaker open from the start reads 100% errors",
        "interval": str(SCRAPE_INTERVAL),
        "input_series": [
            {"series": semconv.BREAKER_CALLS + _labels(labels), "values": _values([(60, 10)])}
        ],
        "promql_expr_test": [
            {
                "expr": f"count({ratio} == 1)",
                "eval_time": "1h",
                "exp_samples": [{"labels": "{}", "value": 1}],
            }
        ],
    }


def _absent_test(ctx: alerts.Context) -> dict[str, Any]:
    service = ctx.service
    wait = ABSENT_FOR.seconds // 60 + 2 * EVAL_INTERVAL.seconds // 60
    return {
        "name": f"{service.name}: no obskit series at all raises {ALERT_ABSENT}",
        "interval": str(SCRAPE_INTERVAL),
        "input_series": [],
        "alert_rule_test": [
            {
                "eval_time": f"{wait}m",
                "alertname": ALERT_ABSENT,
                "exp_alerts": [
                    alerts.expected(
                        ctx,
                        ctx.alert(ALERT_ABSENT, lambda: absent_alert(service)),
                        extra_labels=equality_labels(service.selector),
                    )
                ],
            }
        ],
    }


def _bucket_missing_test(ctx: alerts.Context) -> dict[str, Any] | None:
    """Requests flow on every latency SLO's route, but the histogram has only the `+Inf` bucket
    (a runtime configured with other buckets): each latency SLO's guard alert fires, showing
    its request rate."""
    service = ctx.service
    latency = [s for s in service.slos if s.kind == "latency"]
    if not latency:
        return None
    step = EVAL_INTERVAL.seconds // 60
    end = 5 + GUARD_FOR.seconds // 60 + 2 * step
    end = -(-end // step) * step
    routes = sorted({_route(s) for s in latency})
    series = []
    for route in routes:
        base = {
            **selector_labels(service),
            semconv.LABEL_METHOD: METHOD,
            semconv.LABEL_ROUTE: route,
            semconv.LABEL_STATUS: OK_STATUS,
        }
        values = _values([(end, RATE)])
        series.append({"series": promql.SERVER_COUNT + _labels(base), "values": values})
        inf = {**base, LABEL_LE: format_le(float("inf"))}
        series.append({"series": promql.SERVER_BUCKET + _labels(inf), "values": values})
    expected = []
    for slo in sorted(latency, key=lambda s: s.name):
        flowing = sum(1 for route in routes if _matches(slo, route)) * RATE / 60
        alert = ctx.alert(
            (ALERT_BUCKET_MISSING, slo.name), partial(bucket_missing_alert, service, slo)
        )
        expected.append(alerts.expected(ctx, alert, flowing))
    return {
        "name": (
            f"{service.name}: requests flow but no histogram bucket at the latency thresholds "
            f"raises {ALERT_BUCKET_MISSING}"
        ),
        "interval": str(SCRAPE_INTERVAL),
        "input_series": series,
        "alert_rule_test": [
            {"eval_time": f"{step}m", "alertname": ALERT_BUCKET_MISSING, "exp_alerts": []},
            {"eval_time": f"{end}m", "alertname": ALERT_BUCKET_MISSING, "exp_alerts": expected},
        ],
    }


def _build_info(service: Service, test: dict[str, Any], minutes_: int) -> dict[str, Any]:
    """Add the always-present `obskit_build_info` series: the service is up and scraped."""
    series = {
        "series": semconv.BUILD_INFO + _labels(selector_labels(service)),
        "values": f"1+0x{minutes_}",
    }
    return {**test, "input_series": [*test["input_series"], series]}


def _idle_test(service: Service, names: list[str]) -> dict[str, Any]:
    return {
        "name": f"{service.name}: up but never called (no request series) raises no alert",
        "interval": str(SCRAPE_INTERVAL),
        "input_series": [],
        "alert_rule_test": _silent(["30m", "1h"], names),
    }


def _last_minute(test: dict[str, Any]) -> int:
    units = {"m": 1, "h": 60, "d": 1440}
    return max(
        int(check["eval_time"][:-1]) * units[check["eval_time"][-1]]
        for key in ("alert_rule_test", "promql_expr_test")
        for check in test.get(key, [])
    )


def rule_tests(
    service: Service,
    templates: Templates,
    rules_file: str,
    rules: dict[str, Any] | None = None,
    ctx: alerts.Context | None = None,
) -> dict[str, Any]:
    """The rules.test.yaml document of one service, as data (`rules`: its rules document, and
    `ctx` its rendering context, when already built)."""
    ctx = ctx if ctx is not None else alerts.context(service, templates)
    document = rules if rules is not None else rule_groups(service, templates, ctx)
    names = sorted({r["alert"] for g in document["groups"] for r in g["rules"] if "alert" in r})
    tests: list[dict[str, Any]] = []
    for slo in service.slos:
        for severity in SEVERITIES:
            for row in rows_of(slo, severity):
                test = _burn_test(ctx, slo, row)
                if test is not None:
                    tests.append(test)
    tests.append(_healthy_test(service, names))
    tests.append(_zero_traffic_test(service, names))
    tests.append(_idle_test(service, names))
    tests.append(_reset_test(service, names))
    tests.extend(
        _open_breaker_test(service, slo)
        for slo in service.slos
        if slo.dependency is not None and slo.dependency.breakers
    )
    bucket_test = _bucket_missing_test(ctx)
    if bucket_test is not None:
        tests.append(bucket_test)
    tests = [_build_info(service, t, _last_minute(t)) for t in tests]
    tests.append(_absent_test(ctx))
    return {
        "rule_files": [rules_file],
        "evaluation_interval": str(EVAL_INTERVAL),
        "tests": tests,
    }
