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
from time import perf_counter
from types import TracebackType
from typing import Any, TypeVar, cast

from obskit import _errors, correlation, semconv

F = TypeVar("F", bound=Callable[..., Any])


class observe:
    """Time, trace and log one operation. Usable as `@observe(name)`, `with`, `async with`."""

    __slots__ = ("_cid_token", "_span", "_start", "_token", "name")

    def __init__(self, name: str) -> None:
        if not isinstance(name, str) or not name:
            raise ValueError("observe(name): expected a non-empty operation name")
        self.name = name
        self._span: Any = None
        self._token: Any = None
        self._cid_token: Any = None
        self._start = 0.0

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
        from obskit import _state  # noqa: PLC0415

        rt = _state.current()
        try:
            if correlation.current() is None:
                self._cid_token = correlation.bind(correlation.RequestContext(correlation.new_id()))
            if rt is not None and rt.tracing is not None:
                from obskit.tracing import attach  # noqa: PLC0415

                self._span = rt.tracing.tracer.start_span(self.name)
                self._token = attach(self._span, None)
        except Exception as exc:  # noqa: BLE001 - instrumentation never fails the caller
            _errors.record("observe start", exc)
        self._start = perf_counter()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        duration = perf_counter() - self._start
        from obskit import _state  # noqa: PLC0415

        rt = _state.current()
        outcome = semconv.OUTCOME_ERROR if exc is not None else semconv.OUTCOME_SUCCESS
        try:
            if exc is not None:
                from obskit import logs  # noqa: PLC0415

                logs.active().emit(
                    "error",
                    "obskit.observe",
                    f"{self.name} failed",
                    {"operation": self.name, "duration_ms": round(duration * 1000.0, 3)},
                    exc,
                )
            span = self._span
            if span is not None:
                from obskit.tracing import detach  # noqa: PLC0415

                if exc is not None and span.is_recording():
                    from opentelemetry.trace import Status, StatusCode  # noqa: PLC0415

                    span.set_attribute("error.type", type(exc).__name__)
                    span.set_status(Status(StatusCode.ERROR))
                    if isinstance(exc, Exception):
                        span.record_exception(exc)
                span.end()
                detach(self._token)
            if rt is not None and rt.metrics is not None:
                rt.metrics.operation.get((self.name, outcome))(duration)
        except Exception as err:  # noqa: BLE001 - instrumentation never fails the caller
            _errors.record("observe finish", err)
        finally:
            if self._cid_token is not None:
                correlation.unbind(self._cid_token)
            self._span = self._token = self._cid_token = None

    async def __aenter__(self) -> observe:
        return self.__enter__()

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.__exit__(exc_type, exc, tb)
