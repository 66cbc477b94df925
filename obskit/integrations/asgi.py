"""One fused pure-ASGI middleware: correlation ID, server span, RED histogram, access log.

Per request it scans the headers once, binds one context object, starts one span, and on the
final response body records the histogram, ends the span and writes one access-log line. No
child spans for send/receive, no BaseHTTPMiddleware. Route templates are resolved from the
matched Starlette/FastAPI route object and cached per route object, never per raw path.
Scopes other than "http" pass straight through.
"""

from __future__ import annotations

from time import perf_counter
from typing import TYPE_CHECKING, Any

from obskit import semconv
from obskit.integrations._http import ROUTE_KEY, ServerAttributes
from obskit.runtime import correlation, errors
from obskit.runtime.metrics import exposition
from obskit.runtime.server import begin_span, prepare, record_request, request_started
from obskit.runtime.tracing.provider import detach_span

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable, MutableMapping

    from obskit.runtime.state import Obskit

    Scope = MutableMapping[str, Any]
    Message = MutableMapping[str, Any]
    Receive = Callable[[], Awaitable[Message]]
    Send = Callable[[Message], Awaitable[None]]
    ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

_UNMATCHED = semconv.UNMATCHED_ROUTE


class RouteCache:
    """Route template per (route object, mount prefix); bounded."""

    __slots__ = ("_cache",)

    def __init__(self) -> None:
        self._cache: dict[tuple[int, str], tuple[Any, str]] = {}

    def template(self, scope: Scope, root_path: str) -> str:
        route = scope.get("route")
        if route is None:
            given = scope.get(ROUTE_KEY)  # set by a framework adapter (Django)
            return given if isinstance(given, str) else _UNMATCHED
        final_root = scope.get("root_path", "")
        prefix = final_root[len(root_path) :] if final_root != root_path else ""
        key = (id(route), prefix)
        hit = self._cache.get(key)
        if hit is not None and hit[0] is route:
            return hit[1]
        fmt = getattr(route, "path_format", None)
        if fmt is None or hasattr(route, "routes"):
            # a Mount/Router matched but nothing inside it did
            return _UNMATCHED
        template = prefix + str(fmt)
        if len(self._cache) < 4096:
            self._cache[key] = (route, template)
        return template


class ObskitASGI:
    """Pure ASGI middleware; `runtime` is the handle returned by `obskit.init()`."""

    def __init__(self, app: ASGIApp, runtime: Obskit) -> None:
        self.app = app
        self.rt = runtime
        config = runtime.config
        self.metrics_path = config.metrics_path
        self.serve_metrics, self.excluded = prepare(runtime)
        self.id_headers = tuple(h.lower().encode("latin-1") for h in config.request_id_headers)
        self.routes = RouteCache()
        self.span_attributes = ServerAttributes(config.redact_keys, config.request_value_limit).asgi

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        rt = self.rt
        if scope["type"] != "http" or not rt.active:
            if scope["type"] == "lifespan":
                send = self._flush_on_shutdown(send)
            await self.app(scope, receive, send)
            return
        path = scope["path"]
        if path in self.excluded:
            if self.serve_metrics and path == self.metrics_path:
                await self._serve_metrics(scope, send)
                return
            await self.app(scope, receive, send)
            return
        start = perf_counter()
        id_headers = self.id_headers
        raw_id = traceparent = tracestate = baggage = None
        id_rank = len(id_headers)  # the earliest configured header wins, as in WSGI
        for key, value in scope["headers"]:
            if key in id_headers:
                rank = id_headers.index(key)
                if rank < id_rank:
                    raw_id, id_rank = value, rank
            elif key == b"traceparent":
                traceparent = value.decode("latin-1")
            elif key == b"tracestate":
                tracestate = value.decode("latin-1")
            elif key == b"baggage":
                baggage = value.decode("latin-1")
        cid = correlation.accept(raw_id) if raw_id is not None else correlation.new_id()
        method = scope["method"]
        request_started(rt, method)
        tracing = rt.tracing
        span = otel_token = None
        trace_id = span_id = None
        sampled = False
        if tracing is not None:
            try:
                span, otel_token, trace_id, span_id, sampled = begin_span(
                    tracing, method, traceparent, tracestate, baggage
                )
            except Exception as exc:  # noqa: BLE001 - instrumentation never fails a request
                errors.record("server span start", exc)
                span = None
        ctx = correlation.RequestContext(cid, trace_id, span_id)
        token = correlation.bind(ctx)
        id_header = (b"x-request-id", cid.encode("ascii"))
        state = [0, False]  # status, finished
        routes = self.routes
        root_path = scope.get("root_path", "")
        span_attributes = self.span_attributes

        def finish(error: BaseException | None) -> None:
            state[1] = True
            try:
                status = state[0] or 500
                duration = perf_counter() - start
                try:
                    route = routes.template(scope, root_path)
                except Exception as exc:  # noqa: BLE001 - recorded as unmatched, never skipped
                    errors.record("server route", exc)
                    route = _UNMATCHED
                ctx.route = route
                record_request(
                    rt,
                    span,
                    method,
                    route,
                    path,
                    status,
                    duration,
                    cid,
                    trace_id,
                    span_id,
                    sampled,
                    error,
                    span_attributes,
                    scope,
                )
            except Exception as exc:  # noqa: BLE001 - instrumentation never fails a request
                errors.record("server request finish", exc)

        async def send_wrapper(message: Message) -> None:
            kind = message["type"]
            if kind == "http.response.start":
                state[0] = message["status"]
                headers = list(message.get("headers", ()))
                for key, _ in headers:
                    if key.lower() == b"x-request-id":
                        break  # the app set its own: keep it, never send two
                else:
                    headers.append(id_header)
                message["headers"] = headers
            elif kind == "http.response.body" and not message.get("more_body", False):
                await send(message)
                if not state[1] and state[0] < 500:
                    # 5xx: finish when the app returns, to record the exception it raises
                    finish(None)
                return
            await send(message)

        try:
            await self.app(scope, receive, send_wrapper)
        except BaseException as exc:
            if not state[1]:
                if not state[0]:
                    state[0] = 500
                finish(exc)
            raise
        else:
            if not state[1]:
                finish(None)
        finally:
            if otel_token is not None:
                detach_span(otel_token)
            correlation.unbind(token)

    def _flush_on_shutdown(self, send: Send) -> Send:
        """Flush spans when the server shuts the app down (before the process may be killed)."""
        rt = self.rt

        async def lifespan_send(message: Message) -> None:
            if message["type"] == "lifespan.shutdown.complete" and rt.active:
                rt.flush()
            await send(message)

        return lifespan_send

    async def _serve_metrics(self, scope: Scope, send: Send) -> None:
        accept = None
        for key, value in scope["headers"]:
            if key == b"accept":
                accept = value.decode("latin-1")
        metrics = self.rt.metrics
        assert metrics is not None
        body, content_type = exposition(metrics.registry, accept)
        await send(
            {
                "type": "http.response.start",
                "status": 200,
                "headers": [
                    (b"content-type", content_type.encode("latin-1")),
                    (b"content-length", str(len(body)).encode("latin-1")),
                ],
            }
        )
        await send({"type": "http.response.body", "body": body})


def wrap_starlette(app: Any, runtime: Obskit) -> None:
    """Instrument a Starlette/FastAPI app in place, with obskit outermost.

    obskit wraps the app's whole middleware stack, around Starlette's ServerErrorMiddleware:
    `add_middleware` would sit inside it and miss the 500 response an unhandled exception
    produces, so that response would carry no X-Request-ID. FastAPI's own spans would
    duplicate obskit's server span, so they are switched off for this app.
    """
    telemetry = getattr(app, "_telemetry", None)
    if isinstance(telemetry, dict) and telemetry.get("tracing", False):
        telemetry["tracing"] = False
        telemetry["operation_spans"] = False
    build = app.build_middleware_stack

    def build_middleware_stack() -> Any:
        return ObskitASGI(build(), runtime)

    app.build_middleware_stack = build_middleware_stack
    app.middleware_stack = None  # rebuilt on the next request, with obskit outermost
