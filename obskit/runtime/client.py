"""An outbound HTTP call, recorded the same way whichever client library made it.

Every outbound call gets `X-Request-ID` (the current correlation ID), `traceparent` (and
`baggage`), a client span, and one observation in http_client_request_duration_seconds with
`server_address` = the URL authority as written ("host", or "host:port" for a non-default
port) and `error_type` = the exception class name when no response came back. The client
adapters (obskit.integrations.httpx, .requests) only translate their library's request and
response objects into `OutboundCall`. Calls made while instrumentation is suppressed (obskit's
own span export) are left alone: `active()` returns None for them.
"""

from __future__ import annotations

from time import perf_counter
from typing import TYPE_CHECKING, Any, Final
from urllib.parse import urlsplit

from opentelemetry import context as otel_context
from opentelemetry.trace import SpanKind, Status, StatusCode

from obskit import semconv
from obskit.runtime import correlation, errors
from obskit.runtime.config import DEFAULT_REDACT_KEYS
from obskit.runtime.redact import redact_query
from obskit.runtime.resilience import current_attempt
from obskit.runtime.tracing.provider import attach, detach, outbound_headers

if TYPE_CHECKING:
    from obskit.runtime.state import Obskit

DEFAULT_PORTS: Final = {"http": 80, "https": 443}
_CLIENT = SpanKind.CLIENT
_ERROR = Status(StatusCode.ERROR)
_SUPPRESS = otel_context._SUPPRESS_INSTRUMENTATION_KEY
_runtime: Obskit | None = None


def bind(runtime: Obskit | None) -> None:
    """The handle whose telemetry outbound calls feed (None: record nothing)."""
    global _runtime  # noqa: PLW0603
    _runtime = runtime


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


class OutboundCall:
    """One outbound call: span, headers, timing, observation."""

    __slots__ = ("active", "address", "method", "rt", "span", "start", "token")

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
        self.active: Any = None
        try:
            metrics = rt.metrics
            if metrics is not None:
                self.active = metrics.client_active.get(address)
                self.active(1)
            tracing = rt.tracing
            if tracing is not None:
                attributes: dict[str, Any] = {
                    "http.request.method": self.method,
                    "server.address": host,
                    "server.port": port or DEFAULT_PORTS.get(scheme, 80),
                    # redacted, then cut (a cut could hide the end of the credentials)
                    "url.full": url_full(url, rt.config.redact_keys)[: rt.request_limit],
                }
                attempt = current_attempt()
                if attempt > 1:  # made by a retry: the stable semconv's resend count
                    attributes[semconv.HTTP_RESEND_COUNT] = attempt - 1
                self.span = tracing.tracer.start_span(
                    self.method if self.method != semconv.OTHER_METHOD else "HTTP",
                    kind=_CLIENT,
                    attributes=attributes,
                )
                self.token = attach(self.span, None)
            cid = correlation.correlation_id()
            if cid is not None and semconv.REQUEST_ID_HEADER not in headers:
                headers[semconv.REQUEST_ID_HEADER] = cid
            for key, value in outbound_headers().items():
                headers[key] = value
        except Exception as exc:  # noqa: BLE001 - instrumentation never fails a call
            errors.record("client request start", exc)
        self.start = perf_counter()

    def done(self, status: int | None, error: BaseException | None) -> None:
        duration = perf_counter() - self.start
        try:
            if self.active is not None:
                self.active(-1)
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
            errors.record("client request finish", exc)


def active() -> Obskit | None:
    """The live handle, or None when calls must not be recorded (no init, or suppressed)."""
    rt = _runtime
    if rt is None or not rt.active or otel_context.get_value(_SUPPRESS):
        return None
    return rt
