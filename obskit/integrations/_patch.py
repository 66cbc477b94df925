"""Reversible monkey-patching for adapters: wrap an attribute once, restore it on reset."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

_INHERITED = object()


class Patches:
    """The attributes one adapter replaced, so `restore()` can put the originals back."""

    __slots__ = ("_originals",)

    def __init__(self) -> None:
        self._originals: list[tuple[Any, str, Any]] = []  # (owner, name, own value or _INHERITED)

    def wrap(self, owner: Any, name: str, wrapper: Callable[[Any], Any]) -> None:
        """Replace `owner.name` by `wrapper(original)`; a second wrap of the same one is a no-op."""
        if any(o is owner and n == name for o, n, _ in self._originals):
            return
        own = vars(owner).get(name, _INHERITED)  # the descriptor as defined, or inherited
        self._originals.append((owner, name, own))
        setattr(owner, name, wrapper(getattr(owner, name)))

    def restore(self) -> None:
        while self._originals:
            owner, name, own = self._originals.pop()
            if own is _INHERITED:
                delattr(owner, name)
            else:
                setattr(owner, name, own)

    def __bool__(self) -> bool:
        return bool(self._originals)
