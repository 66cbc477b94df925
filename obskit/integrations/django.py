"""Django: `obskit.init(application)` in wsgi.py / asgi.py instruments the whole project.

Given the handler that `get_wsgi_application()` or `get_asgi_application()` returns, the
adapter changes that one object in place (its class becomes an obskit subclass), so the
module-level `application` gunicorn/uvicorn serve is already instrumented:

- requests go through obskit's WSGI/ASGI adapter (span, RED histogram, access line,
  X-Request-ID on every response, Django's own 404 and 500 pages included);
- `http_route` is the template of the URL pattern Django's resolver matched, built once per
  pattern chain and cached: `path()` converters become `{name}`, `include()` prefixes are
  joined, a `re_path()` loses its anchors and its groups become `{name}` (named) or `{var}`
  (unnamed); a URL no pattern matches is `__unmatched__`;
- the console handlers Django's `LOGGING` configured are replaced by obskit's, with the same
  levels and filters: every line that passes them is obskit JSON with the request's IDs
  (`django.server`, which does not propagate, included);
- under ASGI, obskit answers the lifespan protocol Django does not speak, so a server's
  graceful shutdown flushes the spans.

Django is imported only from the functions here, once the app is known to be Django's.
"""

from __future__ import annotations

import logging
import re
import sys
import threading
from typing import TYPE_CHECKING, Any, Final

from obskit.integrations._http import ROUTE_KEY
from obskit.runtime import correlation, errors
from obskit.runtime.logs import StdlibHandler

if TYPE_CHECKING:
    from collections.abc import Callable

    from obskit.runtime.state import Obskit

_CACHE_SIZE: Final = 4096
_CONVERTER = re.compile(r"<(?:[^>:]+:)?([^>]+)>")  # path("<int:order_id>") -> order_id
_NAMED_GROUP = re.compile(r"\(\?P<([^>]+)>")


# ------------------------------------------------------------------ route templates ---


def path_template(route: str) -> str:
    """A `path()` pattern as a template: 'orders/<int:order_id>/' -> 'orders/{order_id}/'."""
    return _CONVERTER.sub(r"{\1}", route)


def regex_template(regex: str) -> str:
    """A `re_path()` pattern as a template: anchors removed, named groups `{name}`, unnamed
    groups `{var}`, escaped literals unescaped: '^legacy/(?P<year>[0-9]{4})/$' ->
    'legacy/{year}/'. Non-capturing groups and other syntax stay as written (their inner
    groups are converted)."""
    if regex.startswith("^"):
        regex = regex[1:]
    elif regex.startswith("\\A"):
        regex = regex[2:]
    if regex.endswith("\\Z") and not _escaped(regex, len(regex) - 2):
        regex = regex[:-2]
    elif regex.endswith("$") and not _escaped(regex, len(regex) - 1):
        regex = regex[:-1]
    out: list[str] = []
    i, n = 0, len(regex)
    while i < n:
        char = regex[i]
        if char == "\\" and i + 1 < n:
            escaped = regex[i + 1]
            out.append(regex[i : i + 2] if escaped.isalnum() else escaped)  # \d stays, \. is .
            i += 2
        elif char == "[":
            end = _class_end(regex, i)
            out.append(regex[i:end])
            i = end
        elif char == "(" and regex.startswith("(?P<", i):
            named = _NAMED_GROUP.match(regex, i)
            out.append("{" + (named.group(1) if named else "var") + "}")
            i = _group_end(regex, i)
        elif char == "(" and not regex.startswith("(?", i):
            out.append("{var}")
            i = _group_end(regex, i)
        else:
            out.append(char)
            i += 1
    return "".join(out)


def _escaped(text: str, index: int) -> bool:
    """Whether text[index] is preceded by an odd number of backslashes."""
    count = 0
    while index > 0 and text[index - 1] == "\\":
        count += 1
        index -= 1
    return count % 2 == 1


def _class_end(regex: str, start: int) -> int:
    """Index just past the character class opening at regex[start] == '['."""
    i, n = start + 1, len(regex)
    if i < n and regex[i] == "^":
        i += 1
    if i < n and regex[i] == "]":
        i += 1  # a ']' first in the class is a literal
    while i < n and regex[i] != "]":
        i += 2 if regex[i] == "\\" else 1
    return min(i + 1, n)


def _group_end(regex: str, start: int) -> int:
    """Index just past the group opening at regex[start] == '('."""
    depth = 0
    i, n = start, len(regex)
    while i < n:
        char = regex[i]
        if char == "\\":
            i += 2
            continue
        if char == "[":
            i = _class_end(regex, i)
            continue
        if char == "(":
            depth += 1
        elif char == ")":
            depth -= 1
            if depth == 0:
                return i + 1
        i += 1
    return n


class RouteTemplates:
    """Route template of a ResolverMatch, built once per distinct `match.route` (bounded).

    The matched chain of URL patterns (`match.tried[-1]`: each include(), then the view's
    pattern) says which part is `path()` syntax and which is a regex; a resolver that does not
    report it gets its `route` string converted as a whole.
    """

    __slots__ = ("_cache",)

    def __init__(self) -> None:
        self._cache: dict[str, str] = {}

    def template(self, match: Any) -> str:
        route = match.route
        hit = self._cache.get(route)
        if hit is None:
            hit = self._build(match)
            if len(self._cache) < _CACHE_SIZE:
                self._cache[route] = hit
        return hit

    @staticmethod
    def _build(match: Any) -> str:
        from django.urls.resolvers import RegexPattern, RoutePattern  # noqa: PLC0415

        tried = getattr(match, "tried", None)
        chain = tried[-1] if tried else ()
        raw: list[str] = []
        parts: list[str] = []
        for entry in chain:
            pattern = getattr(entry, "pattern", None)
            text = str(pattern)
            raw.append(text.removeprefix("^") if raw else text)  # as Django joins them
            if isinstance(pattern, RoutePattern):
                parts.append(path_template(text))
            elif isinstance(pattern, RegexPattern):
                parts.append(regex_template(text))
            else:  # i18n_patterns' language prefix ('en/'), or another pattern class
                parts.append(text)
        if chain and "".join(raw) == str(match.route):
            joined = "".join(parts)
        else:  # no usable chain: read the joined route as a whole
            joined = regex_template(path_template(str(match.route)))
        return "/" + joined.lstrip("/")


# ------------------------------------------------------------------ the handler -----

_SUBCLASSES: dict[type, type] = {}


def instrument(app: Any, runtime: Obskit) -> Any:
    """Instrument a Django handler in place (its class becomes an obskit subclass)."""
    from django.core.handlers.asgi import ASGIHandler  # noqa: PLC0415

    from obskit.integrations.asgi import ObskitASGI  # noqa: PLC0415
    from obskit.integrations.wsgi import ObskitWSGI  # noqa: PLC0415

    original = getattr(type(app), "_obskit_original", type(app))
    is_async = isinstance(app, ASGIHandler)
    subclass = _SUBCLASSES.get(original)
    if subclass is None:
        subclass = _SUBCLASSES[original] = _subclass(original, is_async)
    if is_async:
        app._obskit_app = ObskitASGI(_asgi_inner(app, original), runtime)
    else:
        app._obskit_app = ObskitWSGI(_wsgi_inner(app, original), runtime)
    app._obskit_routes = RouteTemplates()
    app.__class__ = subclass

    def undo() -> None:
        if type(app) is subclass:
            app.__class__ = original
            app.__dict__.pop("_obskit_app", None)
            app.__dict__.pop("_obskit_routes", None)

    runtime.on_close(undo)
    if runtime.tracing is not None:
        runtime.on_close(_record_handled_exceptions())
    if runtime.config.capture_stdlib_logs:
        runtime.on_close(adopt_logging())
    return app


def _record_handled_exceptions() -> Callable[[], None]:
    """A view's exception that Django turns into its 500 page never reaches obskit's WSGI/ASGI
    adapter; Django's `got_request_exception` signal puts it on the request's server span
    (an `exception` event), as an exception the adapter sees would be. Returns the undo."""
    from django.core.signals import got_request_exception  # noqa: PLC0415

    got_request_exception.connect(_on_exception, weak=False, dispatch_uid=_SIGNAL_UID)
    return lambda: got_request_exception.disconnect(dispatch_uid=_SIGNAL_UID)


_SIGNAL_UID: Final = "obskit.integrations.django"


def _on_exception(sender: Any, request: Any = None, **kwargs: Any) -> None:
    try:
        from opentelemetry import trace  # noqa: PLC0415

        exc = sys.exc_info()[1]
        span = trace.get_current_span()
        if exc is not None and span.is_recording():
            span.record_exception(exc)
    except Exception as error:  # noqa: BLE001 - telemetry never fails Django's error handling
        errors.record("django exception", error)


def _subclass(original: Any, is_async: bool) -> type:
    carrier = "scope" if is_async else "environ"

    def resolve_request(self: Any, request: Any) -> Any:
        match = original.resolve_request(self, request)  # Resolver404 propagates: unmatched
        try:
            getattr(request, carrier)[ROUTE_KEY] = self._obskit_routes.template(match)
        except Exception as exc:  # noqa: BLE001 - a route we cannot read never fails a request
            errors.record("django route", exc)
        return match

    if is_async:

        async def call(self: Any, scope: Any, receive: Any, send: Any) -> None:
            await self._obskit_app(scope, receive, send)

    else:

        def call(self: Any, environ: Any, start_response: Any) -> Any:  # type: ignore[misc]
            try:
                result = self._obskit_app(environ, start_response)
            except BaseException:
                _dev_server.ctx = None
                raise
            if getattr(_dev_server, "ctx", None) is not None:
                return _DevServerBody(result)
            return result

    namespace = {
        "__call__": call,
        "resolve_request": resolve_request,
        "_obskit_original": original,
        "__module__": original.__module__,
        "__doc__": original.__doc__,
    }
    return type(original.__name__, (original,), namespace)


def _wsgi_inner(app: Any, original: Any) -> Callable[..., Any]:
    call = original.__call__

    def django_wsgi(environ: Any, start_response: Any) -> Any:
        if environ.get("SERVER_SOFTWARE", "").startswith(_DEV_SERVER):
            _dev_server.ctx = correlation.current()  # see _DevServerBody
        return call(app, environ, start_response)

    return django_wsgi


# `manage.py runserver` (wsgiref underneath) writes its per-request `django.server` line after
# the body was sent and before the response is closed, outside the request's context. Under
# that server only, the request's context stays reachable from its thread until the close, so
# the line carries the request's IDs. (gunicorn and uvicorn never log to django.server.)
_DEV_SERVER: Final = "WSGIServer/"
_dev_server = threading.local()


class _DevServerBody:
    """The response iterable under runserver: forgets the request's context on close()."""

    __slots__ = ("_result",)

    def __init__(self, result: Any) -> None:
        self._result = result

    def __iter__(self) -> Any:
        return iter(self._result)

    def close(self) -> None:
        try:
            close = getattr(self._result, "close", None)
            if close is not None:
                close()
        finally:
            _dev_server.ctx = None


class _DevServerHandler(StdlibHandler):
    """django.server's obskit handler: a runserver request line gets its request's IDs."""

    def emit(self, record: logging.LogRecord) -> None:
        ctx = getattr(_dev_server, "ctx", None)
        if ctx is None or correlation.current() is not None:
            super().emit(record)
            return
        token = correlation.bind(ctx)
        try:
            super().emit(record)
        finally:
            correlation.unbind(token)


def _asgi_inner(app: Any, original: Any) -> Callable[..., Any]:
    call = original.__call__

    async def django_asgi(scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] == "lifespan":
            # Django does not speak lifespan (it raises); answering it lets the server's
            # graceful shutdown reach obskit's ASGI adapter, which flushes the spans.
            await _lifespan(receive, send)
            return
        await call(app, scope, receive, send)

    return django_asgi


async def _lifespan(receive: Any, send: Any) -> None:
    while True:
        message = await receive()
        if message["type"] == "lifespan.startup":
            await send({"type": "lifespan.startup.complete"})
        elif message["type"] == "lifespan.shutdown":
            await send({"type": "lifespan.shutdown.complete"})
            return


# ------------------------------------------------------------------ logging ---------


def adopt_logging() -> Callable[[], None]:
    """Replace the console handlers of the loggers Django's LOGGING configured (and of the
    root logger) with obskit's, keeping each handler's level and filters; returns the undo.

    File, mail and other handlers are left alone, and so are handlers gunicorn installed.
    The loggers' levels, handlers lists and `propagate` are not touched, so `django.server`
    (which does not propagate) is written by its own, now obskit, handler.
    """
    from django.conf import settings  # noqa: PLC0415
    from django.utils.log import DEFAULT_LOGGING  # noqa: PLC0415

    names = {"", *DEFAULT_LOGGING.get("loggers", {})}
    configured = getattr(settings, "LOGGING", None) or {}
    if isinstance(configured, dict):
        names.update(str(name) for name in configured.get("loggers", {}) or {})
    replaced: dict[int, logging.Handler] = {}
    swapped: list[tuple[logging.Logger, int, logging.Handler]] = []
    for name in sorted(names):
        logger = logging.getLogger(name)
        for index, handler in enumerate(list(logger.handlers)):
            if not _is_console(handler):
                continue
            replacement = replaced.get(id(handler))
            if replacement is None:
                kind = _DevServerHandler if name == "django.server" else StdlibHandler
                replacement = kind(handler.level, threshold=False)
                replacement.filters = list(handler.filters)
                replaced[id(handler)] = replacement
            logger.handlers[index] = replacement
            swapped.append((logger, index, handler))

    def undo() -> None:
        for logger, index, handler in reversed(swapped):
            if index < len(logger.handlers) and isinstance(logger.handlers[index], StdlibHandler):
                logger.handlers[index] = handler

    return undo


def _is_console(handler: logging.Handler) -> bool:
    """A StreamHandler writing to the process's stdout or stderr (not a file, not gunicorn's)."""
    if not isinstance(handler, logging.StreamHandler) or isinstance(handler, logging.FileHandler):
        return False
    if getattr(handler, "_gunicorn", False) or getattr(handler, "_obskit", False):
        return False
    stream = getattr(handler, "stream", None)
    return stream is not None and stream in (sys.stdout, sys.stderr, sys.__stdout__, sys.__stderr__)
