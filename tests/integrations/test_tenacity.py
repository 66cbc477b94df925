"""tenacity adapter: same behaviour with and without obskit; every call counted once."""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import pytest
import tenacity
from tenacity import (
    AsyncRetrying,
    RetryError,
    Retrying,
    retry,
    retry_if_exception_type,
    retry_if_result,
    stop_after_attempt,
    wait_fixed,
    wait_none,
)

from obskit.runtime import errors, resilience
from obskit.testing import capture
from tests.integrations.parity import retries, retry_calls, with_and_without

OP = __name__


class Flaky:
    """Fails `failures` times with `error`, then returns `value`; counts attempts."""

    def __init__(self, failures: int, error: type[BaseException] = ValueError, value: Any = 7):
        self.failures, self.error, self.value, self.attempts = failures, error, value, 0

    def __call__(self) -> Any:
        self.attempts += 1
        if self.attempts <= self.failures:
            raise self.error(f"attempt {self.attempts}")
        return self.value


def _decorated(failures: int, **policy: Any) -> tuple[Flaky, Any]:
    flaky = Flaky(failures, **policy.pop("flaky", {}))

    @retry(wait=wait_none(), **policy)
    def charge() -> Any:
        return flaky()

    return flaky, charge


@pytest.mark.parametrize(
    ("failures", "policy", "outcome", "scheduled"),
    [
        (0, {"stop": stop_after_attempt(3)}, "success", 0),
        (2, {"stop": stop_after_attempt(3)}, "recovered", 2),
        (5, {"stop": stop_after_attempt(3)}, "exhausted", 2),
        (5, {"stop": stop_after_attempt(3), "reraise": True}, "exhausted", 2),
        (5, {"stop": stop_after_attempt(1)}, "failed", 0),
        (
            1,
            {"retry": retry_if_exception_type(KeyError), "stop": stop_after_attempt(3)},
            "failed",
            0,
        ),
        (
            5,
            {"stop": stop_after_attempt(3), "retry_error_callback": lambda state: "fallback"},
            "exhausted",
            2,
        ),
    ],
)
def test_decorator_outcomes_follow_the_policy_and_behaviour_is_unchanged(
    failures: int, policy: dict[str, Any], outcome: str, scheduled: int
) -> None:
    """Return values, exceptions and attempt counts are the same with obskit; the outcome is
    the policy's decision (a fallback from retry_error_callback is `exhausted`)."""

    def scenario() -> Any:
        flaky, charge = _decorated(failures, **dict(policy))
        try:
            return (charge(), flaky.attempts)
        except Exception as exc:  # noqa: BLE001 - part of what the caller observes
            return (type(exc).__name__, flaky.attempts)

    with with_and_without(scenario) as (_, cap):
        operation = f"{OP}._decorated.<locals>.charge"
        assert retry_calls(cap, operation) == {outcome: 1.0}
        assert retries(cap, operation) == scheduled
        assert len(cap.logs(event="retry_scheduled")) == scheduled
        exhausted = cap.logs(event="retries_exhausted")
        assert len(exhausted) == (1 if outcome == "exhausted" else 0)


def test_retry_lines_carry_attempt_error_type_and_wait() -> None:
    """One warning per scheduled retry (attempt = the one that failed), one error line when
    the policy gives up, each with the fields the issue names."""
    with capture() as cap:
        _, charge = _decorated(9, stop=stop_after_attempt(3))
        with pytest.raises(RetryError):
            charge()
        lines = cap.logs(event="retry_scheduled")
        assert [(r["level"], r["attempt"], r["error_type"], r["wait_seconds"]) for r in lines] == [
            ("warning", 1, "ValueError", 0.0),
            ("warning", 2, "ValueError", 0.0),
        ]
        (gave_up,) = cap.logs(event="retries_exhausted")
        assert gave_up["level"] == "error"
        assert gave_up["attempts"] == 3 and gave_up["error_type"] == "ValueError"
        assert gave_up["operation"] == f"{OP}._decorated.<locals>.charge"


def test_wait_is_the_policys_wait() -> None:
    with capture() as cap:
        calls = Flaky(1)
        Retrying(wait=wait_fixed(0.01), stop=stop_after_attempt(2))(calls)
        (line,) = cap.logs(event="retry_scheduled")
        assert line["wait_seconds"] == 0.01


def test_retry_on_result_has_error_type_result() -> None:
    """A retry caused by a returned value (retry_if_result) is labelled `_RESULT`."""

    def scenario() -> Any:
        values = iter([None, None, 3])
        policy = Retrying(retry=retry_if_result(lambda r: r is None), stop=stop_after_attempt(5))
        return policy(lambda: next(values))

    with with_and_without(scenario) as (observed, cap):
        assert observed == ("value", 3)
        assert cap.sample("obskit_retries_total", error_type="_RESULT") == 2
        assert cap.sample("obskit_retry_calls_total", outcome="recovered") == 1


def loop_form(failures: int) -> tuple[int, int]:
    flaky = Flaky(failures)
    for attempt in Retrying(stop=stop_after_attempt(4), wait=wait_none()):
        with attempt:
            return (flaky(), flaky.attempts)
    raise AssertionError("unreachable")


def test_loop_form_names_the_enclosing_function_and_ends_on_return() -> None:
    """`for attempt in Retrying()` counts once, named after the function containing the loop,
    although the loop is left with `return` (tenacity never decides after a success there)."""
    for failures, outcome in ((0, "success"), (2, "recovered")):
        with with_and_without(lambda f=failures: loop_form(f)) as (_, cap):
            assert retry_calls(cap, f"{OP}.loop_form") == {outcome: 1.0}
            assert retries(cap, f"{OP}.loop_form") == failures


def test_loop_form_exhausted_and_left_with_break() -> None:
    def exhausted() -> Any:
        for attempt in Retrying(stop=stop_after_attempt(2), reraise=True):
            with attempt:
                raise KeyError("down")
        return None

    def left_early() -> int:
        count = 0
        for _attempt in Retrying(stop=stop_after_attempt(5)):
            count += 1
            break
        return count

    with with_and_without(exhausted) as (observed, cap):
        assert observed[0] == "raised"
        assert retry_calls(
            cap, f"{OP}.test_loop_form_exhausted_and_left_with_break.<locals>.exhausted"
        ) == {"exhausted": 1.0}
    with with_and_without(left_early) as (observed, cap):
        assert observed == ("value", 1)
        assert cap.sample("obskit_retry_calls_total", outcome="failed") == 1
        assert resilience.current_attempt() == 0


def test_async_decorator_and_async_loop() -> None:
    async def run() -> tuple[Any, ...]:
        flaky = Flaky(1)

        @retry(stop=stop_after_attempt(3), wait=wait_none())
        async def fetch() -> Any:
            return flaky()

        first = await fetch()
        loop = Flaky(2)
        async for attempt in AsyncRetrying(stop=stop_after_attempt(3), wait=wait_none()):
            with attempt:
                second = loop()
        return (first, flaky.attempts, second, loop.attempts)

    with with_and_without(lambda: asyncio.run(run())) as (_, cap):
        assert retry_calls(
            cap, f"{OP}.test_async_decorator_and_async_loop.<locals>.run.<locals>.fetch"
        ) == {"recovered": 1.0}
        assert retry_calls(cap, f"{OP}.test_async_decorator_and_async_loop.<locals>.run") == {
            "recovered": 1.0
        }
        assert cap.sample("obskit_retries_total") == 3


def test_policies_created_before_init_are_observed() -> None:
    """Decorated functions and Retrying objects built before init() feed the signals."""
    _, charge = _decorated(1, stop=stop_after_attempt(3))
    policy = Retrying(stop=stop_after_attempt(3), wait=wait_none())
    with capture() as cap:
        assert charge() == 7
        assert policy(Flaky(1)) == 7
        assert cap.sample("obskit_retry_calls_total", outcome="recovered") == 2


def test_nested_retries_count_separately_and_restore_the_attempt() -> None:
    inner_flaky = Flaky(1)

    @retry(stop=stop_after_attempt(3), wait=wait_none())
    def inner() -> int:
        assert resilience.current_attempt() == inner_flaky.attempts + 1
        return int(inner_flaky())

    outer_attempts = []

    @retry(stop=stop_after_attempt(3), wait=wait_none())
    def outer() -> int:
        outer_attempts.append(resilience.current_attempt())
        value = inner()
        assert resilience.current_attempt() == len(outer_attempts)
        if len(outer_attempts) < 2:
            raise ValueError("again")
        return value

    with capture() as cap:
        assert outer() == 7
        assert outer_attempts == [1, 2]
        assert resilience.current_attempt() == 0
        assert (
            cap.sample(
                "obskit_retry_calls_total",
                operation=f"{OP}.test_nested_retries_count_separately_and_restore_the_attempt.<locals>.outer",
                outcome="recovered",
            )
            == 1
        )
        assert (
            cap.sample(
                "obskit_retry_calls_total",
                operation=f"{OP}.test_nested_retries_count_separately_and_restore_the_attempt.<locals>.inner",
            )
            == 2
        )


def test_adapter_failure_is_counted_logged_once_and_never_raised(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """If obskit's side breaks (e.g. tenacity changed), the user's call is unaffected."""

    def broken(*args: Any, **kwargs: Any) -> None:
        raise RuntimeError("adapter broke")

    with capture() as cap:
        monkeypatch.setattr(resilience, "retry_finished", broken)
        before = errors.total()
        with caplog.at_level(logging.ERROR, logger="obskit"):
            for _ in range(3):
                assert _decorated(1, stop=stop_after_attempt(3))[1]() == 7
        assert errors.total() - before == 3
        assert len([r for r in caplog.records if "tenacity" in r.getMessage()]) == 1
        assert cap.sample("obskit_retries_total") == 3  # what still works keeps working


def test_uninstrumented_after_reset() -> None:
    with capture():
        pass
    assert (
        "iter" not in vars(tenacity.BaseRetrying)
        or tenacity.BaseRetrying.iter.__module__ == "tenacity"
    )


def test_loop_form_attempt_number_lives_inside_the_with_block_only() -> None:
    """In `for attempt in Retrying()` the attempt number (resend_count) is set inside
    `with attempt:` only, so an async loop abandoned with `break` (tenacity never decides, the
    call is not counted: a known limit) leaves no stale number for later outbound calls."""

    async def abandoned() -> list[int]:
        seen = []
        async for attempt in AsyncRetrying(stop=stop_after_attempt(5), wait=wait_none()):
            seen.append(resilience.current_attempt())
            with attempt:
                seen.append(resilience.current_attempt())
                raise ValueError("tenacity keeps it until it decides")
            if attempt.retry_state.attempt_number == 2:
                break
        seen.append(resilience.current_attempt())
        return seen

    def sync_loop() -> list[int]:
        seen = []
        for attempt in Retrying(stop=stop_after_attempt(3), wait=wait_none()):
            with attempt:
                seen.append(resilience.current_attempt())
                if attempt.retry_state.attempt_number < 3:
                    raise ValueError("again")
            seen.append(resilience.current_attempt())  # also after a failed attempt
        return seen

    with with_and_without(lambda: len(asyncio.run(abandoned())) + len(sync_loop())) as (_, cap):
        assert cap.sample("obskit_retry_calls_total", outcome="recovered") == 1
        assert cap.sample("obskit_retries_total") == 3  # 1 in the abandoned loop, 2 in the other
        assert asyncio.run(abandoned()) == [0, 1, 0, 2, 0]
        assert sync_loop() == [1, 0, 2, 0, 3, 0]
