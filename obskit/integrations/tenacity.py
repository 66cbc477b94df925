"""tenacity adapter: every retry policy (decorator, `Retrying(...)` call or loop, sync and
async, created before or after init) feeds runtime.resilience.

tenacity's public hooks (`before_sleep`, `retry_error_callback`...) are per policy object and
say nothing about success, so this adapter wraps the one method every policy goes through to
decide: `iter(retry_state)` (`BaseRetrying.iter`, `AsyncRetrying.iter`). What it returns is the
decision: `DoAttempt` (an attempt starts), `DoSleep` (a retry is scheduled), anything else (the
call ends: a value, or `retry_error_callback`'s fallback when the stop condition fired), or it
raises (the call ends with an error: RetryError, the reraised error, or a non-retried one).
The `for attempt in Retrying()` form also ends when a `with attempt:` block succeeds (the loop
is usually left with `return`), so `AttemptManager.__exit__` is wrapped too, and a loop left
early (`break`) is closed out by wrapping `BaseRetrying.__iter__` (an `async for` loop left with
`break` before tenacity decided cannot be: it is not counted). In the loop form the attempt
number (http.request.resend_count) is set only inside the `with attempt:` block
(`AttemptManager.__enter__`/`__exit__`), so an abandoned loop leaves no stale number behind.

Each call is counted once: its state lives on tenacity's `RetryCallState` (attribute
`_obskit_call`). Policies built by stamina are recognised; their retries are recorded by
stamina's own hook (obskit.integrations.stamina) when it is installed, never twice.
The wrappers call through first and return or raise exactly what tenacity did.
"""

from __future__ import annotations

from collections.abc import Callable, Generator
from contextvars import ContextVar
from types import FunctionType, MethodType
from typing import Any, Final

from obskit import semconv
from obskit.integrations._patch import Patches
from obskit.runtime import errors, resilience

LIBRARY: Final = "tenacity"
SKIP: Final = ("tenacity", "stamina", "obskit")
"""Packages whose frames are not "the function that contains the loop"."""
_KEY: Final = "_obskit_call"
_patches = Patches()
_ATTEMPT: Final = resilience.ATTEMPT
_SUCCESS, _RECOVERED = semconv.RETRY_SUCCESS, semconv.RETRY_RECOVERED
_FAILED, _EXHAUSTED = semconv.RETRY_FAILED, semconv.RETRY_EXHAUSTED
_NAMES: Final = 10_000
_names: dict[Any, str] = {}
"""Code object of a retried function -> operation (decorated once, called often)."""
current: ContextVar[Call | None] = ContextVar("obskit_tenacity_call", default=None)
"""The call whose attempt runs in this context (stamina's hook attaches its retries to it)."""


class Call:
    """One logical call through a tenacity policy."""

    __slots__ = ("done", "hooked", "operation", "previous", "previous_attempt", "stamina")

    def __init__(self, operation: str, stamina: bool) -> None:
        self.operation = operation
        self.stamina = stamina  # only then is it `current`: stamina's hook looks it up
        self.done = False
        self.hooked = 0  # the last attempt whose retry stamina's hook recorded
        self.previous: Call | None = current.get() if stamina else None
        self.previous_attempt = _ATTEMPT.get()

    def finish(self, succeeded: bool, attempts: int, error: BaseException | None) -> None:
        if self.done:
            return
        self.done = True
        if self.stamina:
            current.set(self.previous)
        _ATTEMPT.set(self.previous_attempt)
        if succeeded:
            outcome = _SUCCESS if attempts <= 1 else _RECOVERED
        else:
            outcome = _FAILED if attempts <= 1 else _EXHAUSTED
        resilience.retry_finished(self.operation, outcome, attempts, error)


def _operation(retrying: Any, retry_state: Any) -> tuple[str, bool]:
    """(operation, built by stamina?) for a call that is starting."""
    before = getattr(retrying, "before", None)
    owner = before.__self__ if type(before) is MethodType else None  # stamina's is a method
    if owner is not None and type(owner).__module__.startswith("stamina"):
        name = getattr(owner, "_name", None)
        if isinstance(name, str) and not name.startswith("<"):
            return name, True  # stamina.retry: stamina's module.qualname of the callable
        return resilience.caller_name(SKIP, 4), True  # retry_context / RetryingCaller
    fn = retry_state.fn
    if fn is None:
        hook: Any = getattr(retrying, "before_sleep", None)
        if isinstance(hook, FunctionType) and (hook.__module__ or "").startswith("stamina"):
            # stamina before 25.1: its policy's before_sleep is a closure over its name
            cells = dict(zip(hook.__code__.co_freevars, hook.__closure__ or (), strict=False))
            name = cells["name"].cell_contents if "name" in cells else None
            if isinstance(name, str) and not name.startswith("<"):
                return name, True
            return resilience.caller_name(SKIP, 4), True
    else:
        try:
            return _names[fn.__code__], False
        except (AttributeError, KeyError):
            name = resilience.callable_name(fn)
            code = getattr(fn, "__code__", None)
            if code is not None and len(_names) < _NAMES:
                _names[code] = name
            return name, False
    return resilience.caller_name(SKIP, 4), False


def _failure(retry_state: Any) -> BaseException | None:
    outcome = retry_state.outcome
    if outcome is None:
        return None
    return outcome.exception()  # type: ignore[no-any-return]


def _decided(retrying: Any, retry_state: Any, do: Any) -> None:
    """Record what `iter` just decided (it returned `do`)."""
    try:
        call: Call | None = retry_state.__dict__.get(_KEY)
        kind = type(do)
        if kind is _DO_ATTEMPT:
            if call is None:
                operation, stamina = _operation(retrying, retry_state)
                call = retry_state.__dict__[_KEY] = Call(operation, stamina)
            if call.stamina:
                current.set(call)
            if retry_state.fn is not None:  # loop form: set inside `with attempt:` (_enter)
                _ATTEMPT.set(retry_state.attempt_number)
        elif call is None or call.done:
            return
        elif kind is _DO_SLEEP:
            number = retry_state.attempt_number
            if call.hooked != number:  # not already recorded by stamina's own hook
                resilience.retry_scheduled(call.operation, number, _failure(retry_state), do)
        elif retrying.retry_error_callback is not None and getattr(
            retrying.iter_state, "stop_run_result", False
        ):
            # the call ended with the value of retry_error_callback: the policy gave up
            call.finish(False, retry_state.attempt_number, _failure(retry_state))
        else:  # the call ended with the attempt's own value: a success
            call.finish(True, retry_state.attempt_number, None)
    except Exception as exc:  # noqa: BLE001 - never into the user's call
        errors.record("tenacity adapter", exc)


def _raised(retry_state: Any, exc: BaseException) -> None:
    """`iter` raised: the call ended with an error (give-up or an error it does not retry)."""
    try:
        call: Call | None = retry_state.__dict__.get(_KEY)
        if call is not None:
            call.finish(False, retry_state.attempt_number, _failure(retry_state) or exc)
    except Exception as error:  # noqa: BLE001 - never into the user's call
        errors.record("tenacity adapter", error)


def _attempt_ended(retry_state: Any) -> None:
    """A `with attempt:` block succeeded: in the loop form that ends the call."""
    try:
        call: Call | None = retry_state.__dict__.get(_KEY)
        if call is not None and retry_state.fn is None:
            call.finish(True, retry_state.attempt_number, None)
    except Exception as exc:  # noqa: BLE001 - never into the user's call
        errors.record("tenacity adapter", exc)


def _abandoned(retry_state: Any) -> None:
    """A `for attempt in Retrying()` loop was left without a decision (break, or an error
    outside the `with attempt:` block): the call ends unsuccessfully."""
    try:
        call: Call | None = retry_state.__dict__.get(_KEY)
        if call is not None and not call.done:
            outcome = retry_state.outcome
            succeeded = outcome is not None and not outcome.failed
            call.finish(succeeded, retry_state.attempt_number, _failure(retry_state))
    except Exception as exc:  # noqa: BLE001 - never into the user's call
        errors.record("tenacity adapter", exc)


def _sync_iter(original: Callable[..., Any]) -> Callable[..., Any]:
    def iter(self: Any, retry_state: Any) -> Any:
        try:
            do = original(self, retry_state)
        except BaseException as exc:
            _raised(retry_state, exc)
            raise
        _decided(self, retry_state, do)
        return do

    return iter


def _async_iter(original: Callable[..., Any]) -> Callable[..., Any]:
    async def iter(self: Any, retry_state: Any) -> Any:
        try:
            do = await original(self, retry_state)
        except BaseException as exc:
            _raised(retry_state, exc)
            raise
        _decided(self, retry_state, do)
        return do

    return iter


def _enter(original: Callable[..., Any]) -> Callable[..., Any]:
    def __enter__(self: Any) -> Any:
        result = original(self)
        try:
            call: Call | None = self.retry_state.__dict__.get(_KEY)
            if call is not None and not call.done:
                resilience.set_attempt(self.retry_state.attempt_number)
        except Exception as exc:  # noqa: BLE001 - never into the user's call
            errors.record("tenacity adapter", exc)
        return result

    return __enter__


def _exit(original: Callable[..., Any]) -> Callable[..., Any]:
    def __exit__(self: Any, exc_type: Any, exc_value: Any, traceback: Any) -> Any:
        result = original(self, exc_type, exc_value, traceback)
        try:
            call: Call | None = self.retry_state.__dict__.get(_KEY)
            if call is not None:  # the attempt's number is scoped to its `with` block
                resilience.restore_attempt(call.previous_attempt)
        except Exception as exc:  # noqa: BLE001 - never into the user's call
            errors.record("tenacity adapter", exc)
        if exc_type is None:
            _attempt_ended(self.retry_state)
        return result

    return __exit__


def _loop(original: Callable[..., Any]) -> Callable[..., Any]:
    def __iter__(self: Any) -> Generator[Any, None, None]:
        attempts = original(self)
        retry_state = None
        try:
            for manager in attempts:
                retry_state = getattr(manager, "retry_state", None)
                yield manager
        finally:
            attempts.close()
            if retry_state is not None:
                _abandoned(retry_state)

    return __iter__


_DO_ATTEMPT: Any = None
_DO_SLEEP: Any = None


def instrument() -> None:
    global _DO_ATTEMPT, _DO_SLEEP
    import tenacity  # noqa: PLC0415 - only once tenacity itself is imported

    _DO_ATTEMPT, _DO_SLEEP = tenacity.DoAttempt, tenacity.DoSleep
    _patches.wrap(tenacity.BaseRetrying, "iter", _sync_iter)
    _patches.wrap(tenacity.AsyncRetrying, "iter", _async_iter)  # tenacity.asyncio since 8.4
    _patches.wrap(tenacity.AttemptManager, "__enter__", _enter)
    _patches.wrap(tenacity.AttemptManager, "__exit__", _exit)
    _patches.wrap(tenacity.BaseRetrying, "__iter__", _loop)


def uninstrument() -> None:
    _patches.restore()
