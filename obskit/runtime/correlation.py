"""Correlation IDs: validation, generation and the per-request context.

One context variable holds the current `RequestContext`; the middleware binds it once per
request and resets it afterwards, so nothing leaks into the next request. Tasks and threads
started inside a request copy the context (asyncio, anyio, `contextvars.copy_context`) and so
keep the request's correlation ID.
"""

from __future__ import annotations

import random
import re
from contextvars import ContextVar, Token
from typing import Final

MAX_ID_LENGTH: Final = 128
_SAFE_ID = re.compile(r"[A-Za-z0-9._~:+=/-]{1,128}")
_getrandbits = random.getrandbits


class RequestContext:
    """What obskit knows about the request being served (one object per request)."""

    __slots__ = ("correlation_id", "route", "span_id", "trace_id")

    def __init__(
        self, correlation_id: str, trace_id: str | None = None, span_id: str | None = None
    ) -> None:
        self.correlation_id = correlation_id
        self.trace_id = trace_id
        self.span_id = span_id
        self.route: str | None = None


_current: ContextVar[RequestContext | None] = ContextVar("obskit_request", default=None)


def current() -> RequestContext | None:
    """The current request context, or None outside a request."""
    return _current.get()


def correlation_id() -> str | None:
    """The current correlation ID, or None outside a request (or `bind()` block)."""
    ctx = _current.get()
    return None if ctx is None else ctx.correlation_id


def bind(ctx: RequestContext | None) -> Token[RequestContext | None]:
    """Make `ctx` current; pass the token to `unbind` when done."""
    return _current.set(ctx)


def unbind(token: Token[RequestContext | None]) -> None:
    _current.reset(token)


def new_id() -> str:
    """A fresh correlation ID: 32 lowercase hex characters (128 random bits)."""
    return f"{_getrandbits(128):032x}"


def is_valid(value: str) -> bool:
    """True when `value` is 1-128 characters of [A-Za-z0-9._~:+=/-] (safe in logs and headers)."""
    return _SAFE_ID.fullmatch(value) is not None


def accept(raw: str | bytes | None) -> str:
    """Take an inbound ID when it is safe, else generate a new one."""
    if raw is None:
        return new_id()
    if isinstance(raw, bytes):
        if len(raw) > MAX_ID_LENGTH:
            return new_id()
        try:
            raw = raw.decode("ascii")
        except UnicodeDecodeError:
            return new_id()
    if len(raw) <= MAX_ID_LENGTH and _SAFE_ID.fullmatch(raw) is not None:
        return raw
    return new_id()
