"""backoff adapter: same behaviour with and without obskit, for functions decorated before
and after init(); errors the policy does not retry are counted too."""

from __future__ import annotations

import asyncio
from typing import Any

import backoff
import pytest

from obskit.testing import capture
from tests.integrations.parity import retries, retry_calls, with_and_without


class Flaky:
    def __init__(self, failures: int, error: type[Exception] = ConnectionError) -> None:
        self.failures, self.error, self.attempts = failures, error, 0

    def __call__(self) -> int:
        self.attempts += 1
        if self.attempts <= self.failures:
            raise self.error(f"attempt {self.attempts}")
        return self.attempts


def _decorated(flaky: Flaky, **policy: Any) -> Any:
    handled: list[str] = []

    @backoff.on_exception(
        backoff.constant,
        ConnectionError,
        interval=0,
        max_tries=3,
        jitter=None,
        on_backoff=lambda d: handled.append(f"backoff:{d['target'].__name__}:{d['tries']}"),
        on_giveup=lambda d: handled.append(f"giveup:{d['tries']}"),
        on_success=lambda d: handled.append(f"success:{d['tries']}"),
        **policy,
    )
    def send() -> int:
        return flaky()

    send.handled = handled  # type: ignore[attr-defined]
    return send


def _observe(send: Any, flaky: Flaky) -> tuple[Any, ...]:
    try:
        value: Any = send()
    except Exception as exc:  # noqa: BLE001 - part of what the caller observes
        value = type(exc).__name__
    return (value, flaky.attempts, send.handled)


@pytest.mark.parametrize(
    ("failures", "error", "policy", "outcome", "scheduled"),
    [
        (0, ConnectionError, {}, "success", 0),
        (2, ConnectionError, {}, "recovered", 2),
        (5, ConnectionError, {}, "exhausted", 2),
        (5, ConnectionError, {"raise_on_giveup": False}, "exhausted", 2),
        (1, KeyError, {}, "failed", 0),  # not retried: no backoff handler runs
        (5, ConnectionError, {"giveup": lambda e: True}, "failed", 0),
    ],
)
def test_on_exception_outcomes(
    failures: int, error: type[Exception], policy: dict[str, Any], outcome: str, scheduled: int
) -> None:
    def scenario() -> Any:
        flaky = Flaky(failures, error)
        return _observe(_decorated(flaky, **policy), flaky)

    with with_and_without(scenario) as (_, cap):
        operation = f"{__name__}._decorated.<locals>.send"
        assert retry_calls(cap, operation) == {outcome: 1.0}
        assert retries(cap, operation) == scheduled
        assert len(cap.logs(event="retries_exhausted")) == (outcome == "exhausted")


def test_error_after_retries_is_exhausted_and_predicate_giveup_is_exhausted() -> None:
    def after_retry() -> Any:
        attempts = []

        def send() -> int:
            attempts.append(1)
            if len(attempts) == 1:
                raise ConnectionError("flaky")
            raise KeyError("then broken")

        retried = backoff.on_exception(backoff.constant, ConnectionError, interval=0, jitter=None)
        try:
            return retried(send)()
        except KeyError:
            return ("KeyError", len(attempts))

    def predicate() -> Any:
        values = iter([0, 0, 0])

        def poll() -> int:
            return next(values)

        return backoff.on_predicate(backoff.constant, interval=0, max_tries=3, jitter=None)(poll)()

    with with_and_without(after_retry) as (observed, cap):
        assert observed == ("value", ("KeyError", 2))
        assert cap.sample("obskit_retry_calls_total", outcome="exhausted") == 1
    with with_and_without(predicate) as (observed, cap):
        assert observed == ("value", 0)  # on_predicate gives up returning the last value
        assert cap.sample("obskit_retry_calls_total", outcome="exhausted") == 1
        assert cap.sample("obskit_retries_total", error_type="_RESULT") == 2


def test_decorated_before_init_and_handlers_still_see_the_users_target() -> None:
    flaky = Flaky(1)
    send = _decorated(flaky)
    with capture() as cap:
        assert send() == 2
        assert send.handled == ["backoff:send:1", "success:2"]
        assert cap.sample("obskit_retry_calls_total", outcome="recovered") == 1
    assert send() == 3  # after reset: the original closure again
    assert send.__wrapped__.__name__ == "send"


def test_async() -> None:
    async def run() -> Any:
        flaky = Flaky(1)

        @backoff.on_exception(
            backoff.constant, ConnectionError, interval=0, max_tries=3, jitter=None
        )
        async def send() -> int:
            return flaky()

        return await send()

    with with_and_without(lambda: asyncio.run(run())) as (observed, cap):
        assert observed == ("value", 2)
        assert cap.sample("obskit_retry_calls_total", outcome="recovered") == 1
        assert cap.sample("obskit_retries_total") == 1


SCAN = """
import gc, os, sys
import backoff
scans = []
real = gc.get_referrers
gc.get_referrers = lambda *codes: scans.append(len(codes)) or real(*codes)
if sys.argv[1] == "decorated":
    @backoff.on_exception(backoff.constant, ConnectionError, interval=0, max_tries=2, jitter=None)
    def send():
        return 1
import obskit
handle = obskit.init(None, service="t", traces_enabled=False, log_stream=open(os.devnull, "w"))
print("scans", scans)
if sys.argv[1] == "decorated":
    send()
    print("observed", handle.metrics.registry.get_sample_value(
        "obskit_retry_calls_total", {"operation": "__main__.send", "outcome": "success"}))
"""


@pytest.mark.parametrize(("mode", "scans"), [("unused", "scans []"), ("decorated", "scans [4]")])
def test_the_heap_is_searched_once_and_only_when_a_function_was_decorated_before_init(
    mode: str, scans: str
) -> None:
    """Finding functions decorated before init() costs one gc pass over the heap; with backoff
    imported but nothing decorated yet, no pass at all."""
    import subprocess
    import sys

    out = subprocess.run(
        [sys.executable, "-c", SCAN, mode], capture_output=True, text=True, check=True, timeout=60
    ).stdout
    assert scans in out
    if mode == "decorated":
        assert "observed 1.0" in out
