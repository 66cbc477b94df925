"""promtool unit tests (`alerts.test.yaml`) of the alerts that are not SLO burn rates.

They need a fine evaluation step (30s, less for thresholds in seconds), while the SLO tests of
`rules.test.yaml` span days at 15m, so they live in their own file (promtool evaluates a test
file at one interval). For every alert and scope (see `resilience.scopes`), synthetic histories
prove that it fires with its exact labels and annotations, and that it stays silent when healthy,
when idle and across a counter reset (a process restart); plus the edge cases the issue names:

- ObskitCircuitBreakerOpen: fires when the breaker cycles open/half-open while calls keep
  arriving; silent when it opens for less than `for`, when it is left open with no calls
  (pybreaker half-opens only on a call), and when one process has it open and idle while a
  sibling serves with it closed.
- ObskitCircuitBreakerFlapping: fires at `transitions` opens within the window; silent at one
  fewer, and when N processes each open once (a per-process count).
- ObskitRetryStorm: fires above the ratio; silent below it, and below the minimum call rate.

Every scenario carries `obskit_build_info` (the service is up). Values are integers per step;
assertions are on alerts only, never on formatted floats.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any, Final

from obskit import semconv
from obskit.generator.model import Duration, Service
from obskit.generator.render import alerts, background, promql, resilience
from obskit.generator.render.resilience import Scope
from obskit.generator.render.templates import Templates
from obskit.generator.selectors import example_labels

MAX_STEP: Final = 60
"""Seconds between samples and evaluations (less when a threshold window is below 4 minutes)."""
EXAMPLE_BREAKER: Final = "example-breaker"
EXAMPLE_OPERATION: Final = "example.module.retried_call"
EXAMPLE_OUTBOX: Final = "example-outbox"
EXAMPLE_QUEUE: Final = "celery"
EXAMPLE_PUBLISHER: Final = "example-publisher"
"""The job of the synthetic sent counter (ObskitTasksStalled reads any job's)."""
CHECKS: Final = 6
"""Evaluation times at which a quiet scenario asserts silence."""

Samples = list[int | None]
"""One value per step; None is a missing sample (the process is down)."""


def _step(service: Service) -> int:
    """The test step in seconds: at most 60s, at most a quarter of every range a rule reads (so
    each `rate()`/`increase()` holds at least four samples) and half of every `for` and age
    threshold (so "held for" is decided at two evaluations at least)."""
    limits = [MAX_STEP]
    for scope in resilience.scopes(service):
        r = scope.resilience
        limits += [r.calls_window.seconds // 4, r.retry_window.seconds // 4]
        limits += [r.breaker_open_for.seconds // 2, r.retry_for.seconds // 2]
        # `transitions` opens, each followed by a close, fit in the flapping window.
        limits.append(r.flapping_window.seconds // (2 * r.flapping_transitions + 2))
    b = service.background
    limits += [b.stalled_after.seconds // 4, b.stalled_for.seconds // 2]
    limits += [b.outbox_older_than.seconds // 2, b.outbox_for.seconds // 2]
    return max(1, min(limits))


def _at(seconds: int) -> str:
    """A promtool duration: 90 -> 1m30s, 600 -> 10m."""
    minutes_, rest = divmod(seconds, 60)
    if not rest:
        return f"{minutes_}m"
    return f"{minutes_}m{rest}s" if minutes_ else f"{rest}s"


def _compress(samples: Samples) -> str:
    """promtool's expanding notation: runs of a constant difference as `a+dxn`, gaps as `_xn`."""
    parts: list[str] = []
    i = 0
    while i < len(samples):
        value = samples[i]
        if value is None:
            j = i
            while j < len(samples) and samples[j] is None:
                j += 1
            parts.append("_" if j - i == 1 else f"_x{j - i}")
            i = j
            continue
        j = i + 1
        nxt = samples[j] if j < len(samples) else None
        if nxt is None:
            parts.append(str(value))
            i = j
            continue
        diff = nxt - value
        while j + 1 < len(samples):
            following = samples[j + 1]
            current = samples[j]
            if following is None or current is None or following - current != diff:
                break
            j += 1
        count = j - i
        if diff:
            parts.append(f"{value}{diff:+d}x{count}")
        else:
            parts.append(f"{value}x{count}")
        i = j + 1
    return " ".join(parts)


def _counter(increments: Sequence[int | None]) -> Samples:
    """Cumulative values of per-step increments; None: the process is down (the counter restarts
    from 0 after it)."""
    out: Samples = []
    value = 0
    for inc in increments:
        if inc is None:
            out.append(None)
            value = 0
            continue
        value += inc
        out.append(value)
    return out


def _labels(pairs: dict[str, str]) -> str:
    return "{" + ", ".join(f"{k}={promql.quote(v)}" for k, v in sorted(pairs.items())) + "}"


@dataclass
class Scenario:
    """A synthetic history `steps` long, and what must hold in it."""

    name: str
    steps: int
    series: list[tuple[str, dict[str, str], Samples]] = field(default_factory=list)
    checks: list[tuple[int, str, list[dict[str, Any]]]] = field(default_factory=list)
    """(eval step, alert name, expected alerts)."""

    def add(self, metric: str, labels: dict[str, str], samples: Sequence[int | None]) -> None:
        assert len(samples) == self.steps, (metric, len(samples), self.steps)
        self.series.append((metric, labels, list(samples)))

    def silent(self, names: Sequence[str], at: Sequence[int]) -> None:
        self.checks.extend((t, name, []) for t in at for name in names)


@dataclass(frozen=True)
class Context:
    alerts: alerts.Context
    step: int
    names: tuple[str, ...]
    """Every alert of this file's kind, asserted silent in quiet scenarios."""

    @property
    def service(self) -> Service:
        return self.alerts.service

    def steps(self, duration: Duration | int) -> int:
        """Whole steps covering `duration` (rounded up)."""
        seconds = duration if isinstance(duration, int) else duration.seconds
        return -(-seconds // self.step)

    @property
    def base(self) -> dict[str, str]:
        return example_labels(self.service.selector)

    def spread(self, start: int, end: int) -> list[int]:
        """`CHECKS` evaluation steps spread over [start, end]."""
        count = min(CHECKS, max(1, end - start + 1))
        return sorted({start + (end - start) * i // max(1, count - 1) for i in range(count)})


def _breaker_name(service: Service, scope: Scope) -> str:
    if scope.dependency is not None:
        return scope.dependency.breakers[0]
    name = EXAMPLE_BREAKER
    while name in service.listed_breakers:
        name += "-x"
    return name


def _operation_name(service: Service, scope: Scope) -> str:
    if scope.dependency is not None:
        return scope.dependency.operations[0]
    name = EXAMPLE_OPERATION
    while name in service.listed_operations:
        name += "_x"
    return name


def _expected(
    ctx: Context, scope: Scope, alert: str, subject: str, value: float | None = None
) -> dict[str, Any]:
    """The firing `alert` of `scope` about `subject` (a breaker or operation), showing `value`."""
    builders = {
        semconv.ALERT_BREAKER_OPEN: resilience.breaker_open_alert,
        semconv.ALERT_BREAKER_FLAPPING: resilience.flapping_alert,
        semconv.ALERT_RETRY_STORM: resilience.retry_storm_alert,
    }
    built = builders[alert](ctx.alerts, scope)
    label = resilience.subject_label(alert)
    return alerts.expected(ctx.alerts, built, value, extra_labels={label: subject})


# --------------------------------------------------------------------------- circuit breakers


def _state(
    scenario: Scenario, ctx: Context, breaker: str, states: Sequence[str | None], **extra: str
) -> None:
    """The 0/1 state gauge of one breaker (in one process), from its state at each step."""
    for state in semconv.BREAKER_STATES:
        labels = {**ctx.base, semconv.LABEL_BREAKER: breaker, semconv.LABEL_STATE: state, **extra}
        samples: Samples = [None if s is None else int(s == state) for s in states]
        scenario.add(semconv.BREAKER_STATE, labels, samples)


def _calls(
    scenario: Scenario, ctx: Context, breaker: str, by_outcome: dict[str, Sequence[int | None]]
) -> None:
    for outcome, increments in sorted(by_outcome.items()):
        labels = {**ctx.base, semconv.LABEL_BREAKER: breaker, semconv.LABEL_OUTCOME: outcome}
        scenario.add(semconv.BREAKER_CALLS, labels, _counter(increments))


def _outage_states(steps: int) -> list[str]:
    """open, open, half_open, ...: a breaker whose trial calls keep failing."""
    cycle = (semconv.STATE_OPEN, semconv.STATE_OPEN, semconv.STATE_HALF_OPEN)
    return [cycle[i % len(cycle)] for i in range(steps)]


def _breaker_open_tests(ctx: Context, scope: Scope) -> list[Scenario]:
    r = scope.resilience
    alert = semconv.ALERT_BREAKER_OPEN
    name = _breaker_name(ctx.service, scope)
    hold = ctx.steps(r.breaker_open_for)
    calls_window = ctx.steps(r.calls_window)
    warm = calls_window + 4
    closed, success = semconv.STATE_CLOSED, semconv.BREAKER_SUCCESS
    rejected, failure = semconv.BREAKER_REJECTED, semconv.BREAKER_FAILURE
    label = f"{ctx.service.name}: breaker {name}"
    out = []

    # Fires: the breaker cycles open/half-open while calls keep arriving.
    outage = hold + calls_window + 8
    s = Scenario(
        f"{label} open and half-open with calls arriving for {r.breaker_open_for}: fires",
        warm + outage,
    )
    states = [closed] * warm + _outage_states(outage)
    _state(s, ctx, name, states)
    _calls(
        s,
        ctx,
        name,
        {
            success: [3] * warm + [0] * outage,
            rejected: [0] * warm + [2 if st == semconv.STATE_OPEN else 0 for st in states[warm:]],
            failure: [0] * warm
            + [1 if st == semconv.STATE_HALF_OPEN else 0 for st in states[warm:]],
        },
    )
    s.silent([alert], [warm - 1, warm + hold // 2])
    s.checks.append((warm + hold + 4, alert, [_expected(ctx, scope, alert, name)]))
    out.append(s)

    # Silent: healthy, closed with calls.
    steps = warm + hold + calls_window + 8
    s = Scenario(f"{label} closed with calls: silent", steps)
    _state(s, ctx, name, [closed] * steps)
    _calls(s, ctx, name, {success: [3] * steps})
    s.silent(ctx.names, ctx.spread(warm, steps - 1))
    out.append(s)

    # Silent: open (with calls) for less than `for`, then closed again.
    short = max(1, hold // 2)
    steps = warm + short + hold + calls_window + 8
    s = Scenario(f"{label} open for less than {r.breaker_open_for}, then closed: silent", steps)
    states = [closed] * warm + _outage_states(short) + [closed] * (steps - warm - short)
    _state(s, ctx, name, states)
    _calls(
        s,
        ctx,
        name,
        {
            success: [3 if st == closed else 0 for st in states],
            rejected: [2 if st == semconv.STATE_OPEN else 0 for st in states],
        },
    )
    s.silent(ctx.names, ctx.spread(warm, steps - 1))
    out.append(s)

    # Silent: tripped, then idle (pybreaker never half-opens without a call).
    idle = 2 * hold + calls_window + 8
    steps = warm + idle
    s = Scenario(f"{label} left open with no calls (idle): silent", steps)
    _state(s, ctx, name, [closed] * warm + [semconv.STATE_OPEN] * idle)
    _calls(
        s,
        ctx,
        name,
        {
            success: [3] * (warm - 1) + [0] + [0] * idle,
            failure: [0] * (warm - 1) + [5] + [0] * idle,
        },
    )
    s.silent(ctx.names, ctx.spread(warm, steps - 1))
    out.append(s)

    # Silent: a restart (series gone for two steps, counters from 0 again).
    half = warm + hold
    steps = 2 * half + 2
    s = Scenario(f"{label} closed across a restart (counter reset): silent", steps)
    states_r: list[str | None] = [closed] * half + [None, None] + [closed] * half
    _state(s, ctx, name, states_r)
    _calls(s, ctx, name, {success: [3] * half + [None, None] + [3] * half})
    s.silent(ctx.names, ctx.spread(warm, steps - 1))
    out.append(s)

    # Silent: two processes; one has it open and idle, the other serves with it closed.
    steps = warm + 2 * hold + calls_window + 8
    s = Scenario(
        f"{label} open and idle in one process, closed and serving in another: silent", steps
    )
    _state(s, ctx, name, [closed] * warm + [semconv.STATE_OPEN] * (steps - warm), pid="101")
    _state(s, ctx, name, [closed] * steps, pid="102")
    _calls(s, ctx, name, {success: [3] * steps})
    s.silent(ctx.names, ctx.spread(warm, steps - 1))
    out.append(s)
    return out


def _transitions(
    scenario: Scenario, ctx: Context, breaker: str, state: str, increments: Sequence[int | None]
) -> None:
    labels = {**ctx.base, semconv.LABEL_BREAKER: breaker, semconv.LABEL_STATE: state}
    scenario.add(semconv.BREAKER_TRANSITIONS, labels, _counter(increments))


def _flapping_tests(ctx: Context, scope: Scope) -> list[Scenario]:
    r = scope.resilience
    alert = semconv.ALERT_BREAKER_FLAPPING
    name = _breaker_name(ctx.service, scope)
    n = r.flapping_transitions
    window = ctx.steps(r.flapping_window)
    warm = 6
    gap = max(2, window // (n + 1))
    closed, opened = semconv.STATE_CLOSED, semconv.STATE_OPEN
    label = f"{ctx.service.name}: breaker {name}"
    out = []

    def flaps(count: int, steps: int) -> tuple[list[str], list[int], list[int]]:
        """States and open/close increments of `count` opens, `gap` apart, after `warm`."""
        states = [closed] * steps
        opens = [0] * steps
        closes = [0] * steps
        for k in range(count):
            at = warm + k * gap
            opens[at] += 1
            closes[at + gap // 2] += 1
            for t in range(at, at + gap // 2):
                states[t] = opened
        return states, opens, closes

    # Fires: n opens (each followed by a close) within the window.
    last = warm + (n - 1) * gap
    steps = last + gap + 4
    s = Scenario(f"{label} opens {n} times in {r.flapping_window}: fires", steps)
    states, opens, closes = flaps(n, steps)
    _state(s, ctx, name, states)
    _transitions(s, ctx, name, opened, opens)
    _transitions(s, ctx, name, closed, closes)
    s.silent([alert], [warm - 1, last - 1])
    s.checks.append((last + 2, alert, [_expected(ctx, scope, alert, name)]))
    out.append(s)

    # Silent: one open fewer, watched until the window has passed.
    steps = warm + (n - 1) * gap + window + 4
    s = Scenario(f"{label} opens {n - 1} times in {r.flapping_window}: silent", steps)
    states, opens, closes = flaps(n - 1, steps)
    _state(s, ctx, name, states)
    _transitions(s, ctx, name, opened, opens)
    _transitions(s, ctx, name, closed, closes)
    s.silent(ctx.names, ctx.spread(warm, steps - 1))
    out.append(s)

    # Silent: idle, a known breaker that never changes state.
    steps = warm + window // 2
    s = Scenario(f"{label} never changes state (idle): silent", steps)
    _state(s, ctx, name, [closed] * steps)
    s.silent(ctx.names, ctx.spread(warm, steps - 1))
    out.append(s)

    # Silent: a restart resets the transition counter (from n + 5 to 0, then n - 1 opens).
    steps = warm + (n - 1) * gap + window + 4
    s = Scenario(f"{label} transition counter reset by a restart: silent", steps)
    states, opens, closes = flaps(n - 1, steps)
    opens_r: list[int | None] = [n + 5, *[0] * (warm - 3), None, None, *opens[warm:]]
    states_r: list[str | None] = [*states[: warm - 2], None, None, *states[warm:]]
    _state(s, ctx, name, states_r)
    _transitions(s, ctx, name, opened, opens_r)
    s.silent(ctx.names, ctx.spread(warm, steps - 1))
    out.append(s)

    if n < 2:
        return out
    # Silent: n processes each open once in one blip (per process: once, not flapping).
    steps = warm + gap + window
    s = Scenario(f"{label} opens once in each of {n} processes: silent", steps)
    for pid in range(n):
        _state(s, ctx, name, [closed] * steps, pid=str(101 + pid))
    blip = [0] * steps
    blip[warm] = n
    _transitions(s, ctx, name, opened, blip)
    s.silent(ctx.names, ctx.spread(warm, steps - 1))
    out.append(s)
    return out


# --------------------------------------------------------------------------- retries


def _retry_series(
    scenario: Scenario,
    ctx: Context,
    operation: str,
    calls: Sequence[int | None],
    retries: Sequence[int | None],
) -> None:
    base = {**ctx.base, semconv.LABEL_OPERATION: operation}
    outcome = {**base, semconv.LABEL_OUTCOME: semconv.RETRY_RECOVERED}
    scenario.add(semconv.RETRY_CALLS, outcome, _counter(calls))
    error = {**base, semconv.LABEL_ERROR_TYPE: "TimeoutError"}
    scenario.add(semconv.RETRIES, error, _counter(retries))


def _retry_storm_tests(ctx: Context, scope: Scope) -> list[Scenario]:
    r = scope.resilience
    alert = semconv.ALERT_RETRY_STORM
    name = _operation_name(ctx.service, scope)
    window = ctx.steps(r.retry_window)
    hold = ctx.steps(r.retry_for)
    warm = 4
    # Calls per step: at least 10, and at least twice the minimum rate.
    calls = max(10, math.ceil(2 * r.retry_min_call_rate * ctx.step))
    storm = math.floor(r.retry_ratio * 2 * calls) + 1
    while not alerts.stable(alerts.Value.RATIO, storm / calls):  # prints the same in Go
        storm += 1
    calm = math.floor(r.retry_ratio * calls / 2)
    label = f"{ctx.service.name}: operation {name}"
    ratio = format(Decimal(storm) / Decimal(calls), "f")
    out = []

    steps = warm + window + hold + 8
    s = Scenario(f"{label} retries {ratio} per call: fires", steps)
    _retry_series(s, ctx, name, [calls] * steps, [calm] * warm + [storm] * (steps - warm))
    s.silent([alert], [warm - 1])
    s.checks.append((steps - 1, alert, [_expected(ctx, scope, alert, name, storm / calls)]))
    out.append(s)

    steps = warm + window + hold + 8
    s = Scenario(f"{label} retries below the ratio: silent", steps)
    _retry_series(s, ctx, name, [calls] * steps, [calm] * steps)
    s.silent(ctx.names, ctx.spread(warm, steps - 1))
    out.append(s)

    idle = math.floor(r.retry_min_call_rate * ctx.step / 2)
    s = Scenario(f"{label} below the minimum call rate (idle): silent", steps)
    storm_idle = 3 if r.retry_min_call_rate > 0 else 0
    _retry_series(s, ctx, name, [idle] * steps, [storm_idle] * steps)
    s.silent(ctx.names, ctx.spread(warm, steps - 1))
    out.append(s)

    half = warm + window
    steps = 2 * half + 2
    s = Scenario(f"{label} across a restart (counter reset): silent", steps)
    gap: list[int | None] = [None, None]
    calls_r: list[int | None] = [calls] * half
    calm_r: list[int | None] = [calm] * half
    _retry_series(s, ctx, name, calls_r + gap + calls_r, calm_r + gap + calm_r)
    s.silent(ctx.names, ctx.spread(warm, steps - 1))
    out.append(s)
    return out


# --------------------------------------------------------------------------- background work


def _outbox(
    scenario: Scenario,
    ctx: Context,
    outbox: str,
    ages: Sequence[int | None],
    pending: Sequence[int | None],
) -> None:
    labels = {**ctx.base, semconv.LABEL_OUTBOX: outbox}
    scenario.add(semconv.OUTBOX_OLDEST_AGE, labels, ages)
    scenario.add(semconv.OUTBOX_PENDING, labels, pending)


def _outbox_stale_tests(ctx: Context) -> list[Scenario]:
    b = ctx.service.background
    alert = semconv.ALERT_OUTBOX_STALE
    name = b.outboxes[0] if b.outboxes else EXAMPLE_OUTBOX
    older = ctx.steps(b.outbox_older_than)
    hold = ctx.steps(b.outbox_for)
    warm = 4
    label = f"{ctx.service.name}: outbox {name}"
    relayed = [ctx.step * (t % 2) for t in range(warm)]  # the relay keeps up: age 0 or 1 step
    out = []

    def stalled(steps: int) -> Samples:
        return [*relayed, *(ctx.step * t for t in range(steps - warm))]

    # Fires: the relay stalls, the oldest row ages past the threshold and stays there.
    steps = warm + older + hold + 6
    s = Scenario(f"{label} not relayed for {b.outbox_older_than} + {b.outbox_for}: fires", steps)
    ages = stalled(steps)
    _outbox(s, ctx, name, ages, [0] * warm + [1 + t for t in range(steps - warm)])
    s.silent([alert], [warm + older - 1, warm + older + hold // 2])
    at = steps - 1
    s.checks.append((at, alert, [_expected_background(ctx, alert, name, ages[at])]))
    out.append(s)

    # Silent: the relay keeps up.
    steps = warm + older + hold + 6
    s = Scenario(f"{label} relayed as rows arrive: silent", steps)
    _outbox(s, ctx, name, [ctx.step * (t % 2) for t in range(steps)], [t % 3 for t in range(steps)])
    s.silent(ctx.names, ctx.spread(warm, steps - 1))
    out.append(s)

    # Silent: stale for less than `for`, then the relay catches up.
    late = older + max(1, hold // 2)
    steps = warm + late + hold + 6
    s = Scenario(f"{label} late for less than {b.outbox_for}, then caught up: silent", steps)
    ages = [*stalled(warm + late), *([0] * (steps - warm - late))]
    _outbox(s, ctx, name, ages, [0 if a == 0 else 5 for a in ages])
    s.silent(ctx.names, ctx.spread(warm, steps - 1))
    out.append(s)

    # Silent: idle, an empty outbox.
    steps = warm + older + hold + 6
    s = Scenario(f"{label} empty (idle): silent", steps)
    _outbox(s, ctx, name, [0] * steps, [0] * steps)
    s.silent(ctx.names, ctx.spread(warm, steps - 1))
    out.append(s)

    # Silent: a restart (the gauges gone for two steps, then back, the relay keeping up).
    half = warm + older + hold
    steps = 2 * half + 2
    s = Scenario(f"{label} across a restart: silent", steps)
    keeping: Samples = [ctx.step * (t % 2) for t in range(half)]
    _outbox(s, ctx, name, [*keeping, None, None, *keeping], [*keeping, None, None, *keeping])
    s.silent(ctx.names, ctx.spread(warm, steps - 1))
    out.append(s)
    return out


def _messages(
    scenario: Scenario,
    ctx: Context,
    task: str,
    sent: Sequence[int | None] | None,
    processed: dict[str, Sequence[int | None]],
) -> None:
    """The sent counter (another job) and this service's processed counters (by instance)."""
    system = {
        semconv.LABEL_MESSAGING_SYSTEM: semconv.MESSAGING_SYSTEM_CELERY,
        semconv.LABEL_DESTINATION: EXAMPLE_QUEUE,
        semconv.LABEL_TASK: task,
    }
    if sent is not None:
        publishers = ctx.service.background.publishers
        origin = example_labels(publishers) if publishers else {"job": EXAMPLE_PUBLISHER}
        scenario.add(semconv.MESSAGING_SENT, {**origin, **system}, _counter(sent))
    for instance, increments in sorted(processed.items()):
        labels = {**ctx.base, **system, semconv.LABEL_OUTCOME: semconv.PROCESS_SUCCESS}
        if instance:
            labels["instance"] = instance
        scenario.add(promql.PROCESS_COUNT, labels, _counter(increments))


def _tasks_stalled_tests(ctx: Context) -> list[Scenario]:
    b = ctx.service.background
    alert = semconv.ALERT_TASKS_STALLED
    task = ctx.service.stalled_tasks[0]
    after = ctx.steps(b.stalled_after)
    hold = ctx.steps(b.stalled_for)
    warm = after + 4
    label = f"{ctx.service.name}: task {task}"
    out = []

    # Fires: messages keep coming, the workers stop processing them.
    steps = warm + after + hold + 6
    s = Scenario(f"{label} published but not processed for {b.stalled_after}: fires", steps)
    _messages(s, ctx, task, [3] * steps, {"": [3] * warm + [0] * (steps - warm)})
    s.silent([alert], [warm - 1, warm + after // 2])
    s.checks.append((steps - 1, alert, [_expected_background(ctx, alert, task)]))
    out.append(s)

    # Fires: the first message ever published is never processed (no worker ever ran).
    if hold + 4 < after:
        steps = after + 4
        s = Scenario(f"{label} first message never processed (no worker at all): fires", steps)
        first: list[int | None] = [None, None, 1, *([0] * (steps - 3))]
        _messages(s, ctx, task, first, {})
        s.silent([alert], [2])
        s.checks.append((2 + hold + 2, alert, [_expected_background(ctx, alert, task)]))
        out.append(s)

    # Silent: processed as published.
    steps = warm + after + hold + 6
    s = Scenario(f"{label} processed as published: silent", steps)
    _messages(s, ctx, task, [3] * steps, {"": [3] * steps})
    s.silent(ctx.names, ctx.spread(warm, steps - 1))
    out.append(s)

    # Silent: idle, nothing published and nothing processed.
    s = Scenario(f"{label} nothing published (idle): silent", steps)
    _messages(s, ctx, task, [0] * steps, {"": [0] * steps})
    s.silent(ctx.names, ctx.spread(warm, steps - 1))
    out.append(s)

    # Silent: the publisher and the worker restart (their counters reset).
    half = warm + after
    steps = 2 * half + 2
    s = Scenario(f"{label} publisher and worker restarted (counter resets): silent", steps)
    gap: list[int | None] = [None, None]
    _messages(
        s, ctx, task, [*[3] * half, *gap, *[3] * half], {"": [*[3] * half, *gap, *[3] * half]}
    )
    s.silent(ctx.names, ctx.spread(warm, steps - 1))
    out.append(s)

    # Silent: a rare message after a quiet spell, processed at once by a worker restarted in
    # the meantime (a new series, e.g. a new pod), whose first scrape already counts it.
    gone = warm + after
    sent_at = gone + after
    steps = sent_at + after + hold + 6
    s = Scenario(f"{label} rare message, processed by a freshly started worker: silent", steps)
    sends = [1 if t in (2, sent_at) else 0 for t in range(steps)]
    old: list[int | None] = [1 if t == 3 else 0 for t in range(gone)]
    _messages(s, ctx, task, sends, {"old-worker:9000": [*old, *([None] * (steps - gone))]})
    new: Samples = [*([None] * (sent_at + 1)), *([1] * (steps - sent_at - 1))]
    labels = {
        **ctx.base,
        semconv.LABEL_MESSAGING_SYSTEM: semconv.MESSAGING_SYSTEM_CELERY,
        semconv.LABEL_DESTINATION: EXAMPLE_QUEUE,
        semconv.LABEL_TASK: task,
        semconv.LABEL_OUTCOME: semconv.PROCESS_SUCCESS,
        "instance": "new-worker:9000",
    }
    s.add(promql.PROCESS_COUNT, labels, new)
    s.silent(
        ctx.names, sorted({*ctx.spread(warm, steps - 1), *ctx.spread(sent_at, sent_at + after)})
    )
    out.append(s)
    return out


def _expected_background(
    ctx: Context, alert: str, subject: str, value: float | None = None
) -> dict[str, Any]:
    if alert == semconv.ALERT_OUTBOX_STALE:
        built = background.outbox_stale_alert(ctx.alerts)
        label = semconv.LABEL_OUTBOX
    else:
        built = background.tasks_stalled_alert(ctx.alerts)
        label = semconv.LABEL_TASK
    return alerts.expected(ctx.alerts, built, value, extra_labels={label: subject})


# --------------------------------------------------------------------------- document


TestBuilder = Callable[[Context, Scope], list[Scenario]]


def _scenarios(ctx: Context) -> list[Scenario]:
    out: list[Scenario] = []
    for scope in resilience.scopes(ctx.service):
        if scope.breakers is not None:
            out += _breaker_open_tests(ctx, scope)
            out += _flapping_tests(ctx, scope)
        if scope.operations is not None:
            out += _retry_storm_tests(ctx, scope)
    out += _outbox_stale_tests(ctx)
    if ctx.service.stalled_tasks:
        out += _tasks_stalled_tests(ctx)
    return out


def _test_group(ctx: Context, scenario: Scenario) -> dict[str, Any]:
    series = [
        {"series": metric + _labels(labels), "values": _compress(samples)}
        for metric, labels, samples in scenario.series
    ]
    series.append(
        {
            "series": semconv.BUILD_INFO + _labels(ctx.base),
            "values": _compress([1] * scenario.steps),
        }
    )
    return {
        "name": scenario.name,
        "interval": _at(ctx.step),
        "input_series": series,
        "alert_rule_test": [
            {"eval_time": _at(t * ctx.step), "alertname": name, "exp_alerts": expected}
            for t, name, expected in scenario.checks
        ],
    }


def alert_tests(
    service: Service, templates: Templates, rules_file: str, rules: dict[str, Any]
) -> dict[str, Any]:
    """The alerts.test.yaml document of one service, as data (`rules`: its rules document; the
    alerts of this file's kind in it are asserted silent in quiet scenarios)."""
    names = {r["alert"] for g in rules["groups"] for r in g["rules"] if "alert" in r}
    own = tuple(
        n for n in (*resilience.RESILIENCE_ALERTS, *background.BACKGROUND_ALERTS) if n in names
    )
    ctx = Context(alerts.context(service, templates), _step(service), own)
    return {
        "rule_files": [rules_file],
        "evaluation_interval": _at(ctx.step),
        "tests": [_test_group(ctx, s) for s in _scenarios(ctx)],
    }
