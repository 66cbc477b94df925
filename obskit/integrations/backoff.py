"""backoff adapter: every `@backoff.on_exception` / `@backoff.on_predicate` function (sync and
async, decorated before or after init) feeds runtime.resilience.

backoff's hooks are `on_success`, `on_backoff` and `on_giveup` handler lists, fixed per
decorated function when it is decorated (usually at import, before init), and an error the
policy does not retry passes through no handler at all. So the adapter wraps three things:
- `_call_handlers` in backoff's sync and async modules, through which every handler list is
  dispatched: a dispatch of a function's `on_backoff` list is a scheduled retry, of its
  `on_success` list a success, of its `on_giveup` list a give-up (backoff's own handlers and
  the application's run as before, and get the same `details`);
- `_init_wait_gen`, called once at the start of each logical call;
- the decorated function's `target` (the user's function inside backoff's closure), observed
  per attempt, so that an error the policy does not retry (not in `exception`, or any error
  under `on_predicate`) ends the call as `failed`/`exhausted` before it propagates.
Functions decorated after the adapter is installed are observed as they are decorated. Those
decorated before are found once, at install, as the referrers of backoff's `retry` closure code
(one `gc.get_referrers` pass over the heap: about 25 ms per million gc-tracked objects here). The
pass is skipped when the code objects' reference counts show no such function exists (backoff
imported after init(), or imported and unused): each function holds one reference to its code.
`retry.__wrapped__` and every handler's `details["target"]` stay the user's function.
"""

from __future__ import annotations

import functools
import gc
import inspect
import sys
import weakref
from collections.abc import Callable
from contextvars import ContextVar
from types import FunctionType, ModuleType
from typing import Any, Final

from obskit.integrations._patch import Patches
from obskit.runtime import errors, resilience

LIBRARY: Final = "backoff"
_TARGET: Final = "__obskit_target__"
_ROLES: Final = (("on_success", "success"), ("on_backoff", "backoff"), ("on_giveup", "giveup"))
_FACTORIES: Final = ("retry_exception", "retry_predicate")
_patches = Patches()
_observed: weakref.WeakSet[FunctionType] = weakref.WeakSet()
_codes: set[Any] = set()
_current: ContextVar[Call | None] = ContextVar("obskit_backoff_call", default=None)


class Policy:
    """What obskit knows about one decorated function."""

    __slots__ = ("exception", "operation", "roles", "target")

    def __init__(self, target: Any, roles: dict[int, str], exception: Any) -> None:
        self.target = target
        self.operation = resilience.callable_name(target)
        self.roles = roles
        self.exception = exception  # None: on_predicate (every exception escapes)


class Call:
    """One logical call through a backoff policy."""

    __slots__ = ("done", "policy", "previous", "previous_attempt", "tries")

    def __init__(self) -> None:
        self.policy: Policy | None = None
        self.tries = 0
        self.done = False
        self.previous = _current.get()
        self.previous_attempt = resilience.current_attempt()

    def finish(self, succeeded: bool, error: BaseException | None) -> None:
        if self.done or self.policy is None:
            return
        self.done = True
        _current.set(self.previous)
        resilience.restore_attempt(self.previous_attempt)
        tries = max(self.tries, 1)
        outcome = resilience.outcome_of(succeeded, tries)
        resilience.retry_finished(self.policy.operation, outcome, tries, error)


# -- observing one decorated function ----------------------------------------------------
def _begin(policy: Policy) -> Call | None:
    call = _current.get()
    if call is None or call.done:
        return None
    if call.policy is None:
        call.policy = policy
    elif call.policy is not policy:
        return None
    call.tries += 1
    resilience.set_attempt(call.tries)
    return call


def _escaped(call: Call | None, policy: Policy, exc: BaseException) -> None:
    try:
        if call is not None and (policy.exception is None or not isinstance(exc, policy.exception)):
            call.finish(False, exc)  # an error the policy does not retry: it propagates now
    except Exception as error:  # noqa: BLE001 - never into the user's call
        errors.record("backoff adapter", error)


def _observer(target: Any, policy: Policy) -> Any:
    if inspect.iscoroutinefunction(target):

        @functools.wraps(target)
        async def observed_async(*args: Any, **kwargs: Any) -> Any:
            call = _safe_begin(policy)
            try:
                return await target(*args, **kwargs)
            except BaseException as exc:
                _escaped(call, policy, exc)
                raise

        setattr(observed_async, _TARGET, target)
        return observed_async

    @functools.wraps(target)
    def observed(*args: Any, **kwargs: Any) -> Any:
        call = _safe_begin(policy)
        try:
            return target(*args, **kwargs)
        except BaseException as exc:
            _escaped(call, policy, exc)
            raise

    setattr(observed, _TARGET, target)
    return observed


def _safe_begin(policy: Policy) -> Call | None:
    try:
        return _begin(policy)
    except Exception as exc:  # noqa: BLE001 - never into the user's call
        errors.record("backoff adapter", exc)
        return None


def _observe(fn: Any) -> None:
    """Swap the `target` in one of backoff's `retry` closures for an observer."""
    cells = dict(zip(fn.__code__.co_freevars, fn.__closure__ or (), strict=False))
    cell = cells.get("target")
    if cell is None:
        return
    target = cell.cell_contents
    if hasattr(target, _TARGET):
        return
    roles = {id(cells[name].cell_contents): role for name, role in _ROLES if name in cells}
    exception = cells["exception"].cell_contents if "exception" in cells else None
    cell.cell_contents = _observer(target, Policy(target, roles, exception))
    _observed.add(fn)


def _unobserve(fn: Any) -> None:
    cells = dict(zip(fn.__code__.co_freevars, fn.__closure__ or (), strict=False))
    cell = cells.get("target")
    if cell is not None and hasattr(cell.cell_contents, _TARGET):
        cell.cell_contents = getattr(cell.cell_contents, _TARGET)


# -- the wrapped module functions ----------------------------------------------------------
def _start(original: Callable[..., Any]) -> Callable[..., Any]:
    def _init_wait_gen(wait_gen: Any, wait_gen_kwargs: Any) -> Any:
        initialized = original(wait_gen, wait_gen_kwargs)
        try:
            _current.set(Call())
        except Exception as exc:  # noqa: BLE001 - never into the user's call
            errors.record("backoff adapter", exc)
        return initialized

    return _init_wait_gen


def _dispatched(handlers: Any, kwargs: dict[str, Any]) -> None:
    """Record what dispatching `handlers` means; give handlers the user's own target."""
    target = kwargs.get("target")
    if target is not None and hasattr(target, _TARGET):
        kwargs["target"] = getattr(target, _TARGET)
    try:
        call = _current.get()
        policy = call.policy if call is not None else None
        if call is None or call.done or policy is None:
            return
        role = policy.roles.get(id(handlers))
        error = kwargs.get("exception")
        if role == "backoff":
            wait = float(kwargs.get("wait") or 0.0)
            resilience.retry_scheduled(policy.operation, int(kwargs["tries"]), error, wait)
        elif role == "success":
            call.finish(True, None)
        elif role == "giveup":
            call.finish(False, error)
    except Exception as exc:  # noqa: BLE001 - never into the user's call
        errors.record("backoff adapter", exc)


def _sync_handlers(original: Callable[..., Any]) -> Callable[..., Any]:
    def _call_handlers(hdlrs: Any, *args: Any, **kwargs: Any) -> Any:
        if args:  # positional (target, args, kwargs, tries, elapsed) as backoff declares them
            names = ("target", "args", "kwargs", "tries", "elapsed")
            kwargs = {**dict(zip(names, args, strict=False)), **kwargs}
        _dispatched(hdlrs, kwargs)
        return original(hdlrs, **kwargs)

    return _call_handlers


def _async_handlers(original: Callable[..., Any]) -> Callable[..., Any]:
    async def _call_handlers(handlers: Any, **kwargs: Any) -> Any:
        _dispatched(handlers, kwargs)
        return await original(handlers, **kwargs)

    return _call_handlers


def _factory(original: Callable[..., Any]) -> Callable[..., Any]:
    @functools.wraps(original)
    def factory(*args: Any, **kwargs: Any) -> Any:
        retry = original(*args, **kwargs)
        try:
            _observe(retry)
        except Exception as exc:  # noqa: BLE001 - never into the user's code
            errors.record("backoff adapter", exc)
        return retry

    return factory


def _closure_codes(module: ModuleType) -> set[Any]:
    codes: set[Any] = set()
    for name in _FACTORIES:
        factory = getattr(module, name)
        codes.update(c for c in factory.__code__.co_consts if getattr(c, "co_name", "") == "retry")
    return codes


def instrument() -> None:
    from backoff import _async, _sync  # noqa: PLC0415 - only once backoff itself is imported

    for module, handlers in ((_sync, _sync_handlers), (_async, _async_handlers)):
        _codes.update(_closure_codes(module))
        _patches.wrap(module, "_init_wait_gen", _start)
        _patches.wrap(module, "_call_handlers", handlers)
        for name in _FACTORIES:
            _patches.wrap(module, name, _factory)
    for referrer in _decorated_before():
        try:
            _observe(referrer)
        except Exception as exc:  # noqa: BLE001 - never into the user's code
            errors.record("backoff adapter", exc)


_UNUSED_REFS: Final = 4
"""sys.getrefcount of a closure code no function uses, as counted in `_decorated_before`: its
factory's co_consts, `_codes`, the loop variable and getrefcount's own argument. Each live
function (or running frame) of that code adds one, and then we look; anything else holding the
code only makes us look when there was no need."""


def _decorated_before() -> list[FunctionType]:
    """backoff-decorated functions that exist now (one heap pass, only if there can be any)."""
    if all(sys.getrefcount(code) <= _UNUSED_REFS for code in _codes):
        return []
    return [
        referrer
        for referrer in gc.get_referrers(*_codes)
        if isinstance(referrer, FunctionType) and referrer.__code__ in _codes
    ]


def uninstrument() -> None:
    _patches.restore()
    for fn in list(_observed):
        _unobserve(fn)
    _observed.clear()
