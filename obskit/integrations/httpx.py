"""httpx adapter: sync and async transports record every outbound call (runtime.client).

Patches `httpx.HTTPTransport.handle_request` and `httpx.AsyncHTTPTransport.handle_async_request`
once, so every `Client`/`AsyncClient` (created before or after init) is covered; `uninstrument`
restores them.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Final

from obskit.integrations._patch import Patches
from obskit.runtime.client import OutboundCall, active

LIBRARY: Final = "httpx"
_patches = Patches()


def _sync(original: Callable[..., Any]) -> Callable[..., Any]:
    def handle_request(self: Any, request: Any) -> Any:
        rt = active()
        if rt is None:
            return original(self, request)
        url = request.url
        call = OutboundCall(
            rt, request.method, url.scheme, url.host, url.port, request.headers, str(url)
        )
        try:
            response = original(self, request)
        except BaseException as exc:
            call.done(None, exc)
            raise
        call.done(response.status_code, None)
        return response

    return handle_request


def _async(original: Callable[..., Any]) -> Callable[..., Any]:
    async def handle_async_request(self: Any, request: Any) -> Any:
        rt = active()
        if rt is None:
            return await original(self, request)
        url = request.url
        call = OutboundCall(
            rt, request.method, url.scheme, url.host, url.port, request.headers, str(url)
        )
        try:
            response = await original(self, request)
        except BaseException as exc:
            call.done(None, exc)
            raise
        call.done(response.status_code, None)
        return response

    return handle_async_request


def instrument() -> None:
    import httpx  # noqa: PLC0415 - only once httpx itself is imported

    _patches.wrap(httpx.HTTPTransport, "handle_request", _sync)
    _patches.wrap(httpx.AsyncHTTPTransport, "handle_async_request", _async)


def uninstrument() -> None:
    _patches.restore()
