"""Steady, deterministic traffic against the example system, tallied by what the client saw.

The driver runs one background thread that cycles through a fixed mix of requests on every
route of shop and payments at a target rate, and tallies responses per (service, route
template, status). The tally is the ground truth the e2e tests compare Prometheus with.
"""

from __future__ import annotations

import itertools
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass

import httpx


@dataclass(frozen=True)
class Call:
    service: str
    method: str
    route: str  # the route template the service reports in http_route
    path: str
    json: dict[str, object] | None = None


def _mix() -> list[Call]:
    """One cycle: every route of both services, reads more often than writes."""
    calls = [
        Call("shop", "GET", "/products", "/products"),
        Call("shop", "POST", "/orders", "/orders", {"product_id": "kettle", "quantity": 1}),
        Call("shop", "GET", "/orders/{order_id}", "/orders/o-{n}"),
        Call("shop", "GET", "/products", "/products"),
        Call("payments", "GET", "/refunds/{refund_id}", "/refunds/r-{n}"),
        Call("shop", "POST", "/orders", "/orders", {"product_id": "mug", "quantity": 2}),
        Call("shop", "GET", "/orders/{order_id}", "/orders/o-{n}"),
        Call("shop", "GET", "/products", "/products"),
        Call("payments", "GET", "/refunds/{refund_id}", "/refunds/r-{n}"),
        Call("shop", "GET", "/orders/{order_id}", "/orders/missing-{n}"),  # a 404: not an error
    ]
    return calls


Key = tuple[str, str, int]  # (service, route, status); status 0 = no response


class TrafficDriver:
    """Background traffic at `rps` requests per second; pause(), resume(), stop()."""

    def __init__(self, urls: Callable[[str], str], rps: float = 20.0) -> None:
        self._urls = urls
        self.rps = rps
        self._tally: Counter[Key] = Counter()
        self.failures: list[str] = []
        self._lock = threading.Lock()
        self._state = threading.Condition()
        self._paused = False
        self._stopped = False
        self._in_flight = False
        self._thread: threading.Thread | None = None
        self._client = httpx.Client(timeout=10.0)

    def start(self) -> TrafficDriver:
        self._thread = threading.Thread(target=self._loop, name="traffic", daemon=True)
        self._thread.start()
        return self

    def pause(self) -> None:
        """Stop sending; returns once the request in flight (if any) has completed."""
        with self._state:
            self._paused = True
            self._state.wait_for(lambda: not self._in_flight, timeout=15)

    def resume(self) -> None:
        with self._state:
            self._paused = False
            self._state.notify_all()

    def stop(self) -> None:
        with self._state:
            self._stopped = True
            self._state.notify_all()
        if self._thread is not None:
            self._thread.join(timeout=15)
        self._client.close()

    def tally(self) -> Counter[Key]:
        with self._lock:
            return Counter(self._tally)

    def send(self, call: Call, n: int = 0, headers: dict[str, str] | None = None) -> httpx.Response:
        """Send one call now (from any thread) and tally it."""
        url = self._urls(call.service) + call.path.format(n=n)
        try:
            resp = self._client.request(call.method, url, json=call.json, headers=headers)
        except httpx.HTTPError as exc:
            with self._lock:
                self._tally[(call.service, call.route, 0)] += 1
                self.failures.append(f"{call.method} {url}: {type(exc).__name__}: {exc}")
            raise
        with self._lock:
            self._tally[(call.service, call.route, resp.status_code)] += 1
        return resp

    def _loop(self) -> None:
        period = 1.0 / self.rps
        next_at = time.monotonic()
        for n, call in enumerate(itertools.cycle(_mix())):
            with self._state:
                self._state.wait_for(lambda: self._stopped or not self._paused)
                if self._stopped:
                    return
                self._in_flight = True
            now = time.monotonic()
            next_at = max(next_at + period, now - 1.0)  # catch up at most one second
            if next_at > now:
                time.sleep(next_at - now)
            try:
                self.send(call, n)
            except httpx.HTTPError:
                pass
            finally:
                with self._state:
                    self._in_flight = False
                    self._state.notify_all()


def error_ratio(tally: Counter[Key], service: str, routes: set[str] | None = None) -> float:
    """Share of responses with status >= 500 (or no response) for a service's routes."""
    total = errors = 0
    for (svc, route, status), count in tally.items():
        if svc != service or (routes is not None and route not in routes):
            continue
        total += count
        if status >= 500 or status == 0:
            errors += count
    return errors / total if total else 0.0
