"""obskit's benchmarks (see docs/performance.md)."""

from __future__ import annotations

from collections.abc import Iterable
from typing import TypeVar

T = TypeVar("T")


def rotated(items: Iterable[T], turn: int) -> list[T]:
    """`items` in the order of round `turn`: starting `turn` places further on, wrapping, so
    that over the rounds no variant always runs first or right after the same one."""
    order = list(items)
    shift = turn % len(order) if order else 0
    return order[shift:] + order[:shift]
