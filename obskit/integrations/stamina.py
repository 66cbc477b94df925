"""stamina adapter: obskit joins stamina's own retry hooks (it never replaces them).

stamina runs on tenacity, so its calls already go through obskit.integrations.tenacity, which
counts each call once (outcome, operation = stamina's `module.qualname` of the retried
callable, or the function containing a `retry_context` loop). What stamina adds is its hook
API: `stamina.instrumentation.set_on_retry_hooks`. This adapter appends one hook to the hooks
stamina already has (by default its own Prometheus counter and structlog/logging line, which
keep working) and records each scheduled retry from it; the tenacity adapter then skips that
retry, so it is counted once. A later `set_on_retry_hooks([...])` by the application that
drops obskit's hook is noticed: the tenacity adapter records those retries itself.

Hook factories (stamina's lazily built defaults) stay lazy: obskit's hook is added beside
them, not resolved early.
"""

from __future__ import annotations

from typing import Any, Final

from obskit.integrations import tenacity as tenacity_adapter
from obskit.runtime import errors, resilience

LIBRARY: Final = "stamina"
_installed: list[bool] = []  # [stamina had its defaults (None) before?] while installed


def on_retry(details: Any) -> None:
    """obskit's stamina retry hook: one scheduled retry (RetryDetails)."""
    try:
        call = tenacity_adapter.current.get()
        attempt = int(details.retry_num)
        if call is not None and call.stamina and not call.done:
            call.hooked = attempt  # the tenacity adapter must not count this one again
            operation = call.operation
        else:
            operation = str(details.name)
        resilience.retry_scheduled(operation, attempt, details.caused_by, details.wait_for)
    except Exception as exc:  # noqa: BLE001 - never into the user's call
        errors.record("stamina hook", exc)


def instrument() -> None:
    from stamina import _config  # noqa: PLC0415 - only once stamina itself is imported

    config = _config.CONFIG
    if _installed:
        return
    with config.lock:
        # The configured hooks, unresolved: None means stamina's defaults, which are
        # resolved on the first retry; keep them so (get_on_retry_hooks would build them now).
        configured = config._on_retry
    defaults = configured is None
    if configured is None:
        from stamina.instrumentation._hooks import get_default_hooks  # noqa: PLC0415

        configured = get_default_hooks()
    from stamina.instrumentation import set_on_retry_hooks  # noqa: PLC0415

    set_on_retry_hooks((*(h for h in configured if h is not on_retry), on_retry))
    _installed.append(defaults)


def uninstrument() -> None:
    if not _installed:
        return
    defaults = _installed.pop()
    from stamina import _config  # noqa: PLC0415
    from stamina.instrumentation import set_on_retry_hooks  # noqa: PLC0415

    config = _config.CONFIG
    with config.lock:
        configured = config._on_retry
    if configured is not None and on_retry in configured:  # else the application replaced them
        rest = tuple(h for h in configured if h is not on_retry)
        set_on_retry_hooks(None if defaults else rest)
