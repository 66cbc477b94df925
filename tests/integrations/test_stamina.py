"""stamina adapter: stamina runs on tenacity; each call is counted once, and obskit's hook
joins stamina's own hooks (they keep working)."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from typing import Any

import pytest
import stamina
from stamina.instrumentation import get_on_retry_hooks, set_on_retry_hooks

from obskit.testing import capture
from tests.integrations.parity import retries, retry_calls, with_and_without

NO_WAIT = {"wait_initial": 0.0, "wait_max": 0.0, "wait_jitter": 0.0}
"""No backoff sleeps, attempts unchanged (stamina.set_testing exists only since 24.3)."""


@pytest.fixture(autouse=True)
def _default_hooks() -> Iterator[None]:
    yield
    set_on_retry_hooks(None)


class Flaky:
    def __init__(self, failures: int) -> None:
        self.failures, self.attempts = failures, 0

    def __call__(self) -> int:
        self.attempts += 1
        if self.attempts <= self.failures:
            raise ConnectionError(f"attempt {self.attempts}")
        return self.attempts


def _decorated(failures: int) -> Any:
    flaky = Flaky(failures)

    @stamina.retry(on=ConnectionError, attempts=3, **NO_WAIT)
    def fetch() -> int:
        return flaky()

    return fetch


@pytest.mark.parametrize(
    ("failures", "outcome"), [(0, "success"), (2, "recovered"), (5, "exhausted")]
)
def test_each_call_counted_once_with_stamina_name(failures: int, outcome: str) -> None:
    def scenario() -> Any:
        try:
            return _decorated(failures)()
        except ConnectionError as exc:
            return str(exc)

    with with_and_without(scenario) as (_, cap):
        operation = f"{__name__}._decorated.<locals>.fetch"
        assert retry_calls(cap, operation) == {outcome: 1.0}
        assert retries(cap, operation) == min(failures, 2)
        assert len(cap.logs(event="retry_scheduled")) == min(failures, 2)


def test_obskit_joins_staminas_hooks_and_a_replacement_is_still_counted() -> None:
    seen: list[int] = []
    set_on_retry_hooks([lambda details: seen.append(details.retry_num)])
    with capture() as cap:
        hooks = get_on_retry_hooks()
        assert len(hooks) == 2  # the application's hook and obskit's
        _decorated(1)()
        assert seen == [1]
        assert cap.sample("obskit_retries_total") == 1
        set_on_retry_hooks([])  # the application drops every hook: obskit still counts, once
        _decorated(2)()
        assert cap.sample("obskit_retries_total") == 3
    assert get_on_retry_hooks() == ()


def test_retry_context_names_the_enclosing_function_and_async() -> None:
    def context_loop() -> int:
        flaky = Flaky(1)
        for attempt in stamina.retry_context(on=ConnectionError, attempts=3, **NO_WAIT):
            with attempt:
                return flaky()
        return -1

    async def async_loop() -> int:
        flaky = Flaky(1)
        async for attempt in stamina.retry_context(on=ConnectionError, attempts=3, **NO_WAIT):
            with attempt:
                return flaky()
        return -1

    with with_and_without(lambda: (context_loop(), asyncio.run(async_loop()))) as (_, cap):
        prefix = f"{__name__}.test_retry_context_names_the_enclosing_function_and_async.<locals>"
        assert retry_calls(cap, f"{prefix}.context_loop") == {"recovered": 1.0}
        assert retry_calls(cap, f"{prefix}.async_loop") == {"recovered": 1.0}
        assert cap.sample("obskit_retries_total") == 2
