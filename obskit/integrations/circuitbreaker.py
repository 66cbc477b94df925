"""circuitbreaker adapter: every `@circuit` breaker (sync, async, generators; created before or
after init) feeds runtime.resilience.

circuitbreaker has no listener API, so three members are wrapped:
- `CircuitBreaker.decorate`: a breaker protecting a function from now on (its gauge appears);
- `CircuitBreaker.__exit__`, through which every protected call ends: `failure` when the
  breaker counted the error (it stored it as `last_failure`), else `success`;
- the `opened` property, which the decorated function reads first on every call: read from
  one of circuitbreaker's own call wrappers while open, it is a call `rejected` before the
  protected function ran (or answered by the `fallback_function`).
circuitbreaker changes state lazily (open becomes half_open once `recovery_timeout` passed,
seen at the next call), so transitions are recorded when obskit sees a new state: after each
call and at each call's start.

`breaker` follows the issue's rule: the breaker's name, and for an unnamed breaker
`module.qualname` of the first function it protects. circuitbreaker fills an unnamed breaker's
name itself with the function's bare `__qualname__` when it decorates, so a name equal to the
protected function's `__qualname__` (or `__name__`) counts as unnamed; this gives one label
whether the breaker was decorated before or after init(). The function is read from
circuitbreaker's own call wrapper (or from `decorate`, `call(func)`), so a breaker decorated
before init() gets its state gauge at its first call, like pybreaker's; one decorated after init()
at decoration. A breaker used only as a bare `with breaker:` block and never named takes
`module.qualname` of the function around the block.
"""

from __future__ import annotations

import sys
import weakref
from collections.abc import Callable
from typing import Any, Final

from obskit import semconv
from obskit.integrations._patch import Patches
from obskit.runtime import errors, resilience

LIBRARY: Final = "circuitbreaker"
_SKIP: Final = ("circuitbreaker", "obskit")
_patches = Patches()
_states: weakref.WeakKeyDictionary[Any, str] = weakref.WeakKeyDictionary()
_labels: weakref.WeakKeyDictionary[Any, str] = weakref.WeakKeyDictionary()
_wrappers: set[Any] = set()  # code objects of circuitbreaker's per-call wrappers (`function`)
_callers: set[Any] = set()  # code objects of CircuitBreaker.call & co (`func`)


def _label(cb: Any, function: Any = None) -> str:
    """The `breaker` label of `cb`, fixed the first time obskit sees it (see the docstring)."""
    label = _labels.get(cb)
    if label is None:
        name = cb.name
        if function is not None and (
            not name
            or name == getattr(function, "__qualname__", None)
            or name == getattr(function, "__name__", None)
        ):
            label = resilience.callable_name(function)
        elif name:
            label = str(name)
        else:
            label = resilience.caller_name(_SKIP)  # a bare `with breaker:` block
        _labels[cb] = label
    return label


def _sync(cb: Any) -> str:
    """Record the breaker's state if it changed since obskit last looked; returns it."""
    state = str(cb.state)
    known = _states.get(cb)
    if known != state:
        _states[cb] = state
        if known is None:
            resilience.breaker_seen(_label(cb), state)
        else:
            resilience.breaker_transition(_label(cb), known, state)
    return state


def _decorate(original: Callable[..., Any]) -> Callable[..., Any]:
    def decorate(self: Any, function: Any) -> Any:
        try:
            _label(self, function)
        except Exception as exc:  # noqa: BLE001 - never into the user's code
            errors.record("circuitbreaker adapter", exc)
        result = original(self, function)
        try:
            _sync(self)
        except Exception as exc:  # noqa: BLE001 - never into the user's code
            errors.record("circuitbreaker adapter", exc)
        return result

    return decorate


def _exit(original: Callable[..., Any]) -> Callable[..., Any]:
    def __exit__(self: Any, exc_type: Any, exc_value: Any, traceback: Any) -> Any:
        result = original(self, exc_type, exc_value, traceback)
        try:
            if self not in _labels:  # first seen here: `breaker.call(func)` or a `with` block
                frame = sys._getframe(1)
                _label(self, frame.f_locals.get("func") if frame.f_code in _callers else None)
            _sync(self)
            failed = exc_type is not None and self.last_failure is exc_value
            resilience.breaker_call(
                _label(self), semconv.BREAKER_FAILURE if failed else semconv.BREAKER_SUCCESS
            )
        except Exception as exc:  # noqa: BLE001 - never into the user's call
            errors.record("circuitbreaker adapter", exc)
        return result

    return __exit__


def _opened(original: Any) -> property:
    fget = original.fget

    def opened(self: Any) -> Any:
        result = fget(self)
        try:
            frame = sys._getframe(1)
            if frame.f_code in _wrappers:  # a call through the decorated function starts
                if self not in _labels:
                    _label(self, frame.f_locals.get("function"))
                _sync(self)
                if result:
                    resilience.breaker_call(_label(self), semconv.BREAKER_REJECTED)
        except Exception as exc:  # noqa: BLE001 - never into the user's call
            errors.record("circuitbreaker adapter", exc)
        return result

    return property(opened, doc=original.__doc__)


def instrument() -> None:
    import circuitbreaker  # noqa: PLC0415 - only once circuitbreaker itself is imported

    breaker = circuitbreaker.CircuitBreaker
    for decorate in (breaker._decorate_sync, breaker._decorate_async):
        _wrappers.update(c for c in decorate.__code__.co_consts if hasattr(c, "co_qualname"))
    for name in ("call", "call_generator", "call_async", "call_async_generator"):
        method = vars(breaker).get(name)
        if method is not None:
            _callers.add(method.__code__)
    _patches.wrap(breaker, "decorate", _decorate)
    _patches.wrap(breaker, "__exit__", _exit)
    _patches.wrap(breaker, "opened", lambda _: _opened(vars(breaker)["opened"]))


def uninstrument() -> None:
    _patches.restore()
    _states.clear()
    _labels.clear()
