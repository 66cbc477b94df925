"""OTLP/HTTP protobuf span export without building protobuf message objects.

The stock encoder builds one protobuf object per span, attribute and value (about 48 us per
span here), and that work competes with requests for the GIL. This module writes the
protobuf wire format directly (the `ExportTraceServiceRequest` of opentelemetry-proto,
field numbers from trace.proto / common.proto / resource.proto), caching the encoding of
repeated attribute pairs (method, route, status...) and of the resource and scope blocks.
The tests decode its output with opentelemetry-proto and compare it with the stock encoder.

`OTLPHttpExporter` POSTs the batch over one keep-alive `http.client` connection; a failed
batch is reported as FAILURE (counted and dropped by the pipe), never retried in a loop.
"""

from __future__ import annotations

import gzip
import http.client
import struct
from collections.abc import Mapping, Sequence
from typing import Any, Final
from urllib.parse import urlsplit

from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export import SpanExporter, SpanExportResult
from opentelemetry.trace import SpanKind, StatusCode

_pack_q = struct.Struct("<Q").pack
_pack_d = struct.Struct("<d").pack
_pack_i = struct.Struct("<I").pack
_CACHE_LIMIT: Final = 8192
_HAS_IS_REMOTE: Final = 0x100
_IS_REMOTE: Final = 0x200
_KINDS: Final = {kind: b"\x30" + bytes((kind.value + 1,)) for kind in SpanKind}
_STATUS_UNSET: Final = StatusCode.UNSET
_UNCACHED_KEYS: Final = frozenset(
    {
        "url.path",
        "url.full",
        "url.query",
        "correlation_id",
        "exception.stacktrace",
        "exception.message",
    }
)
"""Per-request values: encoded every time, never filling the cache of repeated pairs."""
_CACHED_MAX: Final = 256  # longer encoded pairs are not cached (bounds the cache's memory)
_RECENT_KEYS: Final = frozenset(
    {"client.address", "client.port", "user_agent.original", "server.address"}
)
"""Values that repeat in practice but are unbounded: a small cache emptied when full."""
_RECENT_LIMIT: Final = 1024


def _varint(value: int) -> bytes:
    if value < 0:
        value += 1 << 64
    if value < 0x80:
        return bytes((value,))
    out = bytearray()
    while value >= 0x80:
        out.append((value & 0x7F) | 0x80)
        value >>= 7
    out.append(value)
    return bytes(out)


_SMALL_VARINTS: Final = tuple(_varint(i) for i in range(16384))


_TAGS: Final = tuple(bytes((t,)) for t in range(128))


def _ld(tag: int, data: bytes) -> bytes:
    """A length-delimited field (tag < 128, already shifted: field << 3 | 2)."""
    n = len(data)
    return _TAGS[tag] + (_SMALL_VARINTS[n] if n < 16384 else _varint(n)) + data


def _str(tag: int, text: str) -> bytes:
    # lone surrogates would make the whole batch invalid protobuf: replace them
    data = text.encode("utf-8", "replace")
    n = len(data)
    return _TAGS[tag] + (_SMALL_VARINTS[n] if n < 16384 else _varint(n)) + data


def any_value(value: Any) -> bytes:
    """Encode an AnyValue message body."""
    if isinstance(value, bool):
        return b"\x10\x01" if value else b"\x10\x00"
    if isinstance(value, str):
        return _str(0x0A, value)
    if isinstance(value, int):
        if -(1 << 63) <= value < (1 << 63):
            return b"\x18" + _varint(value)
        return _str(0x0A, str(value))
    if isinstance(value, float):
        return b"\x21" + _pack_d(value)
    if isinstance(value, bytes):
        return _ld(0x3A, value)
    if isinstance(value, Mapping):
        kvs = b"".join(_ld(0x0A, key_value(str(k), v)) for k, v in value.items())
        return _ld(0x32, kvs)
    if isinstance(value, Sequence):
        return _ld(0x2A, b"".join(_ld(0x0A, any_value(v)) for v in value))
    if value is None:
        return b""
    return _str(0x0A, str(value))


def key_value(key: str, value: Any) -> bytes:
    if type(value) is str:  # the common case, without the dispatch in any_value
        return _str(0x0A, key) + _ld(0x12, _str(0x0A, value))
    return _str(0x0A, key) + _ld(0x12, any_value(value))


class Encoder:
    """Encodes ReadableSpans to an ExportTraceServiceRequest (bytes)."""

    def __init__(self) -> None:
        self._kv: dict[tuple[str, Any, type], bytes] = {}
        self._recent: dict[tuple[str, Any, type], bytes] = {}
        self._blocks: dict[int, tuple[Any, bytes]] = {}
        self._names: dict[str, bytes] = {}

    def _attributes(self, tag: int, attributes: Mapping[str, Any] | None) -> bytes:
        if not attributes:
            return b""
        return b"".join([_ld(tag, key_value(k, v)) for k, v in attributes.items()])

    def _block(self, obj: Any, build: Any) -> bytes:
        hit = self._blocks.get(id(obj))
        if hit is not None and hit[0] is obj:
            return hit[1]
        data: bytes = build(obj)
        if len(self._blocks) < 64:
            self._blocks[id(obj)] = (obj, data)
        return data

    @staticmethod
    def _resource(resource: Any) -> bytes:
        attrs = getattr(resource, "attributes", None) or {}
        return b"".join(_ld(0x0A, key_value(k, v)) for k, v in attrs.items())

    @staticmethod
    def _scope(scope: Any) -> bytes:
        if scope is None:
            return b""
        out = _str(0x0A, scope.name or "")
        if scope.version:
            out += _str(0x12, scope.version)
        attrs = getattr(scope, "attributes", None)
        if attrs:
            out += b"".join(_ld(0x1A, key_value(k, v)) for k, v in attrs.items())
        return out

    def span(self, span: ReadableSpan) -> bytes:
        ctx = span.get_span_context()
        assert ctx is not None
        parts = [
            b"\x0a\x10" + ctx.trace_id.to_bytes(16, "big"),
            b"\x12\x08" + ctx.span_id.to_bytes(8, "big"),
        ]
        if ctx.trace_state:
            parts.append(_str(0x1A, ctx.trace_state.to_header()))
        parent = span.parent
        flags = _HAS_IS_REMOTE
        if parent is not None:
            parts.append(b"\x22\x08" + parent.span_id.to_bytes(8, "big"))
            if parent.is_remote:
                flags |= _IS_REMOTE
        name = self._names.get(span.name)
        if name is None:
            name = _str(0x2A, span.name)
            if len(self._names) < _CACHE_LIMIT:
                self._names[span.name] = name
        parts.append(name)
        parts.append(_KINDS[span.kind])
        parts.append(b"\x39" + _pack_q(span.start_time or 0))
        parts.append(b"\x41" + _pack_q(span.end_time or 0))
        attributes = span.attributes
        if attributes:
            kv_cache = self._kv
            for key, value in attributes.items():
                kind = type(value)
                if key in _UNCACHED_KEYS or kind is list or kind is tuple or kind is dict:
                    parts.append(_ld(0x4A, key_value(key, value)))
                    continue
                cache_key = (key, value, kind)
                if key in _RECENT_KEYS:
                    hit = self._recent.get(cache_key)
                    if hit is None:
                        hit = _ld(0x4A, key_value(key, value))
                        if len(self._recent) >= _RECENT_LIMIT:
                            self._recent.clear()
                        if len(hit) <= _CACHED_MAX:
                            self._recent[cache_key] = hit
                    parts.append(hit)
                    continue
                hit = kv_cache.get(cache_key)
                if hit is None:
                    hit = _ld(0x4A, key_value(key, value))  # Span.attributes = field 9
                    if len(kv_cache) < _CACHE_LIMIT and len(hit) <= _CACHED_MAX:
                        kv_cache[cache_key] = hit
                parts.append(hit)
        if span.dropped_attributes:
            parts.append(b"\x50" + _varint(span.dropped_attributes))
        for event in span.events:
            body = b"\x09" + _pack_q(event.timestamp) + _str(0x12, event.name)
            body += self._attributes(0x1A, event.attributes)
            parts.append(_ld(0x5A, body))
        for link in span.links:
            lctx = link.context
            body = b"\x0a\x10" + lctx.trace_id.to_bytes(16, "big")
            body += b"\x12\x08" + lctx.span_id.to_bytes(8, "big")
            body += self._attributes(0x22, link.attributes)
            lflags = _HAS_IS_REMOTE | (_IS_REMOTE if lctx.is_remote else 0)
            body += b"\x35" + _pack_i(lflags)
            parts.append(_ld(0x6A, body))
        status = span.status
        if status.status_code is _STATUS_UNSET and not status.description:
            parts.append(b"\x7a\x00")  # an empty Status, as the stock encoder writes
        else:
            code = status.status_code.value
            body = _str(0x12, status.description) if status.description else b""
            if code:
                body += b"\x18" + _SMALL_VARINTS[code]
            parts.append(_ld(0x7A, body))
        parts.append(b"\x85\x01" + _pack_i(flags))  # field 16, fixed32
        return b"".join(parts)

    def request(self, spans: Sequence[ReadableSpan]) -> bytes:
        """ExportTraceServiceRequest bytes for a batch (grouped by resource and scope)."""
        groups: dict[int, tuple[Any, dict[int, tuple[Any, list[bytes]]]]] = {}
        for span in spans:
            resource = span.resource
            scope = span.instrumentation_scope
            by_scope = groups.setdefault(id(resource), (resource, {}))[1]
            by_scope.setdefault(id(scope), (scope, []))[1].append(_ld(0x12, self.span(span)))
        out = []
        for resource, by_scope in groups.values():
            body = _ld(0x0A, self._block(resource, self._resource))
            for scope, encoded in by_scope.values():
                scope_spans = _ld(0x0A, self._block(scope, self._scope)) + b"".join(encoded)
                schema = getattr(scope, "schema_url", None)
                if schema:
                    scope_spans += _str(0x1A, schema)
                body += _ld(0x12, scope_spans)
            schema = getattr(resource, "schema_url", None)
            if schema:
                body += _str(0x1A, schema)
            out.append(_ld(0x0A, body))
        return b"".join(out)


class OTLPHttpExporter(SpanExporter):
    """POSTs encoded batches to an OTLP/HTTP endpoint over one keep-alive connection."""

    def __init__(
        self,
        endpoint: str,
        *,
        headers: Mapping[str, str] | None = None,
        timeout: float = 10.0,
        compression: str | None = None,
    ) -> None:
        parts = urlsplit(endpoint)
        self._https = parts.scheme == "https"
        self._host = parts.hostname or "localhost"
        self._port = parts.port or (443 if self._https else 80)
        self._path = (parts.path or "/v1/traces") + (f"?{parts.query}" if parts.query else "")
        self._timeout = timeout
        self._gzip = compression == "gzip"
        self._headers = {"Content-Type": "application/x-protobuf", **dict(headers or {})}
        if self._gzip:
            self._headers["Content-Encoding"] = "gzip"
        self._encoder = Encoder()
        self._conn: http.client.HTTPConnection | None = None
        self._closed = False
        self.last_error: str | None = None

    def _connection(self) -> http.client.HTTPConnection:
        if self._conn is None:
            cls = http.client.HTTPSConnection if self._https else http.client.HTTPConnection
            self._conn = cls(self._host, self._port, timeout=self._timeout)
        return self._conn

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        if self._closed:
            return SpanExportResult.FAILURE
        body = self._encoder.request(spans)
        if self._gzip:
            body = gzip.compress(body, compresslevel=1)
        for attempt in (0, 1):  # one retry only for a keep-alive connection the peer closed
            try:
                conn = self._connection()
                conn.request("POST", self._path, body, self._headers)
                response = conn.getresponse()
                response.read()
            except (OSError, http.client.HTTPException) as exc:
                self._reset()
                self.last_error = f"{type(exc).__name__}: {exc}"
                if attempt == 0 and isinstance(
                    exc, (http.client.RemoteDisconnected, BrokenPipeError, ConnectionResetError)
                ):
                    continue
                return SpanExportResult.FAILURE
            if 200 <= response.status < 300:
                return SpanExportResult.SUCCESS
            self.last_error = f"HTTP {response.status} from {self._host}:{self._port}"
            return SpanExportResult.FAILURE
        return SpanExportResult.FAILURE

    def _reset(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None:
            conn.close()

    def after_fork(self) -> None:
        """In a forked child: drop the parent's connection without closing its socket."""
        self._conn = None

    def shutdown(self) -> None:
        self._closed = True
        self._reset()

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        return True
