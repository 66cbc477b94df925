"""circuitbreaker adapter: every `@circuit` breaker (sync, async, generators; created before or
after init) feeds runtime.resilience.

circuitbreaker has no listener API, only `CircuitBreakerMonitor`, a registry of the breakers
it decorated: those known at init() get their state gauge then, later ones when they are
registered. Two members are wrapped:
- `CircuitBreaker.__exit__`, through which every protected call ends: `failure` when the
  breaker counted the error (it stored it as `last_failure`), else `success`;
- the `opened` property, which the decorated function reads first on every call: read from
  one of circuitbreaker's own call wrappers while open, it is a call `rejected` before the
  protected function ran (or answered by the `fallback_function`).
circuitbreaker changes state lazily (open becomes half_open once `recovery_timeout` passed,
seen at the next call), so transitions are recorded when obskit sees a new state: after each
call and at each call's start. `breaker` is the breaker's name; circuitbreaker names an
unnamed breaker itself (the decorated function's `__qualname__`) and obskit keeps that name,
so the label matches `CircuitBreakerMonitor.get(name)`. A breaker used only as a bare
`with breaker:` block and never named takes `module.qualname` of the function around it.
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
_names: weakref.WeakKeyDictionary[Any, str] = weakref.WeakKeyDictionary()
_wrappers: set[Any] = set()  # code objects of circuitbreaker's per-call wrappers


def _name(cb: Any) -> str:
    name = cb.name
    if name:
        return str(name)
    fallback = _names.get(cb)
    if fallback is None:
        fallback = _names[cb] = resilience.caller_name(_SKIP, 3)
    return fallback


def _sync(cb: Any) -> str:
    """Record the breaker's state if it changed since obskit last looked; returns it."""
    state = str(cb.state)
    known = _states.get(cb)
    if known != state:
        _states[cb] = state
        if known is None:
            resilience.breaker_seen(_name(cb), state)
        else:
            resilience.breaker_transition(_name(cb), known, state)
    return state


def _exit(original: Callable[..., Any]) -> Callable[..., Any]:
    def __exit__(self: Any, exc_type: Any, exc_value: Any, traceback: Any) -> Any:
        result = original(self, exc_type, exc_value, traceback)
        try:
            _sync(self)
            failed = exc_type is not None and self.last_failure is exc_value
            resilience.breaker_call(
                _name(self), semconv.BREAKER_FAILURE if failed else semconv.BREAKER_SUCCESS
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
            _sync(self)
            if result and sys._getframe(1).f_code in _wrappers:
                resilience.breaker_call(_name(self), semconv.BREAKER_REJECTED)
        except Exception as exc:  # noqa: BLE001 - never into the user's call
            errors.record("circuitbreaker adapter", exc)
        return result

    return property(opened, doc=original.__doc__)


def _register(original: Any) -> classmethod:  # type: ignore[type-arg]
    register = original.__func__

    def wrapped(cls: Any, circuit_breaker: Any) -> Any:
        result = register(cls, circuit_breaker)
        try:
            _sync(circuit_breaker)
        except Exception as exc:  # noqa: BLE001 - never into the user's code
            errors.record("circuitbreaker adapter", exc)
        return result

    return classmethod(wrapped)


def instrument() -> None:
    import circuitbreaker  # noqa: PLC0415 - only once circuitbreaker itself is imported

    breaker = circuitbreaker.CircuitBreaker
    for decorate in (breaker._decorate_sync, breaker._decorate_async):
        _wrappers.update(c for c in decorate.__code__.co_consts if hasattr(c, "co_qualname"))
    monitor = circuitbreaker.CircuitBreakerMonitor
    _patches.wrap(breaker, "__exit__", _exit)
    _patches.wrap(breaker, "opened", lambda _: _opened(vars(breaker)["opened"]))
    _patches.wrap(monitor, "register", lambda _: _register(vars(monitor)["register"]))
    for known in list(monitor.get_circuits()):
        try:
            _sync(known)
        except Exception as exc:  # noqa: BLE001 - never into the user's code
            errors.record("circuitbreaker adapter", exc)


def uninstrument() -> None:
    _patches.restore()
    _states.clear()
    _names.clear()
