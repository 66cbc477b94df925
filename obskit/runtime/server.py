"""Span start/end shared by the ASGI and WSGI middleware (the per-request hot path)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from opentelemetry.trace import Status, StatusCode

from obskit import semconv
from obskit.runtime import errors
from obskit.runtime.tracing.provider import Tracing, attach, baggage_context, parse_traceparent
from obskit.runtime.tracing.span import ServerSpan

if TYPE_CHECKING:
    from collections.abc import Callable

    from obskit.runtime.state import Obskit

_UNMATCHED = semconv.UNMATCHED_ROUTE
_ERROR = Status(StatusCode.ERROR)


def prepare(runtime: Obskit) -> tuple[bool, frozenset[str]]:
    """A middleware's setup: (serve the metrics endpoint here?, paths never observed).

    Also reroutes the servers' loggers: servers (uvicorn.run, gunicorn) may have configured
    them after init(). The metrics endpoint is never observed, whatever path it is served on.
    """
    if runtime.bridge is not None:
        runtime.bridge.reroute_servers()
    config = runtime.config
    serve_metrics = runtime.metrics is not None and config.metrics_port is None
    extra = (config.metrics_path,) if serve_metrics else ()
    return serve_metrics, frozenset((*config.excluded_paths, *extra))


def begin_span(
    tracing: Tracing,
    method: str,
    traceparent: str | None,
    tracestate: str | None,
    baggage: str | None,
) -> tuple[Any, Any, str, str, bool]:
    """(span, context token, trace_id hex, span_id hex, sampled) for a new server request."""
    parent = parse_traceparent(traceparent, tracestate) if traceparent else None
    if tracing.pipe is not None:
        return tracing.begin_server_span(
            method, parent, baggage_context(baggage) if baggage else None
        )
    span = tracing.start_server_span(method, parent)  # the user's provider
    span_context = span.get_span_context()
    token = attach(span, baggage_context(baggage) if baggage else None)
    return (
        span,
        token,
        f"{span_context.trace_id:032x}",
        f"{span_context.span_id:016x}",
        span.is_recording(),
    )


def end_span(  # noqa: PLR0917 - hot path: positional on purpose
    span: Any,
    method: str,
    route: str,
    path: str,
    status: int,
    cid: str,
    error: BaseException | None,
    request_attributes: Callable[[Any, dict[str, Any]], None],
    request: Any,
) -> None:
    """Name the span after the route template, set the HTTP attributes, end it.

    `request_attributes(request, attributes)` adds the ones read from the ASGI scope or
    WSGI environ; it runs only for a recording span. An unmatched request has no http.route.
    """
    if span.is_recording():
        attributes: dict[str, Any] = {
            "http.request.method": method,
            "http.response.status_code": status,
            "url.path": path,
            semconv.SPAN_CORRELATION_ID: cid,
        }
        if route != _UNMATCHED:
            attributes["http.route"] = route
        request_attributes(request, attributes)
        if status >= 500 or error is not None:
            attributes["error.type"] = type(error).__name__ if error is not None else str(status)
            span.set_status(_ERROR)
            if isinstance(error, Exception):
                span.record_exception(error)
        if type(span) is ServerSpan:
            span.set_known(attributes)
        else:
            span.set_attributes(attributes)
        if route != _UNMATCHED:
            span.update_name(f"{method if method != semconv.OTHER_METHOD else 'HTTP'} {route}")
        elif method == semconv.OTHER_METHOD:
            span.update_name("HTTP")
    span.end()


@dataclass(frozen=True, slots=True)
class RequestInfo:
    """What a `request_hook` receives (with the server span) when a request finishes."""

    method: str
    route: str
    path: str
    status: int
    duration_s: float
    correlation_id: str
    error: BaseException | None


def request_started(rt: Obskit, method: str) -> None:
    """One more inbound request in flight (http_server_active_requests); record_request
    counts it out. Call it once per observed request, after the method is known."""
    metrics = rt.metrics
    if metrics is not None:
        metrics.server_active.get(
            method if method in semconv.KNOWN_METHODS else semconv.OTHER_METHOD
        )(1)


def record_request(  # noqa: PLR0917 - hot path: positional on purpose
    rt: Obskit,
    span: Any,
    method: str,
    route: str,
    path: str,
    status: int,
    duration: float,
    cid: str,
    trace_id: str | None,
    span_id: str | None,
    sampled: bool,
    error: BaseException | None,
    request_attributes: Callable[[Any, dict[str, Any]], None],
    request: Any,
) -> None:
    """Everything recorded when a server request finishes: span, histogram, access log.

    `path` is cut to the request value limit first: the span's url.path, the access line's path
    and the request hook see at most that many characters of a client-chosen path."""
    if len(path) > rt.request_limit:
        path = path[: rt.request_limit]
    method_label = method if method in semconv.KNOWN_METHODS else semconv.OTHER_METHOD
    metrics = rt.metrics
    if metrics is not None:
        metrics.server_active.get(method_label)(-1)  # first: nothing below can skip it
    hook = rt.config.request_hook
    if hook is not None:
        try:
            hook(span, RequestInfo(method, route, path, status, duration, cid, error))
        except Exception as exc:  # noqa: BLE001 - a user hook never fails the request
            errors.record("request_hook", exc)
    if span is not None:
        if sampled:
            end_span(
                span, method_label, route, path, status, cid, error, request_attributes, request
            )
        else:
            span.end()  # not recording: nothing to name or annotate
    if metrics is not None:
        labels = (method_label, route, str(status))
        if sampled and metrics.exemplars:
            metrics.server.observe_with_exemplar(labels, duration, trace_id)
        else:
            metrics.server.get(labels)(duration)
    if rt.logs.access_log:
        rt.logs.access(method, route, path, status, duration, cid, trace_id, span_id, error)
