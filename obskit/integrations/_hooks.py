"""Post-import hooks: run a callback once a module has been imported, now or later.

An adapter must never import a library the application does not use, yet must also cover a
library imported after `obskit.init()`. `when_imported(name, callback)` runs the callback at
once when `name` is already in `sys.modules`; otherwise a meta-path finder notices the first
import of `name`, lets the real loader execute the module, then runs the callbacks. The
module's own spec and loader are left as they were. `clear()` removes every pending hook.
"""

from __future__ import annotations

import importlib.abc
import importlib.machinery
import importlib.util
import sys
import threading
from collections.abc import Callable, Sequence
from types import ModuleType
from typing import Any

Callback = Callable[[ModuleType], None]

_lock = threading.RLock()
_pending: dict[str, list[Callback]] = {}
_searching = threading.local()


def when_imported(name: str, callback: Callback) -> None:
    """Run `callback(module)` now if `name` is imported, else right after its first import."""
    with _lock:
        module = sys.modules.get(name)
        if module is None:
            _pending.setdefault(name, []).append(callback)
            if _FINDER not in sys.meta_path:
                sys.meta_path.insert(0, _FINDER)
            return
    callback(module)


def clear() -> None:
    """Forget every pending hook and take the finder off `sys.meta_path`."""
    with _lock:
        _pending.clear()
        if _FINDER in sys.meta_path:
            sys.meta_path.remove(_FINDER)


def pending() -> frozenset[str]:
    """Module names whose import is still awaited."""
    with _lock:
        return frozenset(_pending)


class _Loader(importlib.abc.Loader):
    """Delegates to the real loader, then runs the hooks for the module it executed."""

    def __init__(self, real: Any, name: str) -> None:
        self.real = real
        self.name = name

    def create_module(self, spec: importlib.machinery.ModuleSpec) -> ModuleType | None:
        create = getattr(self.real, "create_module", None)
        return create(spec) if create is not None else None

    def exec_module(self, module: ModuleType) -> None:
        spec = module.__spec__
        if spec is not None:  # the module sees its own loader, not this wrapper
            spec.loader = self.real
        module.__loader__ = self.real
        self.real.exec_module(module)
        with _lock:
            callbacks = _pending.pop(self.name, [])
            if not _pending and _FINDER in sys.meta_path:
                sys.meta_path.remove(_FINDER)
        for callback in callbacks:
            callback(module)


class _Finder(importlib.abc.MetaPathFinder):
    def find_spec(
        self,
        fullname: str,
        path: Sequence[str] | None,
        target: ModuleType | None = None,
    ) -> importlib.machinery.ModuleSpec | None:
        if fullname not in _pending or getattr(_searching, "name", None) == fullname:
            return None
        _searching.name = fullname  # the real finders run below; do not answer them ourselves
        try:
            spec = importlib.util.find_spec(fullname)
        finally:
            _searching.name = None
        if spec is None or spec.loader is None or not hasattr(spec.loader, "exec_module"):
            return spec
        spec.loader = _Loader(spec.loader, fullname)
        return spec


_FINDER = _Finder()
