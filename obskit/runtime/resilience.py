"""Resilience signals: retries, give-ups and circuit-breaker decisions, in metrics, logs and traces.

The runtime owns this vocabulary; the adapters (obskit.integrations.tenacity, .stamina,
.backoff, .pybreaker, .circuitbreaker) and the public API for hand-rolled loops
(`obskit.retry_call`, `obskit.breaker`) only translate into it:

- `retry_scheduled(...)`: an attempt failed and the policy will try again:
  obskit_retries_total{operation, error_type} + 1, a `warning` line `retry_scheduled`
  (operation, attempt, error_type, wait_seconds) and a span event on the active span.
- `retry_finished(...)`: one logical call ended: obskit_retry_calls_total{operation, outcome}
  + 1 and, for `exhausted`, an `error` line `retries_exhausted` (operation, attempts,
  error_type).
- `breaker_seen` / `breaker_transition` / `breaker_call`: obskit_circuit_breaker_state
  (1 for the current state, 0 for the others), _transitions_total, _calls_total, the
  `circuit_breaker_state_changed` line (`warning` into open, `info` otherwise) and span events
  for transitions and rejections.

`error_type` labels are bounded: at most `semconv.ERROR_TYPES_PER_OPERATION` distinct values per
operation, the rest share `_OTHER` (logs and span events keep the real class name).

The attempt number of the retry attempt running in this context (`current_attempt()`) lets
outbound client spans carry `http.request.resend_count`. Every entry point is safe to call
before `init()` (it records nothing) and never raises: errors are counted in
obskit_instrumentation_errors_total and logged once.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from typing import TYPE_CHECKING, Any, Final

from opentelemetry import trace

from obskit import semconv
from obskit.runtime import errors

if TYPE_CHECKING:
    from prometheus_client import CollectorRegistry

    from obskit.runtime.state import Obskit

LOGGER: Final = "obskit.resilience"
_CHILDREN: Final = 10_000
"""Cached label children per cache (the series themselves are bounded by the label values)."""
ATTEMPT: ContextVar[int] = ContextVar("obskit_retry_attempt", default=0)
"""The 1-based retry attempt running in this context (0: none). Adapters set it directly on
their hot path; everyone else uses the functions below."""
_attempt = ATTEMPT
_runtime: Obskit | None = None
generation = 0
"""Bumped by every bind(): adapters re-announce their breakers to a new handle."""


# -- the attempt running in this context (http.request.resend_count) ---------------------
def current_attempt() -> int:
    """1-based number of the retry attempt running in this context; 0 outside any retry."""
    return _attempt.get()


def set_attempt(number: int) -> int:
    """Mark attempt `number` as running in this context; returns the previous value."""
    previous = _attempt.get()
    _attempt.set(number)
    return previous


def restore_attempt(previous: int) -> None:
    """Put back the value `set_attempt` returned (the enclosing retry's attempt, or 0)."""
    _attempt.set(previous)


# -- instruments -------------------------------------------------------------------------
class ResilienceMetrics:
    """The resilience instruments, created at init() on the registry obskit uses."""

    def __init__(self, registry: CollectorRegistry | None) -> None:
        from prometheus_client import Counter, Gauge  # noqa: PLC0415

        self.retries = Counter(
            semconv.RETRIES,
            "Retries scheduled: an attempt failed and the policy will try again.",
            semconv.RETRY_LABELS,
            registry=registry,
        )
        self.retry_calls = Counter(
            semconv.RETRY_CALLS,
            "Logical calls through a retry policy, by outcome.",
            semconv.RETRY_CALL_LABELS,
            registry=registry,
        )
        # liveall: with PROMETHEUS_MULTIPROC_DIR each live process exports its own series
        # (an extra `pid` label; each process has its own breakers); without it, no pid.
        self.breaker_state = Gauge(
            semconv.BREAKER_STATE,
            "1 for the breaker's current state, 0 for the others (per process).",
            semconv.BREAKER_STATE_LABELS,
            registry=registry,
            multiprocess_mode="liveall",
        )
        self.breaker_transitions = Counter(
            semconv.BREAKER_TRANSITIONS,
            "Circuit-breaker transitions into state.",
            semconv.BREAKER_STATE_LABELS,
            registry=registry,
        )
        self.breaker_calls = Counter(
            semconv.BREAKER_CALLS,
            "Calls through a circuit breaker, by outcome.",
            semconv.BREAKER_CALL_LABELS,
            registry=registry,
        )
        self.collectors = (
            self.retries,
            self.retry_calls,
            self.breaker_state,
            self.breaker_transitions,
            self.breaker_calls,
        )
        # A series born at 1 shows no increase to rate(): the counters of a new operation or
        # breaker get every known second label at 0 first (error_type is open-ended: not it).
        self._siblings: dict[Any, tuple[str, ...]] = {
            self.retry_calls: semconv.RETRY_OUTCOMES,
            self.breaker_calls: semconv.BREAKER_OUTCOMES,
            self.breaker_transitions: semconv.BREAKER_STATES,
        }
        self._children: dict[tuple[Any, tuple[str, str]], Any] = {}
        self._incs: dict[tuple[Any, str, str], Any] = {}  # (counter, labels) -> child's inc
        self._error_types: dict[str, set[str]] = {}
        self._lock = threading.Lock()
        self.breakers: dict[str, str] = {}  # breaker name -> state last set on the gauge

    def child(self, metric: Any, labels: tuple[str, str]) -> Any:
        key = (metric, labels)
        child = self._children.get(key)
        if child is None:
            child = metric.labels(*labels)
            if len(self._children) < _CHILDREN:
                self._children[key] = child
        return child

    def incrementer(self, counter: Any, first: str, second: str) -> Any:
        """`inc(amount)` of the child of a two-label counter, cached (the per-call path)."""
        key = (counter, first, second)
        inc = self._incs.get(key)
        if inc is None:
            from obskit.runtime.metrics import adder  # noqa: PLC0415

            for sibling in self._siblings.get(counter, ()):
                self.child(counter, (first, sibling))
            inc = adder(self.child(counter, (first, second)))
            if len(self._incs) < _CHILDREN:
                self._incs[key] = inc
        return inc

    def error_type(self, operation: str, error_type: str) -> str:
        """`error_type` as a label: at most ERROR_TYPES_PER_OPERATION values per operation."""
        seen = self._error_types.get(operation)
        if seen is not None and error_type in seen:
            return error_type
        with self._lock:
            seen = self._error_types.setdefault(operation, set())
            if error_type in seen:
                return error_type
            if len(seen) >= semconv.ERROR_TYPES_PER_OPERATION:
                return semconv.OTHER_ERROR_TYPE
            seen.add(error_type)
            return error_type

    def set_breaker_state(self, breaker: str, state: str) -> None:
        with self._lock:
            if breaker not in self.breakers:
                for each in semconv.BREAKER_STATES:
                    self.child(self.breaker_transitions, (breaker, each))
            self.breakers[breaker] = state
            for each in semconv.BREAKER_STATES:
                self.child(self.breaker_state, (breaker, each)).set(1 if each == state else 0)


def bind(runtime: Obskit | None) -> None:
    """The handle whose telemetry the resilience signals feed (None: record nothing)."""
    global _runtime, generation  # noqa: PLW0603
    _runtime = runtime
    generation += 1


def _live() -> Obskit | None:
    rt = _runtime
    return rt if rt is not None and rt.active else None


def _instruments(rt: Obskit) -> ResilienceMetrics | None:
    metrics = rt.metrics
    return metrics.resilience if metrics is not None else None


def error_type_of(error: BaseException | str | None) -> str:
    """The class name of an exception; a string as is; None (a rejected result) -> _RESULT."""
    if error is None:
        return semconv.RESULT_ERROR_TYPE
    if isinstance(error, str):
        return error or semconv.RESULT_ERROR_TYPE
    return type(error).__name__


def _span_event(name: str, attributes: dict[str, Any]) -> None:
    span = trace.get_current_span()
    if span.is_recording():
        span.add_event(name, attributes)


# -- retries -----------------------------------------------------------------------------
def retry_scheduled(
    operation: str, attempt: int, error: BaseException | str | None, wait: float
) -> None:
    """Attempt `attempt` (1-based) of `operation` failed; the next one starts in `wait` s."""
    rt = _live()
    if rt is None:
        return
    try:
        kind = error_type_of(error)
        wait = float(wait)
        instruments = _instruments(rt)
        if instruments is not None:
            label = instruments.error_type(operation, kind)
            instruments.child(instruments.retries, (operation, label)).inc()
        rt.logs.emit(
            "warning",
            LOGGER,
            semconv.EVENT_RETRY_SCHEDULED,
            {"operation": operation, "attempt": attempt, "error_type": kind, "wait_seconds": wait},
        )
        _span_event(
            semconv.EVENT_RETRY_SCHEDULED,
            {
                "retry.operation": operation,
                "retry.attempt": attempt,
                "error.type": kind,
                "retry.wait_seconds": wait,
            },
        )
    except Exception as exc:  # noqa: BLE001 - telemetry never fails the user's call
        errors.record("resilience retry_scheduled", exc)


def outcome_of(succeeded: bool, attempts: int) -> str:
    """success / recovered / exhausted / failed from whether the policy ended with a success
    and how many attempts it made (more than one means it retried)."""
    if succeeded:
        return semconv.RETRY_SUCCESS if attempts <= 1 else semconv.RETRY_RECOVERED
    return semconv.RETRY_FAILED if attempts <= 1 else semconv.RETRY_EXHAUSTED


def retry_finished(
    operation: str, outcome: str, attempts: int, error: BaseException | str | None = None
) -> None:
    """One logical call through a retry policy ended with `outcome` after `attempts`."""
    rt = _runtime
    if rt is None or not rt.active:
        return
    try:
        metrics = rt.metrics
        if metrics is not None:
            instruments = metrics.resilience
            instruments.incrementer(instruments.retry_calls, operation, outcome)(1)
        if outcome == semconv.RETRY_EXHAUSTED:
            rt.logs.emit(
                "error",
                LOGGER,
                semconv.EVENT_RETRIES_EXHAUSTED,
                {"operation": operation, "attempts": attempts, "error_type": error_type_of(error)},
            )
    except Exception as exc:  # noqa: BLE001 - telemetry never fails the user's call
        errors.record("resilience retry_finished", exc)


# -- circuit breakers --------------------------------------------------------------------
def breaker_seen(breaker: str, state: str) -> None:
    """obskit now knows `breaker` (in `state`): its state gauge exists from here on."""
    rt = _live()
    if rt is None:
        return
    try:
        instruments = _instruments(rt)
        if instruments is not None and breaker not in instruments.breakers:
            instruments.set_breaker_state(breaker, state)
    except Exception as exc:  # noqa: BLE001 - telemetry never fails the user's call
        errors.record("resilience breaker_seen", exc)


def breaker_transition(breaker: str, from_state: str | None, to_state: str) -> None:
    """`breaker` moved from `from_state` (None: unknown) to `to_state`."""
    rt = _live()
    if rt is None:
        return
    try:
        instruments = _instruments(rt)
        if instruments is not None:
            instruments.set_breaker_state(breaker, to_state)
            instruments.child(instruments.breaker_transitions, (breaker, to_state)).inc()
        fields = {"breaker": breaker, "from_state": from_state, "to_state": to_state}
        level = "warning" if to_state == semconv.STATE_OPEN else "info"
        rt.logs.emit(level, LOGGER, semconv.EVENT_BREAKER_STATE_CHANGED, fields)
        _span_event(
            semconv.EVENT_BREAKER_STATE_CHANGED,
            {
                "circuit_breaker.name": breaker,
                "circuit_breaker.from_state": from_state or "",
                "circuit_breaker.to_state": to_state,
            },
        )
    except Exception as exc:  # noqa: BLE001 - telemetry never fails the user's call
        errors.record("resilience breaker_transition", exc)


def breaker_call(breaker: str, outcome: str) -> None:
    """One call through `breaker`: success, failure (as the breaker counts it) or rejected."""
    rt = _runtime
    if rt is None or not rt.active:
        return
    try:
        metrics = rt.metrics
        if metrics is not None:
            metrics.resilience.incrementer(metrics.resilience.breaker_calls, breaker, outcome)(1)
        if outcome == semconv.BREAKER_REJECTED:
            _span_event(semconv.EVENT_BREAKER_REJECTED, {"circuit_breaker.name": breaker})
    except Exception as exc:  # noqa: BLE001 - telemetry never fails the user's call
        errors.record("resilience breaker_call", exc)


def breaker_state(breaker: str) -> str | None:
    """The state obskit last recorded for `breaker` (None: unknown, or before init)."""
    rt = _live()
    instruments = _instruments(rt) if rt is not None else None
    return instruments.breakers.get(breaker) if instruments is not None else None


# -- names -------------------------------------------------------------------------------
_names: dict[Any, str] = {}


def callable_name(fn: Any) -> str:
    """`module.qualname` of a callable (functions, methods, partials, callable objects)."""
    fn = getattr(fn, "func", fn)  # functools.partial
    fn = getattr(fn, "__func__", fn)  # bound method
    code = getattr(fn, "__code__", None)
    if code is not None:
        cached = _names.get(code)
        if cached is not None:
            return cached
    qualname = getattr(fn, "__qualname__", None) or type(fn).__qualname__
    module = getattr(fn, "__module__", None) or type(fn).__module__
    name = f"{module}.{qualname}" if module and module != "builtins" else str(qualname)
    if code is not None and len(_names) < 10_000:
        _names[code] = name
    return name


def caller_name(skip: tuple[str, ...], depth: int = 2) -> str:
    """`module.qualname` of the innermost calling function outside the packages in `skip`
    (the function containing a retry loop that has no callable of its own)."""
    import sys  # noqa: PLC0415

    frame: Any = sys._getframe(depth)
    while frame is not None:
        module = frame.f_globals.get("__name__") or ""
        if not any(module == s or module.startswith(s + ".") for s in skip):
            return f"{module}.{frame.f_code.co_qualname}"
        frame = frame.f_back
    return "<unknown>"


# -- public API for hand-rolled retries and breakers -------------------------------------
class RetryCall:
    """One logical call through a hand-rolled retry loop (see `obskit.retry_call`)."""

    __slots__ = ("_done", "attempts", "operation")

    def __init__(self, operation: str) -> None:
        self.operation = operation
        self.attempts = 0
        self._done = False

    @contextmanager
    def attempt(self) -> Iterator[int]:
        """Run one attempt: outbound HTTP calls inside carry http.request.resend_count from
        the second attempt on. Yields the 1-based attempt number; exceptions pass through."""
        self.attempts += 1
        previous = set_attempt(self.attempts)
        try:
            yield self.attempts
        finally:
            restore_attempt(previous)

    def retry(self, error: BaseException | str | None, wait: float = 0.0) -> None:
        """The attempt just made failed with `error` and another follows in `wait` seconds."""
        retry_scheduled(self.operation, max(self.attempts, 1), error, wait)

    def succeeded(self) -> None:
        """The call ended with a success (`success`, or `recovered` after retries)."""
        self._finish(succeeded=True, error=None)

    def failed(self, error: BaseException | str | None = None) -> None:
        """The call ended without success (`failed`, or `exhausted` after retries)."""
        self._finish(succeeded=False, error=error)

    def _finish(self, *, succeeded: bool, error: BaseException | str | None) -> None:
        if self._done:
            return
        self._done = True
        attempts = max(self.attempts, 1)
        retry_finished(self.operation, outcome_of(succeeded, attempts), attempts, error)


class Breaker:
    """A hand-rolled circuit breaker's signals (see `obskit.breaker`)."""

    __slots__ = ("_state", "name")

    def __init__(self, name: str, state: str = semconv.STATE_CLOSED) -> None:
        _check_state(state)
        self.name = name
        self._state = state
        breaker_seen(name, state)

    @property
    def state(self) -> str:
        return self._state

    def set_state(self, state: str) -> None:
        """The breaker moved to `state` (closed, open, half_open); same state: nothing."""
        _check_state(state)
        if state != self._state:
            previous, self._state = self._state, state
            breaker_transition(self.name, previous, state)
        else:
            breaker_seen(self.name, state)

    def success(self) -> None:
        breaker_seen(self.name, self._state)
        breaker_call(self.name, semconv.BREAKER_SUCCESS)

    def failure(self) -> None:
        breaker_seen(self.name, self._state)
        breaker_call(self.name, semconv.BREAKER_FAILURE)

    def rejected(self) -> None:
        """A call failed fast because the breaker is open (the protected code did not run)."""
        breaker_seen(self.name, self._state)
        breaker_call(self.name, semconv.BREAKER_REJECTED)


def _check_state(state: str) -> None:
    if state not in semconv.BREAKER_STATES:
        raise ValueError(f"breaker state must be one of {', '.join(semconv.BREAKER_STATES)}")
