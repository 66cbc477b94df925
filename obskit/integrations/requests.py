"""requests adapter: `Session.send` records every outbound call (runtime.client).

Patches `requests.Session.send` once, so every session (created before or after init) and the
module-level helpers (`requests.get`, ...) are covered; `uninstrument` restores it.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Final
from urllib.parse import urlsplit

from obskit.integrations._patch import Patches
from obskit.runtime.client import OutboundCall, active

LIBRARY: Final = "requests"
_patches = Patches()


def _send(original: Callable[..., Any]) -> Callable[..., Any]:
    def send(self: Any, request: Any, **kwargs: Any) -> Any:
        rt = active()
        if rt is None:
            return original(self, request, **kwargs)
        try:
            parts = urlsplit(request.url)
            scheme, host, port = parts.scheme, parts.hostname or "", parts.port
        except ValueError:
            scheme, host, port = "http", "", None
        call = OutboundCall(
            rt, str(request.method), scheme, host, port, request.headers, str(request.url)
        )
        try:
            response = original(self, request, **kwargs)
        except BaseException as exc:
            call.done(None, exc)
            raise
        call.done(response.status_code, None)
        return response

    return send


def instrument() -> None:
    import requests  # noqa: PLC0415 - only once requests itself is imported

    _patches.wrap(requests.Session, "send", _send)


def uninstrument() -> None:
    _patches.restore()
