"""Errors inside obskit's instrumentation or a user hook: counted and logged, never raised."""

from __future__ import annotations

import itertools
import logging
import time

_log = logging.getLogger("obskit")
_count = itertools.count()
_last: dict[str, float] = {}
INTERVAL = 60.0


def record(where: str, exc: BaseException) -> None:
    """Count an instrumentation error and log it at most once per interval per place."""
    next(_count)
    now = time.monotonic()
    if now - _last.get(where, -1e18) >= INTERVAL:
        _last[where] = now
        _log.error(
            "obskit: error in %s (request unaffected): %s: %s",
            where,
            type(exc).__name__,
            exc,
            exc_info=exc,
        )


def total() -> int:
    return int(repr(_count)[6:-1])


def reset() -> None:
    global _count  # noqa: PLW0603
    _count = itertools.count()
    _last.clear()
