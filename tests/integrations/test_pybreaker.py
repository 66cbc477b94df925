"""pybreaker adapter: same breaker decisions with and without obskit; every call, transition
and rejection recorded."""

from __future__ import annotations

import contextlib
import time
from typing import Any

import pybreaker
import pytest

from obskit.runtime import errors
from obskit.testing import capture
from tests.integrations.parity import with_and_without
from tests.integrations.pybreaker_helpers import calls, gauge


def storm(breaker: pybreaker.CircuitBreaker, plan: str) -> list[str]:
    """Drive the breaker: 'f' a failing call, 's' a succeeding one, 'w' wait out reset_timeout.
    Returns what each call did (value or exception class) and the state after it."""
    seen = []

    def fail() -> None:
        raise ConnectionError("payments down")

    for step in plan:
        if step == "w":
            time.sleep(breaker.reset_timeout + 0.02)
            continue
        try:
            result = str(breaker.call(fail if step == "f" else (lambda: "ok")))
        except Exception as exc:  # noqa: BLE001 - part of what the caller observes
            result = type(exc).__name__
        seen.append(f"{result}:{breaker.current_state}")
    return seen


PLAN = "ffffswfwss"  # trip at the 3rd failure, rejected, half-open trial fails, then recovers


def test_core_scenario_same_decisions_with_and_without_obskit() -> None:
    """fail_max failures open the breaker (the tripping call raises CircuitBreakerError and is
    a `failure`), open rejects, a half-open trial failing re-opens, a success closes."""

    def scenario() -> list[str]:
        return storm(
            pybreaker.CircuitBreaker(fail_max=3, reset_timeout=0.05, name="payments"), PLAN
        )

    with with_and_without(scenario) as (observed, cap):
        assert observed[1] == [
            "ConnectionError:closed",
            "ConnectionError:closed",
            "CircuitBreakerError:open",
            "CircuitBreakerError:open",
            "CircuitBreakerError:open",
            "CircuitBreakerError:open",
            "ok:closed",
            "ok:closed",
        ]
        assert calls(cap, "payments") == {"failure": 4.0, "rejected": 2.0, "success": 2.0}
        transitions = [
            (r["from_state"], r["to_state"], r["level"])
            for r in cap.logs(event="circuit_breaker_state_changed")
        ]
        assert transitions == [
            ("closed", "open", "warning"),
            ("open", "half_open", "info"),
            ("half_open", "open", "warning"),
            ("open", "half_open", "info"),
            ("half_open", "closed", "info"),
        ]
        assert gauge(cap, "payments") == {"closed": 1.0, "open": 0.0, "half_open": 0.0}
        assert (
            cap.sample("obskit_circuit_breaker_transitions_total", breaker="payments", state="open")
            == 2
        )


def test_gauge_exists_at_creation_after_init_and_at_first_call_before() -> None:
    early = pybreaker.CircuitBreaker(name="early")
    with capture() as cap:
        late = pybreaker.CircuitBreaker(name="late")
        assert gauge(cap, "late")["closed"] == 1.0
        assert gauge(cap, "early")["closed"] is None  # pybreaker keeps no registry
        early.call(lambda: 1)
        assert gauge(cap, "early")["closed"] == 1.0
        assert late.call(lambda: 2) == 2


def test_unnamed_breaker_takes_the_first_protected_function() -> None:
    with capture() as cap:
        breaker = pybreaker.CircuitBreaker()

        @breaker
        def charge() -> str:
            return "charged"

        assert charge() == "charged"
        name = f"{__name__}.test_unnamed_breaker_takes_the_first_protected_function.<locals>.charge"
        assert calls(cap, name) == {"success": 1.0}
        assert breaker.name is None  # the breaker itself is left as it was


def test_excluded_errors_are_successes_for_the_breaker() -> None:
    def scenario() -> Any:
        breaker = pybreaker.CircuitBreaker(fail_max=1, exclude=[KeyError], name="ex")
        with contextlib.suppress(KeyError):
            breaker.call(lambda: {}["missing"])
        return breaker.current_state

    with with_and_without(scenario) as (observed, cap):
        assert observed == ("value", "closed")
        assert calls(cap, "ex") == {"success": 1.0}


@pytest.mark.skipif(
    not hasattr(pybreaker.CircuitBreaker, "calling"), reason="calling() exists since pybreaker 1.1"
)
def test_calling_context_manager_and_span_events() -> None:
    with capture() as cap:
        breaker = pybreaker.CircuitBreaker(fail_max=1, reset_timeout=60, name="ctx")
        tracer = cap.handle.tracing.tracer
        with tracer.start_as_current_span("request"):
            with pytest.raises(pybreaker.CircuitBreakerError), breaker.calling():
                raise OSError("x")
            with pytest.raises(pybreaker.CircuitBreakerError), breaker.calling():
                pass
        assert calls(cap, "ctx") == {"failure": 1.0, "rejected": 1.0}
        (span,) = [s for s in cap.spans() if s.name == "request"]
        names = [e.name for e in span.events]
        assert names == ["circuit_breaker_state_changed", "circuit_breaker_rejected"]


def test_listener_errors_never_reach_the_call(monkeypatch: pytest.MonkeyPatch) -> None:
    from obskit.runtime import resilience

    with capture():
        breaker = pybreaker.CircuitBreaker(name="robust")
        monkeypatch.setattr(resilience, "breaker_call", lambda *a: 1 / 0)
        before = errors.total()
        assert breaker.call(lambda: "fine") == "fine"
        assert errors.total() > before
