"""WSGI middleware (Flask, any WSGI app): the same telemetry as the ASGI one.

The request is finished when the server closes the response iterable (after the body was
sent). Flask/Werkzeug route templates come from the matched `url_rule`, rewritten from
`<converter:name>` to `{name}` so both frameworks label routes the same way.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Iterator
from contextvars import copy_context
from time import perf_counter
from typing import TYPE_CHECKING, Any

from obskit import semconv
from obskit.integrations._http import ROUTE_KEY, ServerAttributes
from obskit.runtime import correlation, errors
from obskit.runtime.metrics import exposition
from obskit.runtime.server import begin_span, prepare, record_request, request_started
from obskit.runtime.tracing.provider import detach

if TYPE_CHECKING:
    from obskit.runtime.state import Obskit

    StartResponse = Callable[..., Any]
    WSGIApp = Callable[[dict[str, Any], StartResponse], Iterable[bytes]]

_UNMATCHED = semconv.UNMATCHED_ROUTE
_RULE_PARAM = re.compile(r"<(?:[^:<>]+:)?([^<>]+)>")


def werkzeug_template(rule: str) -> str:
    """'/refunds/<int:refund_id>' -> '/refunds/{refund_id}'."""
    return _RULE_PARAM.sub(r"{\1}", rule)


class ObskitWSGI:
    """WSGI middleware; `runtime` is the handle returned by `obskit.init()`."""

    def __init__(self, app: WSGIApp, runtime: Obskit) -> None:
        self.app = app
        self.rt = runtime
        config = runtime.config
        self.metrics_path = config.metrics_path
        self.serve_metrics, self.excluded = prepare(runtime)
        self.id_keys = tuple(
            "HTTP_" + h.upper().replace("-", "_") for h in config.request_id_headers
        )
        self._rules: dict[int, tuple[Any, str]] = {}
        self.span_attributes = ServerAttributes(config.redact_keys, config.request_value_limit).wsgi

    def __call__(self, environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
        rt = self.rt
        if not rt.active:
            return self.app(environ, start_response)
        path = environ.get("PATH_INFO", "") or "/"
        if path in self.excluded:
            if self.serve_metrics and path == self.metrics_path:
                metrics = rt.metrics
                assert metrics is not None
                body, ctype = exposition(metrics.registry, environ.get("HTTP_ACCEPT"))
                start_response(
                    "200 OK", [("Content-Type", ctype), ("Content-Length", str(len(body)))]
                )
                return [body]
            return self.app(environ, start_response)
        return self._observed(environ, start_response, path)

    def _route(self, environ: dict[str, Any]) -> str:
        request = environ.get("werkzeug.request")
        rule = getattr(request, "url_rule", None) if request is not None else None
        if rule is None:
            rule = environ.get(ROUTE_KEY)  # set by other frameworks' adapters (Django)
            return rule if isinstance(rule, str) else _UNMATCHED
        hit = self._rules.get(id(rule))
        if hit is not None and hit[0] is rule:
            return hit[1]
        template = werkzeug_template(str(getattr(rule, "rule", "")) or _UNMATCHED)
        if len(self._rules) < 4096:
            self._rules[id(rule)] = (rule, template)
        return template

    def _observed(
        self, environ: dict[str, Any], start_response: StartResponse, path: str
    ) -> Iterable[bytes]:
        start = perf_counter()
        rt = self.rt
        raw_id = None
        for key in self.id_keys:
            raw_id = environ.get(key)
            if raw_id is not None:
                break
        cid = correlation.accept(raw_id)
        method = environ.get("REQUEST_METHOD", "GET")
        request_started(rt, method)
        tracing = rt.tracing
        span = otel_token = None
        trace_id = span_id = None
        sampled = False
        if tracing is not None:
            try:
                span, otel_token, trace_id, span_id, sampled = begin_span(
                    tracing,
                    method,
                    environ.get("HTTP_TRACEPARENT"),
                    environ.get("HTTP_TRACESTATE"),
                    environ.get("HTTP_BAGGAGE"),
                )
            except Exception as exc:  # noqa: BLE001 - instrumentation never fails a request
                errors.record("server span start", exc)
                span = None
        ctx = correlation.RequestContext(cid, trace_id, span_id)
        token = correlation.bind(ctx)
        request_context = copy_context()  # the body is pulled inside it, after unbinding
        state: list[Any] = [0, False, None]  # status, finished, route
        span_attributes = self.span_attributes

        def finish(error: BaseException | None) -> None:
            if state[1]:
                return
            state[1] = True
            try:
                status = state[0] or 500
                duration = perf_counter() - start
                try:
                    route = state[2] or self._route(environ)
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
                    environ,
                )
            except Exception as exc:  # noqa: BLE001 - instrumentation never fails a request
                errors.record("server request finish", exc)

        def observed_start_response(
            status: str, headers: list[tuple[str, str]], exc_info: Any = None
        ) -> Any:
            try:
                state[0] = int(status[:3])
            except ValueError:
                state[0] = 500
            if not any(key.lower() == "x-request-id" for key, _ in headers):
                headers.append((semconv.REQUEST_ID_HEADER, cid))
            # Flask clears environ["werkzeug.request"] when the app returns: read the route now
            state[2] = self._route(environ)
            return start_response(status, headers, exc_info)

        try:
            result = self.app(environ, observed_start_response)
        except BaseException as exc:
            state[0] = 500
            finish(exc)
            raise
        finally:
            # unbound as soon as the app returns: nothing leaks into the caller's context
            # (a test client runs the app in the test's own thread), whenever close() comes
            if otel_token is not None:
                detach(otel_token)
            correlation.unbind(token)
        return _Body(result, finish, request_context.run)


_DONE: Any = object()


class _Body:
    """Wraps the response iterable: each chunk is pulled inside the request's context; the
    request is finished when the body is exhausted or closed, whichever comes first."""

    __slots__ = ("_finish", "_result", "_run")

    def __init__(
        self,
        result: Iterable[bytes],
        finish: Callable[[BaseException | None], None],
        run: Callable[..., Any],
    ) -> None:
        self._result = result
        self._finish = finish
        self._run = run

    def __iter__(self) -> Iterator[bytes]:
        run = self._run
        iterator = None
        while True:
            try:
                if iterator is None:
                    iterator = run(iter, self._result)
                chunk = run(next, iterator, _DONE)
            except BaseException as exc:
                self._finish(exc)
                raise
            if chunk is _DONE:
                break
            yield chunk
        self._finish(None)

    def close(self) -> None:
        try:
            close = getattr(self._result, "close", None)
            if close is not None:
                close()
        finally:
            self._finish(None)
