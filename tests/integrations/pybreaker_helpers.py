"""Reading breaker series from a capture."""

from __future__ import annotations

from obskit.testing import Capture


def calls(cap: Capture, breaker: str) -> dict[str, float]:
    out = {}
    for outcome in ("success", "failure", "rejected"):
        value = cap.sample("obskit_circuit_breaker_calls_total", breaker=breaker, outcome=outcome)
        if value:
            out[outcome] = value
    return out


def gauge(cap: Capture, breaker: str) -> dict[str, float | None]:
    return {
        s: cap.sample("obskit_circuit_breaker_state", breaker=breaker, state=s)
        for s in ("closed", "open", "half_open")
    }
