"""circuitbreaker adapter: same decisions with and without obskit; calls, rejections and
(lazy) transitions recorded."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import circuitbreaker
import pytest
from circuitbreaker import CircuitBreakerError, circuit

from obskit.testing import capture
from tests.integrations.parity import with_and_without
from tests.integrations.pybreaker_helpers import calls, gauge


def _scenario(name: str, fallback: Any = None) -> list[str]:
    state = {"fail": True}

    @circuit(failure_threshold=2, recovery_timeout=1, name=name, fallback_function=fallback)
    def charge() -> str:
        if state["fail"]:
            raise ConnectionError("down")
        return "ok"

    seen = []
    for step in "fffwsS":
        if step == "w":
            time.sleep(1.05)
            state["fail"] = False
            continue
        try:
            seen.append(f"{charge()}")
        except (ConnectionError, CircuitBreakerError) as exc:
            seen.append(type(exc).__name__)
    return seen


def test_core_scenario(monkeypatch: pytest.MonkeyPatch) -> None:
    with with_and_without(lambda: _scenario("cb-core")) as (observed, cap):
        assert observed[1] == [
            "ConnectionError",
            "ConnectionError",
            "CircuitBreakerError",
            "ok",
            "ok",
        ]
        assert calls(cap, "cb-core") == {"failure": 2.0, "rejected": 1.0, "success": 2.0}
        assert [
            (r["from_state"], r["to_state"])
            for r in cap.logs(event="circuit_breaker_state_changed")
        ] == [
            ("closed", "open"),
            ("open", "half_open"),
            ("half_open", "closed"),
        ]
        assert gauge(cap, "cb-core") == {"closed": 1.0, "open": 0.0, "half_open": 0.0}


def test_fallback_answers_are_rejections() -> None:
    with with_and_without(lambda: _scenario("cb-fallback", fallback=lambda: "cached")) as (
        observed,
        cap,
    ):
        assert observed[1][:3] == ["ConnectionError", "ConnectionError", "cached"]
        assert calls(cap, "cb-fallback")["rejected"] == 1.0


def test_a_breaker_decorated_before_init_has_its_gauge_from_its_first_call_and_async_works() -> (
    None
):
    @circuit(failure_threshold=1, name="cb-early")
    async def fetch() -> int:
        return 1

    with capture() as cap:
        assert gauge(cap, "cb-early")["closed"] is None  # the protected function is unknown yet
        assert asyncio.run(fetch()) == 1
        assert gauge(cap, "cb-early")["closed"] == 1.0
        assert calls(cap, "cb-early") == {"success": 1.0}
        assert circuitbreaker.CircuitBreakerMonitor.get("cb-early") is not None


def _unnamed() -> Any:
    @circuit(failure_threshold=5)
    def refund() -> str:
        return "refunded"

    return refund


def test_an_unnamed_breaker_is_module_qualname_of_its_function_before_or_after_init() -> None:
    """circuitbreaker names an unnamed breaker after the bare __qualname__; obskit's label is
    module.qualname (the issue's rule), the same whether it was decorated before init() or
    after. A breaker named explicitly keeps its name; the breaker itself is left as it was."""
    label = f"{__name__}._unnamed.<locals>.refund"
    early = _unnamed()
    with capture() as cap:
        late = _unnamed()
        assert gauge(cap, label)["closed"] == 1.0  # decorated after init: known at decoration
        assert early() == late() == "refunded"
        assert calls(cap, label) == {"success": 2.0}
        assert circuitbreaker.CircuitBreakerMonitor.get("_unnamed.<locals>.refund") is not None

        @circuit(name="refunds")
        def named() -> int:
            return 2

        assert named() == 2
        assert calls(cap, "refunds") == {"success": 1.0}

        bare = circuitbreaker.CircuitBreaker()
        with bare:
            pass
        assert bare.call(len, "ab") == 2
        here = f"{__name__}.{_this_test.__qualname__}"
        assert calls(cap, here) == {"success": 2.0}  # a bare `with`: the function around it


_this_test = test_an_unnamed_breaker_is_module_qualname_of_its_function_before_or_after_init
