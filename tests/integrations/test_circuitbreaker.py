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


def test_breakers_known_before_init_have_a_gauge_at_init_and_async_works() -> None:
    @circuit(failure_threshold=1, name="cb-early")
    async def fetch() -> int:
        return 1

    with capture() as cap:
        assert gauge(cap, "cb-early")["closed"] == 1.0
        assert asyncio.run(fetch()) == 1
        assert calls(cap, "cb-early") == {"success": 1.0}
        assert circuitbreaker.CircuitBreakerMonitor.get("cb-early") is not None
