"""pybreaker adapter: every `CircuitBreaker` feeds runtime.resilience through pybreaker's own
listener API, plus one wrapper for what listeners cannot see (a call rejected while open).

- A breaker created after init() gets obskit's listener at creation (`__init__` wrapped); one
  created before init() gets it at its first call (pybreaker keeps no registry of breakers).
  The state gauge exists from then on.
- The listener turns `success`, `failure` (including the call that trips the breaker) and
  `state_change` into signals; `CircuitBreaker.call` is wrapped to count a
  `CircuitBreakerError` raised before the protected function ran as `rejected`.
- `breaker` is the breaker's `name`; an unnamed breaker takes `module.qualname` of the first
  function it protects (decorated, or passed to `call`; for `with breaker.calling():`, the
  function containing the block).

The listener shows in `breaker.listeners`; nothing else about the breaker changes: every
listener method catches its own errors (pybreaker would propagate them into the call).
"""

from __future__ import annotations

from collections.abc import Callable
from contextvars import ContextVar
from typing import Any, Final

from obskit import semconv
from obskit.integrations._patch import Patches
from obskit.runtime import errors, resilience

LIBRARY: Final = "pybreaker"
_KEY: Final = "_obskit_listener"
_SKIP: Final = ("pybreaker", "obskit", "contextlib")
_patches = Patches()
_STATES: Final = {
    "closed": semconv.STATE_CLOSED,
    "open": semconv.STATE_OPEN,
    "half-open": semconv.STATE_HALF_OPEN,
}
_calling: ContextVar[tuple[Any, list[bool]] | None] = ContextVar(
    "obskit_pybreaker_call", default=None
)
"""(breaker, [protected function started?]) for the outermost call of a breaker in progress."""


def _state(name: Any) -> str:
    return _STATES.get(str(name), str(name).replace("-", "_"))


class Listener:
    """obskit's pybreaker listener (one per breaker): translates its events."""

    def __init__(self, name: str | None) -> None:
        self.name = name
        self.generation = -1  # resilience.generation when the breaker was last announced

    def label(self, cb: Any) -> str | None:
        name = cb.name
        return str(name) if name else self.name

    def learn(self, cb: Any, func: Any) -> None:
        """Name an unnamed breaker after the first function it protects; make it known."""
        if self.name is None and not cb.name:
            module = getattr(func, "__module__", None) or ""
            if module == "pybreaker" or module.startswith("pybreaker."):
                self.name = resilience.caller_name(_SKIP, 3)  # `with breaker.calling():`
            else:
                self.name = resilience.callable_name(func)
        self.seen(cb)

    def seen(self, cb: Any) -> None:
        name = self.label(cb)
        if name is not None and self.generation != resilience.generation:
            self.generation = resilience.generation
            resilience.breaker_seen(name, _state(cb.current_state))

    # pybreaker's listener interface
    def before_call(self, cb: Any, func: Any, *args: Any, **kwargs: Any) -> None:
        try:
            entry = _calling.get()
            if entry is not None and entry[0] is cb:
                entry[1][0] = True
        except Exception as exc:  # noqa: BLE001 - pybreaker would raise it into the call
            errors.record("pybreaker listener", exc)

    def success(self, cb: Any) -> None:
        self._call(cb, semconv.BREAKER_SUCCESS)

    def failure(self, cb: Any, exc: BaseException) -> None:
        self._call(cb, semconv.BREAKER_FAILURE)

    def state_change(self, cb: Any, old_state: Any, new_state: Any) -> None:
        try:
            name = self.label(cb)
            if name is not None:
                old = _state(old_state.name) if old_state is not None else None
                resilience.breaker_transition(name, old, _state(new_state.name))
        except Exception as exc:  # noqa: BLE001 - pybreaker would raise it into the call
            errors.record("pybreaker listener", exc)

    def _call(self, cb: Any, outcome: str) -> None:
        try:
            name = self.label(cb)
            if name is not None:
                resilience.breaker_call(name, outcome)
        except Exception as exc:  # noqa: BLE001 - pybreaker would raise it into the call
            errors.record("pybreaker listener", exc)


def _listener(cb: Any) -> Listener:
    listener: Listener | None = cb.__dict__.get(_KEY)
    if listener is None:
        listener = Listener(None)
        cb.__dict__[_KEY] = listener
        cb.add_listener(listener)
    return listener


def _init(original: Callable[..., Any]) -> Callable[..., Any]:
    def __init__(self: Any, *args: Any, **kwargs: Any) -> None:
        original(self, *args, **kwargs)
        try:
            _listener(self).seen(self)
        except Exception as exc:  # noqa: BLE001 - never into the user's code
            errors.record("pybreaker adapter", exc)

    return __init__


def _decorate(original: Callable[..., Any]) -> Callable[..., Any]:
    def __call__(self: Any, *call_args: Any, **call_kwargs: Any) -> Any:
        if call_args and callable(call_args[0]):
            try:
                _listener(self).learn(self, call_args[0])
            except Exception as exc:  # noqa: BLE001 - never into the user's code
                errors.record("pybreaker adapter", exc)
        return original(self, *call_args, **call_kwargs)

    return __call__


def _call(original: Callable[..., Any], rejected_error: type[BaseException]) -> Callable[..., Any]:
    def call(self: Any, func: Any, *args: Any, **kwargs: Any) -> Any:
        entry = _calling.get()
        if entry is not None and entry[0] is self:  # pybreaker re-enters call() on half-open
            return original(self, func, *args, **kwargs)
        listener: Listener | None = self.__dict__.get(_KEY)
        if listener is None or listener.generation != resilience.generation:
            try:
                listener = _listener(self)
                listener.learn(self, func)
            except Exception as exc:  # noqa: BLE001 - never into the user's call
                errors.record("pybreaker adapter", exc)
        started = [False]
        token = _calling.set((self, started))
        try:
            return original(self, func, *args, **kwargs)
        except rejected_error:
            if not started[0] and listener is not None:
                listener._call(self, semconv.BREAKER_REJECTED)
            raise
        finally:
            _calling.reset(token)

    return call


def instrument() -> None:
    import pybreaker  # noqa: PLC0415 - only once pybreaker itself is imported

    error = pybreaker.CircuitBreakerError
    _patches.wrap(pybreaker.CircuitBreaker, "__init__", _init)
    _patches.wrap(pybreaker.CircuitBreaker, "__call__", _decorate)
    _patches.wrap(pybreaker.CircuitBreaker, "call", lambda original: _call(original, error))


def uninstrument() -> None:
    _patches.restore()
