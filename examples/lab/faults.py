"""The example services' failure knob: an error rate and an added latency, settable at run time.

Both example services expose it as ``POST /admin/faults`` with a JSON body
``{"error_rate": 0.25, "latency_ms": 300, "routes": ["/orders"]}`` (every field optional,
``routes`` empty = every route), and ``GET /admin/faults`` returns the settings and counters.
Initial values come from ``EXAMPLE_ERROR_RATE`` and ``EXAMPLE_LATENCY_MS``.

Errors are injected deterministically, not at random: with error_rate r, exactly
floor(n * r) of n requests to each matching route fail (a per-route accumulator crosses 1),
so the error ratio the recording rules report can be compared with the injected one tightly.
"""

from __future__ import annotations

import math
import os
import threading
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any


class FaultSettingsError(ValueError):
    """The body of POST /admin/faults is invalid."""


@dataclass(frozen=True)
class Decision:
    """What to do with one request: fail it (HTTP 500) and/or delay it."""

    fail: bool
    delay_s: float


@dataclass
class Faults:
    error_rate: float = 0.0
    latency_ms: float = 0.0
    routes: frozenset[str] = frozenset()
    _acc: dict[str, float] = field(default_factory=dict)
    _seen: int = 0
    _failed: int = 0
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    @classmethod
    def from_env(cls, environ: Mapping[str, str] = os.environ) -> Faults:
        faults = cls()
        faults.update(
            {
                "error_rate": float(environ.get("EXAMPLE_ERROR_RATE", "0") or 0),
                "latency_ms": float(environ.get("EXAMPLE_LATENCY_MS", "0") or 0),
            }
        )
        return faults

    def update(self, body: Mapping[str, Any]) -> dict[str, Any]:
        """Apply new settings (validated first: nothing changes on a bad body)."""
        unknown = set(body) - {"error_rate", "latency_ms", "routes"}
        if unknown:
            raise FaultSettingsError(f"unknown field(s): {', '.join(sorted(unknown))}")
        with self._lock:
            rate = _number(body, "error_rate", self.error_rate)
            latency = _number(body, "latency_ms", self.latency_ms)
            routes = body.get("routes", sorted(self.routes))
            if not 0.0 <= rate <= 1.0:
                raise FaultSettingsError("error_rate must be between 0 and 1")
            if not 0.0 <= latency <= 60_000:
                raise FaultSettingsError("latency_ms must be between 0 and 60000")
            if not isinstance(routes, list) or not all(isinstance(r, str) for r in routes):
                raise FaultSettingsError("routes must be a list of route templates")
            if rate != self.error_rate:
                self._acc.clear()
            self.error_rate, self.latency_ms, self.routes = rate, latency, frozenset(routes)
        return self.snapshot()

    def decide(self, route: str) -> Decision:
        """Decide for one request on `route` (a route template) and count it."""
        with self._lock:
            if self.routes and route not in self.routes:
                return Decision(False, 0.0)
            self._seen += 1
            acc = self._acc.get(route, 0.0) + self.error_rate
            fail = acc >= 1.0 - 1e-9
            if fail:
                acc -= 1.0
                self._failed += 1
            self._acc[route] = acc
            return Decision(fail, self.latency_ms / 1000.0)

    def snapshot(self) -> dict[str, Any]:
        return {
            "error_rate": self.error_rate,
            "latency_ms": self.latency_ms,
            "routes": sorted(self.routes),
            "requests_seen": self._seen,
            "requests_failed": self._failed,
        }


def _number(body: Mapping[str, Any], key: str, default: float) -> float:
    value = body.get(key, default)
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise FaultSettingsError(f"{key} must be a number")
    return float(value)
