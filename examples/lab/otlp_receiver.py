"""A small OTLP/HTTP trace receiver on loopback, decoding real protobuf.

No collector is packaged for this machine, so tests, the demo and the benchmark use this
receiver as the wire-level peer of obskit's OTLP exporter. It accepts
`POST /v1/traces` with `application/x-protobuf` bodies (gzip or not), decodes them with
opentelemetry-proto and answers an `ExportTraceServiceResponse`, exactly as a collector does.

Failure modes for tests: ``set_mode("ok" | "hang" | "error")`` (hang holds the request open until
released or stopped; error answers HTTP 503), and ``stop()`` makes the port refuse connections.
``reply_next(Reply(429, retry_after="1"), ...)`` answers the next requests with those statuses
(the body is read, not recorded), then the mode applies again; ``answers()`` lists what every
POST got, with its arrival time (for retry tests).

In-process::

    with OTLPReceiver() as rx:
        os.environ["OTEL_EXPORTER_OTLP_ENDPOINT"] = rx.endpoint
        ...
        spans = rx.wait_for_spans(2)

As a separate process (for benchmarks, so decoding never competes for the measured process's
GIL)::

    python -m examples.lab.otlp_receiver --port 0 --count-only
    # prints "listening on http://127.0.0.1:PORT"; GET /stats -> {"spans": n, "requests": m}
"""

from __future__ import annotations

import argparse
import contextlib
import gzip
import json
import signal
import socket
import sys
import threading
import time
from dataclasses import asdict, dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Literal

from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, KeyValue

Mode = Literal["ok", "hang", "error"]
_RESPONSE = ExportTraceServiceResponse().SerializeToString()


@dataclass(frozen=True)
class Reply:
    """A scripted answer to one POST: an HTTP status, and optionally a Retry-After header."""

    status: int
    retry_after: str | None = None


@dataclass(frozen=True)
class Answer:
    """What one POST got: when it arrived (time.monotonic()), the status and its span count."""

    at: float
    status: int
    spans: int


@dataclass(frozen=True)
class ReceivedSpan:
    """One span as it arrived on the wire (ids as lowercase hex, "" when absent)."""

    trace_id: str
    span_id: str
    parent_span_id: str
    name: str
    kind: int
    status_code: int
    start_time_unix_nano: int
    end_time_unix_nano: int
    scope: str
    attributes: dict[str, Any] = field(default_factory=dict)
    resource: dict[str, Any] = field(default_factory=dict)


def _value(v: AnyValue) -> Any:
    kind = v.WhichOneof("value")
    if kind is None:
        return None
    if kind == "array_value":
        return [_value(x) for x in v.array_value.values]
    if kind == "kvlist_value":
        return _attributes(v.kvlist_value.values)
    return getattr(v, kind)


def _attributes(kvs: Any) -> dict[str, Any]:
    out: dict[str, Any] = {}
    kv: KeyValue
    for kv in kvs:
        out[kv.key] = _value(kv.value)
    return out


def decode_spans(body: bytes) -> list[ReceivedSpan]:
    """Decode an ExportTraceServiceRequest into flat spans."""
    request = ExportTraceServiceRequest()
    request.ParseFromString(body)
    spans: list[ReceivedSpan] = []
    for rs in request.resource_spans:
        resource = _attributes(rs.resource.attributes)
        for ss in rs.scope_spans:
            for s in ss.spans:
                spans.append(
                    ReceivedSpan(
                        trace_id=s.trace_id.hex(),
                        span_id=s.span_id.hex(),
                        parent_span_id=s.parent_span_id.hex(),
                        name=s.name,
                        kind=s.kind,
                        status_code=s.status.code,
                        start_time_unix_nano=s.start_time_unix_nano,
                        end_time_unix_nano=s.end_time_unix_nano,
                        scope=ss.scope.name,
                        attributes=_attributes(s.attributes),
                        resource=resource,
                    )
                )
    return spans


def count_spans(body: bytes) -> int:
    request = ExportTraceServiceRequest()
    request.ParseFromString(body)
    return sum(len(ss.spans) for rs in request.resource_spans for ss in rs.scope_spans)


class OTLPReceiver:
    """OTLP/HTTP trace receiver on 127.0.0.1 running in a background thread."""

    def __init__(self, port: int = 0, *, count_only: bool = False) -> None:
        self._requested_port = port
        self.count_only = count_only
        self.mode: Mode = "ok"
        self._lock = threading.Lock()
        self._spans: list[ReceivedSpan] = []
        self._span_count = 0
        self._requests = 0
        self._changed = threading.Condition(self._lock)
        self._release = threading.Event()
        self._script: list[Reply] = []
        self._answers: list[Answer] = []
        self._posts = 0
        self._server: ThreadingHTTPServer | None = None
        self._connections: set[socket.socket] = set()
        self._thread: threading.Thread | None = None
        self.port = port

    # -- lifecycle -----------------------------------------------------------------
    def start(self) -> OTLPReceiver:
        """Start listening (again, on the same port after a stop when it was bound once)."""
        if self._server is not None:
            return self
        self._release.clear()
        server = ThreadingHTTPServer(("127.0.0.1", self.port), self._handler_class())
        server.daemon_threads = True
        self.port = server.server_address[1]
        self._server = server
        self._thread = threading.Thread(
            target=server.serve_forever,
            kwargs={"poll_interval": 0.05},
            daemon=True,
            name=f"otlp-receiver-{self.port}",
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop listening: the port refuses connections afterwards. Hung requests are released."""
        self._release.set()
        server, self._server = self._server, None
        if server is not None:
            server.shutdown()
            server.server_close()
        # Cut keep-alive connections too: a stopped collector must look dead to an exporter
        # that holds a pooled connection, not keep answering on it.
        with self._lock:
            connections, self._connections = self._connections, set()
        for conn in connections:
            with contextlib.suppress(OSError):
                conn.shutdown(socket.SHUT_RDWR)
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None

    def __enter__(self) -> OTLPReceiver:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -- what tests read -----------------------------------------------------------
    @property
    def endpoint(self) -> str:
        """Base endpoint for OTEL_EXPORTER_OTLP_ENDPOINT (the exporter appends /v1/traces)."""
        return f"http://127.0.0.1:{self.port}"

    @property
    def traces_url(self) -> str:
        return f"{self.endpoint}/v1/traces"

    def spans(self) -> list[ReceivedSpan]:
        with self._lock:
            return list(self._spans)

    @property
    def span_count(self) -> int:
        with self._lock:
            return self._span_count

    @property
    def request_count(self) -> int:
        with self._lock:
            return self._requests

    def clear(self) -> None:
        with self._lock:
            self._spans.clear()
            self._span_count = 0
            self._requests = 0
            self._answers.clear()
            self._posts = 0

    @property
    def posts(self) -> int:
        """POST requests that arrived, including any still held by mode="hang"."""
        with self._lock:
            return self._posts

    def reply_next(self, *replies: Reply) -> None:
        """Answer the next POSTs with these replies, in order (then the mode applies again)."""
        with self._lock:
            self._script.extend(replies)

    def answers(self) -> list[Answer]:
        """Every POST so far: arrival time, status answered, spans in its body."""
        with self._lock:
            return list(self._answers)

    def _scripted(self) -> Reply | None:
        with self._lock:
            return self._script.pop(0) if self._script else None

    def _answered(self, at: float, status: int, spans: int | None, body: bytes) -> None:
        if spans is None:  # not recorded: count what it carried (scripted and error answers)
            try:
                spans = count_spans(body)
            except Exception:  # noqa: BLE001 - an undecodable body still gets its answer logged
                spans = -1
        with self._lock:
            self._answers.append(Answer(at, status, spans))

    def set_mode(self, mode: Mode) -> None:
        """Switch failure mode; "hang" holds every request until release_hung() or stop()."""
        if mode == "hang":
            self._release.clear()
        self.mode = mode

    def release_hung(self) -> None:
        """Let requests held by mode="hang" complete."""
        self._release.set()

    def wait_for_spans(self, n: int, timeout: float = 10.0) -> list[ReceivedSpan]:
        """Wait until at least n spans arrived; return them all (fails loudly on timeout)."""
        deadline = time.monotonic() + timeout
        with self._changed:
            while self._span_count < n:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise TimeoutError(
                        f"OTLP receiver got {self._span_count} spans, expected at least {n}"
                    )
                self._changed.wait(remaining)
            return list(self._spans)

    def stats(self) -> dict[str, int]:
        with self._lock:
            return {"spans": self._span_count, "requests": self._requests}

    # -- HTTP ----------------------------------------------------------------------
    def _record(self, body: bytes) -> int:
        if self.count_only:
            n = count_spans(body)
            with self._changed:
                self._span_count += n
                self._requests += 1
                self._changed.notify_all()
            return n
        spans = decode_spans(body)
        with self._changed:
            self._spans.extend(spans)
            self._span_count += len(spans)
            self._requests += 1
            self._changed.notify_all()
        return len(spans)

    def _handler_class(self) -> type[BaseHTTPRequestHandler]:
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def setup(self) -> None:
                super().setup()
                with receiver._lock:
                    receiver._connections.add(self.connection)

            def finish(self) -> None:
                with receiver._lock:
                    receiver._connections.discard(self.connection)
                super().finish()

            def log_message(self, format: str, *args: Any) -> None:
                return  # quiet: tests and benchmarks read stats, not access logs

            def _reply(
                self,
                status: int,
                body: bytes,
                content_type: str,
                headers: dict[str, str] | None = None,
            ) -> None:
                try:
                    self.send_response(status)
                    for name, value in (headers or {}).items():
                        self.send_header(name, value)
                    self.send_header("Content-Type", content_type)
                    self.send_header("Content-Length", str(len(body)))
                    self.end_headers()
                    self.wfile.write(body)
                except (BrokenPipeError, ConnectionResetError):
                    # the sender is gone (a hung request released after its process exited):
                    # nobody to answer, as for a real collector; no traceback on stderr
                    self.close_connection = True

            def do_GET(self) -> None:
                if self.path == "/stats":
                    payload = receiver.stats()
                elif self.path == "/spans":
                    payload = [asdict(s) for s in receiver.spans()]  # type: ignore[assignment]
                else:
                    self._reply(404, b"not found\n", "text/plain")
                    return
                self._reply(200, json.dumps(payload).encode(), "application/json")

            def do_POST(self) -> None:
                at = time.monotonic()
                with receiver._lock:
                    receiver._posts += 1
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length)
                if self.headers.get("Content-Encoding", "").lower() == "gzip":
                    with contextlib.suppress(OSError, EOFError):
                        body = gzip.decompress(body)
                status, spans, payload, headers = self._answer(body)
                receiver._answered(at, status, spans, body)  # logged before the sender hears
                content_type = "application/x-protobuf" if status == 200 else "text/plain"
                self._reply(status, payload, content_type, headers)

            def _answer(self, body: bytes) -> tuple[int, int | None, bytes, dict[str, str]]:
                """(status, spans recorded or None, response body, extra headers)."""
                scripted = receiver._scripted()
                if scripted is not None:
                    headers = {}
                    if scripted.retry_after is not None:
                        headers["Retry-After"] = scripted.retry_after
                    return scripted.status, None, b"scripted\n", headers
                if receiver.mode == "hang":
                    receiver._release.wait(timeout=60)
                if receiver.mode == "error":
                    return 503, None, b"unavailable\n", {}
                if self.path != "/v1/traces":
                    return 404, None, b"not found\n", {}
                try:
                    spans = receiver._record(body)
                except Exception as exc:  # noqa: BLE001 - a bad body is the sender's bug: say 400
                    return 400, -1, f"bad OTLP body: {exc}\n".encode(), {}
                return 200, spans, _RESPONSE, {}

        return Handler


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--count-only", action="store_true", help="count spans, keep none")
    args = parser.parse_args(argv)
    receiver = OTLPReceiver(args.port, count_only=args.count_only).start()
    print(f"listening on {receiver.endpoint}", flush=True)
    stopped = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stopped.set())
    stopped.wait()
    receiver.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
