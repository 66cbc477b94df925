"""Run one library scenario without obskit and with it: the library must behave the same."""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

from obskit.testing import Capture, capture


def outcome(scenario: Callable[[], Any]) -> tuple[str, Any]:
    """What a caller observes: ("value", v) or ("raised", (type name, message))."""
    try:
        return ("value", scenario())
    except BaseException as exc:  # noqa: BLE001 - the scenario's error is the observation
        return ("raised", (type(exc).__name__, re.sub(r"0x[0-9a-f]+", "0x", str(exc))))


@contextmanager
def with_and_without(scenario: Callable[[], Any]) -> Iterator[tuple[tuple[str, Any], Capture]]:
    """Yield (what the scenario did, capture) after checking obskit changed nothing.

    The scenario must build its policy/breaker itself and return everything observable
    (value, attempt counts, breaker states); it runs once before init() and once inside
    `capture()`, and both observations must be equal.
    """
    plain = outcome(scenario)
    with capture(service="t", traces_enabled=True) as cap:
        observed = outcome(scenario)
        assert observed == plain, f"obskit changed the library's behaviour: {plain} -> {observed}"
        yield observed, cap


def retry_calls(cap: Capture, operation: str) -> dict[str, float]:
    return {
        o: cap.sample("obskit_retry_calls_total", operation=operation, outcome=o) or 0.0
        for o in ("success", "recovered", "exhausted", "failed")
        if cap.sample("obskit_retry_calls_total", operation=operation, outcome=o)
    }


def retries(cap: Capture, operation: str) -> float:
    return cap.sample("obskit_retries_total", operation=operation) or 0.0
