"""OTLP/HTTP protobuf span export without building protobuf message objects.

The stock encoder builds one protobuf object per span, attribute and value (about 48 us per
span here), and that work competes with requests for the GIL. This module writes the
protobuf wire format directly (the `ExportTraceServiceRequest` of opentelemetry-proto,
field numbers from trace.proto / common.proto / resource.proto), caching the encoding of
repeated attribute pairs (method, route, status...) and of the resource and scope blocks.
The tests decode its output with opentelemetry-proto and compare it with the stock encoder.

`OTLPHttpExporter` POSTs the batch over one keep-alive `http.client` connection; it retries
what the OTLP/HTTP specification calls retryable (429, 502, 503, 504) with exponential backoff
honouring `Retry-After`, within the batch's time budget (`otlp_timeout`); a batch that still
fails is reported as FAILURE (counted and dropped by the pipe).
"""

from __future__ import annotations

import email.utils
import gzip
import http.client
import random
import struct
import threading
import time
from collections.abc import Mapping, Sequence
from typing import Any, Final
from urllib.parse import urlsplit

from opentelemetry.sdk.trace.export import SpanExporter, SpanExportResult
from opentelemetry.trace import SpanKind, StatusCode

from obskit.runtime.tracing.span import UNSET, Finished, ServerSpan

_pack_q = struct.Struct("<Q").pack
_pack_d = struct.Struct("<d").pack
_pack_i = struct.Struct("<I").pack
_pack_times = struct.Struct("<BQBQ").pack  # start_time_unix_nano, end_time_unix_nano (fixed64)
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
        "messaging.message.id",
    }
)
"""Per-request (per-message) values: encoded every time, never filling the cache of repeated
pairs (a unique value per span would fill it with entries never used again)."""
_CACHED_MAX: Final = 256  # longer encoded pairs are not cached (bounds the cache's memory)
_RECENT_KEYS: Final = frozenset(
    {"client.address", "client.port", "user_agent.original", "server.address"}
)
"""Values that repeat in practice but are unbounded: a small cache emptied when full."""
_RECENT_LIMIT: Final = 1024
_NEW: Final[Any] = object()
_LOCAL_FLAGS: Final = b"\x85\x01" + _pack_i(_HAS_IS_REMOTE)  # Span.flags: field 16, fixed32
_REMOTE_FLAGS: Final = b"\x85\x01" + _pack_i(_HAS_IS_REMOTE | _IS_REMOTE)
_LOCAL_TAIL: Final = b"\x7a\x00" + _LOCAL_FLAGS  # an empty Status, then the flags
_REMOTE_TAIL: Final = b"\x7a\x00" + _REMOTE_FLAGS


RETRYABLE_STATUSES: Final = frozenset({429, 502, 503, 504})
"""Answers the OTLP/HTTP specification calls retryable."""
_FIRST_BACKOFF: Final = 1.0
_MIN_TIMEOUT: Final = 0.05
_MAX_RETRY_AFTER: Final = 3600.0


def retry_after(value: str | None) -> float | None:
    """Seconds to wait from a `Retry-After` header (delay-seconds or an HTTP date), or None
    when absent or unreadable."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return min(float(value), _MAX_RETRY_AFTER) if len(value) <= 10 else _MAX_RETRY_AFTER
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    if when.tzinfo is None:
        return None
    delay = when.timestamp() - time.time()
    return min(max(delay, 0.0), _MAX_RETRY_AFTER)


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


def _prefixes(key: str) -> tuple[bytes, ...]:
    """Everything of an attribute pair with text value before the value's bytes, by length
    of the value (for the lengths whose pair fits a one-byte length)."""
    head = _str(0x0A, key) + b"\x12"
    return tuple(
        b"\x4a" + bytes((n + len(head) + 3,)) + head + bytes((n + 2, 0x0A, n))
        for n in range(0x80 - len(head) - 3)
    )


_UNCACHED_PREFIXES: Final = {key: _prefixes(key) for key in _UNCACHED_KEYS}


def _uncached_text_pair(key: str, value: str) -> bytes:
    """`_ld(0x4A, key_value(key, value))` for a per-span text attribute: short ones (the
    correlation ID, a message ID) are a precomputed prefix and the value's bytes."""
    data = value.encode("utf-8", "replace")
    prefixes = _UNCACHED_PREFIXES.get(key)
    if prefixes is None or len(data) >= len(prefixes):
        return _ld(0x4A, key_value(key, value))
    return prefixes[len(data)] + data


class Encoder:
    """Encodes ReadableSpans to an ExportTraceServiceRequest (bytes)."""

    def __init__(self) -> None:
        self._kv: dict[tuple[str, Any, type], bytes] = {}  # non-text values
        self._recent: dict[tuple[str, Any, type], bytes] = {}
        # text values (most attributes): (key, value) -> encoded pair, the very tuples a
        # span's `attributes.items()` yields, so a hit is one lookup
        self._texts: dict[tuple[str, str], bytes] = {}
        self._recent_texts: list[tuple[str, str]] = []  # the _RECENT_KEYS entries in _texts
        self._blocks: dict[int, tuple[Any, bytes]] = {}
        self._heads: dict[str, tuple[Any, bytes]] = {}  # name -> (kind, name + kind fields)

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

    def _text_pair(self, key: str, value: str) -> bytes:
        """An encoded text attribute pair missing from the cache (kept there unless per-span,
        too long, or the cache is full; the recent-values keys in a small bounded share)."""
        if key in _UNCACHED_KEYS:
            return _uncached_text_pair(key, value)
        pair = _ld(0x4A, key_value(key, value))  # Span.attributes = field 9
        if len(pair) > _CACHED_MAX:
            return pair
        texts = self._texts
        if key in _RECENT_KEYS:
            recent = self._recent_texts
            if len(recent) >= _RECENT_LIMIT:
                for entry in recent:
                    texts.pop(entry, None)
                recent.clear()
            recent.append((key, value))
        elif len(texts) - len(self._recent_texts) >= _CACHE_LIMIT:
            return pair
        texts[(key, value)] = pair
        return pair

    def _pair(self, key: str, value: Any) -> bytes:
        """An encoded attribute pair whose value is not text."""
        kind = type(value)
        if key in _UNCACHED_KEYS or kind is list or kind is tuple or kind is dict:
            return _ld(0x4A, key_value(key, value))
        cache_key = (key, value, kind)
        cache = self._recent if key in _RECENT_KEYS else self._kv
        hit = cache.get(cache_key)
        if hit is None:
            hit = _ld(0x4A, key_value(key, value))
            if cache is self._recent:
                if len(cache) >= _RECENT_LIMIT:
                    cache.clear()
                if len(hit) <= _CACHED_MAX:
                    cache[cache_key] = hit
            elif len(cache) < _CACHE_LIMIT and len(hit) <= _CACHED_MAX:
                cache[cache_key] = hit
        return hit

    def cached_keys(self) -> set[str]:
        """Attribute keys with cached encoded pairs (tests: per-request keys never are)."""
        keys = {key for key, _value in self._texts}
        return keys | {key for key, _value, _kind in (*self._kv, *self._recent)}

    def span(self, span: Finished) -> bytes:
        if isinstance(span, ServerSpan):  # obskit's lean span: its IDs without a SpanContext
            trace_id, span_id, state = span.ids
        else:
            ctx = span.get_span_context()
            assert ctx is not None
            trace_id, span_id, state = ctx.trace_id, ctx.span_id, ctx.trace_state
        ids = b"\x0a\x10" + trace_id.to_bytes(16, "big") + b"\x12\x08" + span_id.to_bytes(8, "big")
        parts = [ids]
        if state:
            parts.append(_str(0x1A, state.to_header()))
        parent = span.parent
        remote = False
        if parent is not None:
            parts.append(b"\x22\x08" + parent.span_id.to_bytes(8, "big"))
            remote = parent.is_remote
        name, kind = span.name, span.kind
        head = self._heads.get(name)
        if head is None or head[0] is not kind:  # name and kind: one cached block
            head = (kind, _str(0x2A, name) + _KINDS[kind])
            if len(self._heads) < _CACHE_LIMIT:
                self._heads[name] = head
        parts.append(head[1])
        parts.append(_pack_times(0x39, span.start_time or 0, 0x41, span.end_time or 0))
        attributes = span.attributes
        if attributes:
            texts = self._texts
            for item in attributes.items():
                try:
                    hit = texts.get(item)  # type: ignore[arg-type]
                except TypeError:  # an unhashable value (a list)
                    hit = None
                if hit is None:
                    key, value = item
                    hit = (
                        self._text_pair(key, value)
                        if type(value) is str
                        else self._pair(key, value)
                    )
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
        if status is UNSET or (status.status_code is _STATUS_UNSET and not status.description):
            # an empty Status (as the stock encoder writes), then the flags (field 16, fixed32)
            parts.append(_REMOTE_TAIL if remote else _LOCAL_TAIL)
        else:
            code = status.status_code.value
            body = _str(0x12, status.description) if status.description else b""
            if code:
                body += b"\x18" + _SMALL_VARINTS[code]
            parts.append(_ld(0x7A, body))
            parts.append(_REMOTE_FLAGS if remote else _LOCAL_FLAGS)
        return b"".join(parts)

    def request(self, spans: Sequence[Finished]) -> bytes:
        """ExportTraceServiceRequest bytes for a batch (grouped by resource and scope)."""
        groups: dict[int, tuple[Any, dict[int, tuple[Any, list[bytes]]]]] = {}
        last: tuple[Any, Any] = (_NEW, _NEW)
        encoded: list[bytes] = []
        for span in spans:
            resource = span.resource
            scope = span.instrumentation_scope
            if resource is not last[0] or scope is not last[1]:  # mostly one of each
                by_scope = groups.setdefault(id(resource), (resource, {}))[1]
                encoded = by_scope.setdefault(id(scope), (scope, []))[1]
                last = (resource, scope)
            encoded.append(_ld(0x12, self.span(span)))
        out = []
        for resource, by_scope in groups.values():
            body = _ld(0x0A, self._block(resource, self._resource))
            for scope, scope_encoded in by_scope.values():
                scope_spans = _ld(0x0A, self._block(scope, self._scope)) + b"".join(scope_encoded)
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
    """POSTs encoded batches to an OTLP/HTTP endpoint over one keep-alive connection.

    Retries (OTLP/HTTP spec): a batch answered 429, 502, 503 or 504 is sent again after an
    exponential backoff (1 s, 2 s, 4 s ... with +-20% jitter; longer when the server's
    `Retry-After` asks for more), as long as the next attempt starts within `timeout`
    seconds of the first: `timeout` is the whole time one batch may hold the export thread.
    Any other answer, and a connection that fails, end the batch at once (FAILURE: the pipe
    counts it as dropped). Only the batch being sent is held meanwhile (memory stays bounded
    by the pipe's queue); `shutdown()` cuts a backoff short.
    """

    reads_lean_spans: Final = True
    """The pipe hands it obskit's lean spans as they are (its encoder reads them directly)."""

    def __init__(
        self,
        endpoint: str,
        *,
        headers: Mapping[str, str] | None = None,
        timeout: float = 10.0,
        compression: str | None = None,
        backoff: float = _FIRST_BACKOFF,
    ) -> None:
        parts = urlsplit(endpoint)
        self._https = parts.scheme == "https"
        self._host = parts.hostname or "localhost"
        self._port = parts.port or (443 if self._https else 80)
        self._path = (parts.path or "/v1/traces") + (f"?{parts.query}" if parts.query else "")
        self._timeout = timeout
        self._backoff = backoff
        self._gzip = compression == "gzip"
        self._headers = {"Content-Type": "application/x-protobuf", **dict(headers or {})}
        if self._gzip:
            self._headers["Content-Encoding"] = "gzip"
        self._encoder = Encoder()
        self._conn: http.client.HTTPConnection | None = None
        self._closed = False
        self._stop = threading.Event()
        self.last_error: str | None = None
        self.retries = 0
        """Attempts repeated after a retryable answer (for tests and diagnostics)."""

    def _connection(self, timeout: float) -> http.client.HTTPConnection:
        conn = self._conn
        if conn is None:
            cls = http.client.HTTPSConnection if self._https else http.client.HTTPConnection
            conn = self._conn = cls(self._host, self._port, timeout=timeout)
        else:
            conn.timeout = timeout
            if conn.sock is not None:
                conn.sock.settimeout(timeout)
        return conn

    def export(self, spans: Sequence[Finished]) -> SpanExportResult:
        if self._closed:
            return SpanExportResult.FAILURE
        body = self._encoder.request(spans)
        if self._gzip:
            body = gzip.compress(body, compresslevel=1)
        deadline = time.monotonic() + self._timeout
        backoff = self._backoff
        attempts = 1
        while True:
            answer = self._post(body, max(deadline - time.monotonic(), _MIN_TIMEOUT))
            if answer is None:
                return SpanExportResult.FAILURE
            status, retry_after = answer
            if 200 <= status < 300:
                return SpanExportResult.SUCCESS
            where = f"HTTP {status} from {self._host}:{self._port}"
            if status not in RETRYABLE_STATUSES:
                self.last_error = where
                return SpanExportResult.FAILURE
            # never sooner than the server asked, never faster than the backoff
            wait = max(backoff * random.uniform(0.8, 1.2), retry_after or 0.0)
            if time.monotonic() + wait >= deadline:
                tried = f"{attempts} attempt{'s' if attempts > 1 else ''}"
                self.last_error = f"{where}; {tried} within otlp_timeout={self._timeout:g}s"
                return SpanExportResult.FAILURE
            if self._stop.wait(wait):
                self.last_error = f"{where}; retry abandoned at shutdown"
                return SpanExportResult.FAILURE
            backoff *= 2
            attempts += 1
            self.retries += 1

    def _post(self, body: bytes, timeout: float) -> tuple[int, float | None] | None:
        """(status, Retry-After seconds) of one POST; None when no answer came back."""
        for attempt in (0, 1):  # one retry only for a keep-alive connection the peer closed
            try:
                conn = self._connection(timeout)
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
                return None
            return response.status, retry_after(response.getheader("Retry-After"))
        return None

    def _reset(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None:
            conn.close()

    def after_fork(self) -> None:
        """In a forked child: drop the parent's connection without closing its socket."""
        self._conn = None

    def shutdown(self) -> None:
        self._closed = True
        self._stop.set()
        self._reset()

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        return True
