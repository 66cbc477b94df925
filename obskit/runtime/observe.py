"""`obskit.observe("name")`: a decorator and context manager (sync and async) for any boundary.

Each use records obskit_operation_duration_seconds{operation, outcome}, an internal span named
after the operation, and, when the block raises, one error log line with the exception (the
exception is re-raised unchanged). Outside a request it binds a fresh correlation ID, so the
log lines of a job or queue message share one.
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable
from contextvars import ContextVar
from time import perf_counter
from types import TracebackType
from typing import Any, TypeVar, cast

from obskit import semconv
from obskit.runtime import correlation, errors

F = TypeVar("F", bound=Callable[..., Any])


class _Use:
    """The state of one entry into an `observe` block."""

    __slots__ = ("cid_token", "owner", "span", "start", "token")

    def __init__(self, owner: observe) -> None:
        self.owner = owner
        self.span: Any = None
        self.token: Any = None
        self.cid_token: Any = None
        self.start = 0.0


# Open uses per context (each thread and asyncio task has its own), so one `observe` object
# can be shared, nested and entered by concurrent tasks without mixing up their spans.
_uses: ContextVar[tuple[_Use, ...]] = ContextVar("obskit_observe", default=())


class observe:
    """Time, trace and log one operation. Usable as `@observe(name)`, `with`, `async with`.

    One instance may be reused, nested and shared between threads and tasks.
    """

    __slots__ = ("name",)

    def __init__(self, name: str) -> None:
        if not isinstance(name, str) or not name:
            raise ValueError("observe(name): expected a non-empty operation name")
        self.name = name

    # -- decorator ------------------------------------------------------------------
    def __call__(self, func: F) -> F:
        name = self.name
        if inspect.iscoroutinefunction(func):

            @functools.wraps(func)
            async def async_wrapper(*args: Any, **kwargs: Any) -> Any:
                async with observe(name):
                    return await func(*args, **kwargs)

            return cast("F", async_wrapper)

        @functools.wraps(func)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            with observe(name):
                return func(*args, **kwargs)

        return cast("F", wrapper)

    # -- context manager --------------------------------------------------------------
    def __enter__(self) -> observe:
        from obskit.runtime import state  # noqa: PLC0415

        rt = state.current()
        use = _Use(self)
        try:
            if correlation.current() is None:
                use.cid_token = correlation.bind(correlation.RequestContext(correlation.new_id()))
            if rt is not None and rt.tracing is not None:
                from obskit.runtime.tracing.provider import attach  # noqa: PLC0415

                use.span = rt.tracing.tracer.start_span(self.name)
                use.token = attach(use.span, None)
        except Exception as exc:  # noqa: BLE001 - instrumentation never fails the caller
            errors.record("observe start", exc)
        _uses.set((*_uses.get(), use))
        use.start = perf_counter()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        end = perf_counter()
        uses = _uses.get()
        for index in range(len(uses) - 1, -1, -1):
            if uses[index].owner is self:
                use = uses[index]
                _uses.set(uses[:index] + uses[index + 1 :])
                break
        else:  # exited in another context than it was entered: nothing to close here
            errors.record("observe finish", RuntimeError(f"{self.name}: no open use here"))
            return
        duration = end - use.start
        from obskit.runtime import state  # noqa: PLC0415

        rt = state.current()
        outcome = semconv.OUTCOME_ERROR if exc is not None else semconv.OUTCOME_SUCCESS
        try:
            if exc is not None:
                from obskit.runtime import logs  # noqa: PLC0415

                logs.active().emit(
                    "error",
                    "obskit.observe",
                    f"{self.name} failed",
                    {"operation": self.name, "duration_ms": round(duration * 1000.0, 3)},
                    exc,
                )
            span = use.span
            if span is not None:
                from obskit.runtime.tracing.provider import detach  # noqa: PLC0415

                if exc is not None and span.is_recording():
                    from opentelemetry.trace import Status, StatusCode  # noqa: PLC0415

                    span.set_attribute("error.type", type(exc).__name__)
                    span.set_status(Status(StatusCode.ERROR))
                    if isinstance(exc, Exception):
                        span.record_exception(exc)
                span.end()
                detach(use.token)
            if rt is not None and rt.metrics is not None:
                rt.metrics.operation.get((self.name, outcome))(duration)
        except Exception as err:  # noqa: BLE001 - instrumentation never fails the caller
            errors.record("observe finish", err)
        finally:
            if use.cid_token is not None:
                try:
                    correlation.unbind(use.cid_token)
                except ValueError:  # entered in another context: unbind where we are
                    correlation.bind(None)

    async def __aenter__(self) -> observe:
        return self.__enter__()

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.__exit__(exc_type, exc, tb)
