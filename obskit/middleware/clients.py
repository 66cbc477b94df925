"""Outbound propagation for httpx (sync and async) and requests.

Every outbound call gets `X-Request-ID` (the current correlation ID), `traceparent` (and
`baggage`), a client span, and one observation in http_client_request_duration_seconds with
`server_address` = the URL authority as written ("host", or "host:port" for a non-default
port) and `error_type` = the exception class name when no response came back.

`instrument(runtime)` patches the transport classes once (httpx.HTTPTransport,
httpx.AsyncHTTPTransport, requests.Session.send); `uninstrument()` restores them. Calls made
while instrumentation is suppressed (obskit's own span export) are left alone.
"""

from __future__ import annotations

import importlib.util
from time import perf_counter
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from opentelemetry import context as otel_context
from opentelemetry.trace import SpanKind, Status, StatusCode

from obskit import _errors, correlation, semconv
from obskit.config import DEFAULT_REDACT_KEYS
from obskit.middleware._attrs import DEFAULT_PORTS, redact_query
from obskit.tracing import attach, detach, outbound_headers

if TYPE_CHECKING:
    from collections.abc import Callable

    from obskit._state import Obskit

_runtime: Obskit | None = None
_originals: list[tuple[Any, str, Any]] = []
_CLIENT = SpanKind.CLIENT
_ERROR = Status(StatusCode.ERROR)
_SUPPRESS = otel_context._SUPPRESS_INSTRUMENTATION_KEY


def url_full(url: str, redact_keys: tuple[str, ...] = DEFAULT_REDACT_KEYS) -> str:
    """`url.full` as semconv wants it: credentials, signed-URL secrets and the values of
    secret-looking query keys (as in url.query on server spans) redacted."""
    if "@" in url:
        parts = urlsplit(url)
        if "@" in parts.netloc:
            host = parts.netloc.rsplit("@", 1)[1]
            url = parts._replace(netloc=f"REDACTED:REDACTED@{host}").geturl()
    if "?" in url:
        base, _, query = url.partition("?")
        fragment = ""
        if "#" in query:
            query, hash_, fragment = query.partition("#")
            fragment = hash_ + fragment
        redacted = redact_query(query, redact_keys)
        if redacted is not query:
            url = f"{base}?{redacted}{fragment}"
    return url


def server_address(scheme: str, host: str, port: int | None) -> str:
    """'host' or 'host:port' when the port is not the scheme's default."""
    if ":" in host and not host.startswith("["):
        host = f"[{host}]"
    if port is None or DEFAULT_PORTS.get(scheme) == port:
        return host
    return f"{host}:{port}"


class _Call:
    """One outbound call: span, headers, timing, observation."""

    __slots__ = ("address", "method", "rt", "span", "start", "token")

    def __init__(  # noqa: PLR0917
        self,
        rt: Obskit,
        method: str,
        scheme: str,
        host: str,
        port: int | None,
        headers: Any,
        url: str,
    ) -> None:
        address = server_address(scheme, host, port)
        self.rt = rt
        self.method = method if method in semconv.KNOWN_METHODS else semconv.OTHER_METHOD
        self.address = address
        self.span: Any = None
        self.token: Any = None
        try:
            tracing = rt.tracing
            if tracing is not None:
                self.span = tracing.tracer.start_span(
                    self.method if self.method != semconv.OTHER_METHOD else "HTTP",
                    kind=_CLIENT,
                    attributes={
                        "http.request.method": self.method,
                        "server.address": host,
                        "server.port": port or DEFAULT_PORTS.get(scheme, 80),
                        "url.full": url_full(url, rt.config.redact_keys),
                    },
                )
                self.token = attach(self.span, None)
            cid = correlation.correlation_id()
            if cid is not None and semconv.REQUEST_ID_HEADER not in headers:
                headers[semconv.REQUEST_ID_HEADER] = cid
            for key, value in outbound_headers().items():
                headers[key] = value
        except Exception as exc:  # noqa: BLE001 - instrumentation never fails a call
            _errors.record("client request start", exc)
        self.start = perf_counter()

    def done(self, status: int | None, error: BaseException | None) -> None:
        duration = perf_counter() - self.start
        try:
            if self.token is not None:
                detach(self.token)
            error_type = type(error).__name__ if error is not None else ""
            status_label = str(status) if status is not None else ""
            span = self.span
            if span is not None:
                if span.is_recording():
                    if status is not None:
                        span.set_attribute("http.response.status_code", status)
                    if error is not None or (status is not None and status >= 400):
                        span.set_attribute("error.type", error_type or status_label)
                        span.set_status(_ERROR)
                span.end()
            metrics = self.rt.metrics
            if metrics is not None:
                metrics.client.get((self.method, self.address, status_label, error_type))(duration)
        except Exception as exc:  # noqa: BLE001 - instrumentation never fails a call
            _errors.record("client request finish", exc)


def _active() -> Obskit | None:
    rt = _runtime
    if rt is None or not rt.active or otel_context.get_value(_SUPPRESS):
        return None
    return rt


def _httpx_sync(original: Callable[..., Any]) -> Callable[..., Any]:
    def handle_request(self: Any, request: Any) -> Any:
        rt = _active()
        if rt is None:
            return original(self, request)
        url = request.url
        call = _Call(rt, request.method, url.scheme, url.host, url.port, request.headers, str(url))
        try:
            response = original(self, request)
        except BaseException as exc:
            call.done(None, exc)
            raise
        call.done(response.status_code, None)
        return response

    return handle_request


def _httpx_async(original: Callable[..., Any]) -> Callable[..., Any]:
    async def handle_async_request(self: Any, request: Any) -> Any:
        rt = _active()
        if rt is None:
            return await original(self, request)
        url = request.url
        call = _Call(rt, request.method, url.scheme, url.host, url.port, request.headers, str(url))
        try:
            response = await original(self, request)
        except BaseException as exc:
            call.done(None, exc)
            raise
        call.done(response.status_code, None)
        return response

    return handle_async_request


def _requests_send(original: Callable[..., Any]) -> Callable[..., Any]:
    def send(self: Any, request: Any, **kwargs: Any) -> Any:
        rt = _active()
        if rt is None:
            return original(self, request, **kwargs)
        try:
            parts = urlsplit(request.url)
            scheme, host, port = parts.scheme, parts.hostname or "", parts.port
        except ValueError:
            scheme, host, port = "http", "", None
        call = _Call(rt, str(request.method), scheme, host, port, request.headers, str(request.url))
        try:
            response = original(self, request, **kwargs)
        except BaseException as exc:
            call.done(None, exc)
            raise
        call.done(response.status_code, None)
        return response

    return send


def _patch(owner: Any, name: str, wrap: Callable[[Any], Any]) -> None:
    original = getattr(owner, name)
    _originals.append((owner, name, original))
    setattr(owner, name, wrap(original))


def instrument(runtime: Obskit) -> list[str]:
    """Patch httpx and requests when importable; returns the names instrumented."""
    global _runtime  # noqa: PLW0603
    _runtime = runtime
    if _originals:
        return []
    done = []
    if importlib.util.find_spec("httpx") is not None:
        import httpx  # noqa: PLC0415

        _patch(httpx.HTTPTransport, "handle_request", _httpx_sync)
        _patch(httpx.AsyncHTTPTransport, "handle_async_request", _httpx_async)
        done.append("httpx")
    if importlib.util.find_spec("requests") is not None:
        import requests  # noqa: PLC0415

        _patch(requests.Session, "send", _requests_send)
        done.append("requests")
    return done


def uninstrument() -> None:
    global _runtime  # noqa: PLW0603
    _runtime = None
    while _originals:
        owner, name, original = _originals.pop()
        setattr(owner, name, original)
