"""Server-span HTTP semconv attributes read from an ASGI scope or a WSGI environ (shared by
the server adapters).

Called only for a recording (sampled) span, when the request finishes: an untraced or
sampled-out request never reads them. `client.address` is the peer the server reports
(uvicorn's `--proxy-headers` or werkzeug's `ProxyFix` decide whether a proxy is trusted);
`server.address`/`server.port` come from the Host header (the scheme's default port when
it names none). Query values under secret-looking keys are replaced by `REDACTED` (the rule of
obskit.runtime.redact). Every value copied from the request is cut to the request value limit
(`Config.request_value_limit`: 2048 characters unless OTEL_[SPAN_]ATTRIBUTE_VALUE_LENGTH_LIMIT
says otherwise).
"""

from __future__ import annotations

from typing import Any, Final

from obskit import semconv
from obskit.runtime.client import DEFAULT_PORTS
from obskit.runtime.config import REQUEST_VALUE_LIMIT
from obskit.runtime.redact import redactor

_CACHE_SIZE: Final = 256
ROUTE_KEY: Final = "obskit.route"
"""environ/scope key where a framework adapter (Django) leaves the matched route template."""


def _host_port(host: str) -> tuple[str, int | None]:
    """'example.com:8080' -> ('example.com', 8080); '[::1]' -> ('::1', None)."""
    name, port = host, ""
    if host.startswith("["):
        end = host.find("]")
        if end > 0:
            name, port = host[1:end], host[end + 1 :].removeprefix(":")
    elif host.count(":") == 1:
        name, _, port = host.partition(":")
    return name, _port(port)


def _port(text: Any) -> int | None:
    """A TCP port from text, or None (never int() on an unbounded digit string)."""
    text = str(text)
    if 0 < len(text) <= 5 and text.isascii() and text.isdigit():
        port = int(text)
        return port if 0 < port < 65536 else None
    return None


class ServerAttributes:
    """Fills a server span's attribute dict from the request (one per middleware)."""

    __slots__ = ("_hosts", "_limit", "_query", "_texts")

    def __init__(self, redact_keys: tuple[str, ...], limit: int = REQUEST_VALUE_LIMIT) -> None:
        self._query = redactor(redact_keys).query
        self._limit = limit
        """Longest value copied from the request (Config.request_value_limit): cut before it
        is decoded, redacted or cached, so a 100 KB header costs no more than a short one."""
        # Host and User-Agent values repeat: decoded/parsed once per distinct value (the same
        # str objects also hit the exporter's cache); bounded, emptied when full
        self._hosts: dict[str | bytes, tuple[str, int | None]] = {}
        self._texts: dict[bytes, str] = {}

    def _server(self, host: str | bytes, scheme: str) -> tuple[str, int | None]:
        """(server.address, server.port) from a Host header."""
        if len(host) > self._limit:
            host = host[: self._limit]
        hit = self._hosts.get(host)
        if hit is None:
            hit = _host_port(host.decode("latin-1") if isinstance(host, bytes) else host)
            if len(self._hosts) >= _CACHE_SIZE:
                self._hosts.clear()
            self._hosts[host] = hit
        return hit[0], hit[1] or DEFAULT_PORTS.get(scheme)

    def _text(self, raw: bytes) -> str:
        if len(raw) > self._limit:
            raw = raw[: self._limit]
        text = self._texts.get(raw)
        if text is None:
            text = raw.decode("latin-1")
            if len(self._texts) >= _CACHE_SIZE:
                self._texts.clear()
            self._texts[raw] = text
        return text

    def asgi(self, scope: Any, attributes: dict[str, Any]) -> None:
        scheme = scope.get("scheme", "http")
        attributes["url.scheme"] = scheme
        limit = self._limit
        method = scope.get("method", "")
        if method not in semconv.KNOWN_METHODS:
            attributes["http.request.method_original"] = method[:limit]
        query = scope.get("query_string")
        if query:
            if len(query) > limit:
                query = query[:limit]
            attributes["url.query"] = self._query(query.decode("utf-8", "replace"))
        version = scope.get("http_version")
        if version:
            attributes["network.protocol.version"] = version
        client = scope.get("client")
        if client and client[0]:
            attributes["client.address"] = client[0][:limit]  # proxy headers may set it
            if client[1]:
                attributes["client.port"] = client[1]
        host = None
        for key, value in scope.get("headers", ()):
            if key == b"host":
                host = value
            elif key == b"user-agent":
                attributes["user_agent.original"] = self._text(value)
        if host:
            address, port = self._server(host, scheme)
        else:
            server = scope.get("server")
            if not server:
                return
            address, port = server[0], server[1]
        if address:
            attributes["server.address"] = address
            if port:
                attributes["server.port"] = port

    def wsgi(self, environ: Any, attributes: dict[str, Any]) -> None:
        scheme = environ.get("wsgi.url_scheme", "http")
        attributes["url.scheme"] = scheme
        limit = self._limit
        method = environ.get("REQUEST_METHOD", "")
        if method not in semconv.KNOWN_METHODS:
            attributes["http.request.method_original"] = method[:limit]
        query = environ.get("QUERY_STRING")
        if query:
            if len(query) > limit:
                query = query[:limit]
            if not query.isascii():  # PEP 3333: latin-1 decoded bytes
                query = query.encode("latin-1", "replace").decode("utf-8", "replace")
            attributes["url.query"] = self._query(query)
        protocol = environ.get("SERVER_PROTOCOL", "")
        if protocol.startswith("HTTP/"):
            attributes["network.protocol.version"] = protocol[5:]
        client = environ.get("REMOTE_ADDR")
        if client:
            attributes["client.address"] = client[:limit]
            port = _port(environ.get("REMOTE_PORT", ""))
            if port:
                attributes["client.port"] = port
        agent = environ.get("HTTP_USER_AGENT")
        if agent:
            attributes["user_agent.original"] = agent if len(agent) <= limit else agent[:limit]
        host = environ.get("HTTP_HOST")
        if host:
            address, server_port = self._server(host, scheme)
        else:
            address = environ.get("SERVER_NAME", "")
            server_port = _port(environ.get("SERVER_PORT", ""))
        if address:
            attributes["server.address"] = address
            if server_port:
                attributes["server.port"] = server_port
