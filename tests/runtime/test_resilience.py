"""runtime.resilience: the vocabulary every adapter feeds (bounds, public API, logs inside a
request, in-flight gauges, http.request.resend_count)."""

from __future__ import annotations

import asyncio
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import httpx
import pytest
import tenacity

import obskit
from obskit.runtime import resilience
from obskit.testing import capture
from tests.runtime.servers import asgi_request, header_echo_server


def test_error_type_is_bounded_per_operation() -> None:
    """1,000 distinct error types through one operation: 50 keep their name, the rest share
    `_OTHER`, and every retry is still counted; another operation has its own 50."""
    with capture() as cap:
        call = obskit.retry_call("svc.flood")
        for i in range(1000):
            call.retry(type(f"Error{i}", (Exception,), {})(), wait=0)
        obskit.retry_call("svc.other").retry(KeyError(), wait=0)
        series = {
            s.labels["error_type"]
            for m in cap.registry.collect()
            for s in m.samples
            if s.name == "obskit_retries_total" and s.labels["operation"] == "svc.flood"
        }
        assert len(series) == 51 and "_OTHER" in series and "Error0" in series
        assert cap.sample("obskit_retries_total", operation="svc.flood") == 1000
        assert cap.sample("obskit_retries_total", operation="svc.flood", error_type="_OTHER") == 950
        assert cap.sample("obskit_retries_total", operation="svc.other", error_type="KeyError") == 1
        # logs keep the real class name (they are not labels)
        assert cap.logs(event="retry_scheduled")[999]["error_type"] == "Error999"


def test_hand_rolled_retry_loop() -> None:
    with capture() as cap:
        for failures in (0, 2):
            call = obskit.retry_call("svc.charge")
            for attempt in range(1, 4):
                with call.attempt() as number:
                    assert number == attempt == resilience.current_attempt()
                if attempt <= failures:
                    call.retry(ConnectionError("down"), wait=0.5)
                    continue
                call.succeeded()
                break
        gave_up = obskit.retry_call("svc.charge")
        for _ in range(2):
            with call.attempt():
                pass
            gave_up.retry(ConnectionError(), 0.1)
        gave_up.attempts = 3
        gave_up.failed(ConnectionError())
        gave_up.failed(ConnectionError())  # a second end is ignored
        assert resilience.current_attempt() == 0
        assert cap.sample("obskit_retry_calls_total", outcome="success") == 1
        assert cap.sample("obskit_retry_calls_total", outcome="recovered") == 1
        assert cap.sample("obskit_retry_calls_total", outcome="exhausted") == 1
        assert cap.sample("obskit_retries_total", operation="svc.charge") == 4
        (line,) = cap.logs(event="retries_exhausted")
        assert line["attempts"] == 3 and line["error_type"] == "ConnectionError"


def test_hand_rolled_breaker() -> None:
    with capture() as cap:
        payments = obskit.breaker("payments")
        assert cap.sample("obskit_circuit_breaker_state", breaker="payments", state="closed") == 1
        payments.failure()
        payments.set_state("open")
        payments.rejected()
        payments.set_state("open")  # no change: no transition
        payments.set_state("half_open")
        payments.success()
        payments.set_state("closed")
        assert cap.sample("obskit_circuit_breaker_calls_total", outcome="rejected") == 1
        assert cap.sample("obskit_circuit_breaker_transitions_total", breaker="payments") == 3
        lines = cap.logs(event="circuit_breaker_state_changed")
        assert [(r["level"], r["to_state"]) for r in lines] == [
            ("warning", "open"),
            ("info", "half_open"),
            ("info", "closed"),
        ]
        with pytest.raises(ValueError, match="closed, open, half_open"):
            payments.set_state("half-open")
    assert obskit.breaker("before-init").state == "closed"  # no init: records nothing, no error


def test_counters_of_a_known_breaker_or_operation_start_at_zero_for_every_outcome() -> None:
    """A series born at 1 shows no increase to rate(): the first open of a known breaker, its
    first rejection, an operation's first exhausted call would be invisible to the alerts and
    panels. So they exist at 0 as soon as obskit knows the breaker or the operation."""
    with capture() as cap:
        obskit.breaker("payments")
        for state in ("closed", "open", "half_open"):
            assert (
                cap.sample(
                    "obskit_circuit_breaker_transitions_total", breaker="payments", state=state
                )
                == 0
            )
        obskit.breaker("payments").success()
        assert cap.sample("obskit_circuit_breaker_calls_total", outcome="success") == 1
        for outcome in ("failure", "rejected"):
            assert (
                cap.sample(
                    "obskit_circuit_breaker_calls_total", breaker="payments", outcome=outcome
                )
                == 0
            )
        obskit.retry_call("svc.charge").succeeded()
        assert (
            cap.sample("obskit_retry_calls_total", operation="svc.charge", outcome="success") == 1
        )
        for outcome in ("recovered", "exhausted", "failed"):
            assert (
                cap.sample("obskit_retry_calls_total", operation="svc.charge", outcome=outcome) == 0
            )
        assert cap.sample("obskit_retry_calls_total", operation="svc.other") is None


def test_lines_and_span_events_inside_a_request_carry_its_ids() -> None:
    """A retry inside a request logs with the request's correlation_id and trace_id and adds
    a span event on its server span; a rejection and a transition add events too."""

    async def app(scope: Any, receive: Any, send: Any) -> None:
        policy = tenacity.Retrying(stop=tenacity.stop_after_attempt(2), wait=tenacity.wait_none())
        attempts = iter([ValueError("first"), None])

        def flaky() -> None:
            error = next(attempts)
            if error is not None:
                raise error

        policy(flaky)
        payments = obskit.breaker("payments")
        payments.set_state("open")
        payments.rejected()
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"ok"})

    test_name = "test_lines_and_span_events_inside_a_request_carry_its_ids"
    with capture(app) as cap:
        asyncio.run(asgi_request(cap.app, "/pay", [(b"x-request-id", b"req-1")]))
        (line,) = cap.logs(event="retry_scheduled")
        assert line["correlation_id"] == "req-1" and len(line["trace_id"]) == 32
        (server,) = [s for s in cap.spans() if s.kind.name == "SERVER"]
        events = [(e.name, dict(e.attributes)) for e in server.events]
        assert events[0] == (
            "retry_scheduled",
            {
                "retry.operation": f"{__name__}.{test_name}.<locals>.app.<locals>.flaky",
                "retry.attempt": 1,
                "error.type": "ValueError",
                "retry.wait_seconds": 0.0,
            },
        )
        assert [e[0] for e in events[1:]] == [
            "circuit_breaker_state_changed",
            "circuit_breaker_rejected",
        ]
        assert f"{line['trace_id']}" == f"{server.context.trace_id:032x}"


def test_a_route_that_cannot_be_read_still_counts_the_request_out() -> None:
    """A route object that raises when obskit reads its template: the request is recorded as
    `__unmatched__`, the in-flight gauge goes back to 0, the error is counted, never raised."""

    class BrokenRoute:
        @property
        def path_format(self) -> str:
            raise RuntimeError("a router changed its internals")

    async def app(scope: Any, receive: Any, send: Any) -> None:
        scope["route"] = BrokenRoute()
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"ok"})

    with capture(app) as cap:
        status, _headers, _body = asyncio.run(asgi_request(cap.app, "/x"))
        assert status == 200
        assert cap.sample("http_server_active_requests", http_request_method="GET") == 0
        assert (
            cap.sample("http_server_request_duration_seconds_count", http_route="__unmatched__")
            == 1
        )
        assert cap.sample("obskit_instrumentation_errors_total") == 1


def test_in_flight_gauges_count_requests_and_calls_in_progress() -> None:
    """http_server_active_requests while a request runs, back to 0 after (also on errors);
    http_client_active_requests per server_address while an outbound call waits."""
    seen: dict[str, Any] = {}

    async def app(scope: Any, receive: Any, send: Any) -> None:
        seen["server"] = cap.sample("http_server_active_requests", http_request_method="POST")
        if scope["path"] == "/boom":
            raise RuntimeError("handler failed")
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b""})

    with capture(app, instrument_clients=True) as cap:
        asyncio.run(asgi_request(cap.app, "/x", method="POST"))
        assert seen["server"] == 1
        with pytest.raises(RuntimeError):
            asyncio.run(asgi_request(cap.app, "/boom", method="POST"))
        assert cap.sample("http_server_active_requests", http_request_method="POST") == 0

        inside, go_on = threading.Event(), threading.Event()

        class Slow(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                inside.set()
                go_on.wait(5)
                self.send_response(204)
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                return None

        server = ThreadingHTTPServer(("127.0.0.1", 0), Slow)
        threading.Thread(target=server.serve_forever, daemon=True).start()
        address = f"127.0.0.1:{server.server_address[1]}"
        try:
            worker = threading.Thread(target=lambda: httpx.get(f"http://{address}/"))
            worker.start()
            assert inside.wait(5)
            assert cap.sample("http_client_active_requests", server_address=address) == 1
            go_on.set()
            worker.join(5)
            assert cap.sample("http_client_active_requests", server_address=address) == 0
        finally:
            go_on.set()
            server.shutdown()
            server.server_close()


def test_client_spans_of_later_attempts_carry_resend_count() -> None:
    """Attempt N > 1 of a retried function: its outbound client span has
    http.request.resend_count = N - 1; the first attempt's has none."""
    with header_echo_server() as url, capture(instrument_clients=True) as cap:
        attempts: list[int] = []

        @tenacity.retry(stop=tenacity.stop_after_attempt(3), wait=tenacity.wait_none())
        def fetch() -> int:
            attempts.append(1)
            response = httpx.get(f"{url}/fail" if len(attempts) < 3 else url)
            response.raise_for_status()
            return response.status_code

        assert fetch() == 200
        httpx.get(url)  # outside any retry: no resend_count
        clients = [s for s in cap.spans() if s.kind.name == "CLIENT"]
        assert [s.attributes.get("http.request.resend_count") for s in clients] == [
            None,
            1,
            2,
            None,
        ]


MULTIPROC_WORKER = """
import os, sys
import obskit
handle = obskit.init(None, service="mp", traces_enabled=False, log_stream=open(os.devnull, "w"))
payments = obskit.breaker("payments")
if sys.argv[1] == "open":
    payments.set_state("open")
    payments.rejected()
handle.metrics.server_active.get("GET")(1)  # one request in flight in each worker
print(os.getpid())
"""

EXPOSE = """
import sys
from prometheus_client import multiprocess
from obskit.runtime.metrics import exposition
from prometheus_client import CollectorRegistry
for pid in sys.argv[1:]:
    multiprocess.mark_process_dead(int(pid))
sys.stdout.write(exposition(CollectorRegistry(), None)[0].decode())
"""


@pytest.mark.integration
def test_under_multiproc_dir_the_breaker_gauge_is_per_live_process_and_in_flight_is_summed(
    tmp_path: Any,
) -> None:
    """PROMETHEUS_MULTIPROC_DIR: obskit_circuit_breaker_state has one series per live process
    (pid label; gone once mark_process_dead ran), the breaker counters and the in-flight gauge
    are summed over processes (no pid label)."""
    import os
    import subprocess
    import sys

    env = {**os.environ, "PROMETHEUS_MULTIPROC_DIR": str(tmp_path)}

    def run(*argv: str, code: str) -> str:
        return subprocess.run(
            [sys.executable, "-c", code, *argv],
            env=env,
            capture_output=True,
            text=True,
            check=True,
            timeout=60,
        ).stdout

    opened, closed = run("open", code=MULTIPROC_WORKER), run("closed", code=MULTIPROC_WORKER)
    opened, closed = opened.strip(), closed.strip()
    lines = run(code=EXPOSE).splitlines()
    state = sorted(line for line in lines if line.startswith("obskit_circuit_breaker_state{"))
    assert state == sorted(
        f'obskit_circuit_breaker_state{{breaker="payments",pid="{pid}",state="{s}"}} {v}'
        for pid, current in ((opened, "open"), (closed, "closed"))
        for s in ("closed", "open", "half_open")
        for v in ["1.0" if s == current else "0.0"]
    )
    assert 'obskit_circuit_breaker_calls_total{breaker="payments",outcome="rejected"} 1.0' in lines
    assert 'http_server_active_requests{http_request_method="GET"} 2.0' in lines
    after = run(opened, code=EXPOSE)  # the worker with the open breaker exited
    assert f'pid="{opened}"' not in after and f'pid="{closed}"' in after
    assert 'http_server_active_requests{http_request_method="GET"} 1.0' in after
