"""Adapters: one module per framework or library, translating its hooks into runtime signals.

Two kinds of adapter live here:
- **app adapters** wrap what `obskit.init(app)` is given: `asgi` (Starlette/FastAPI and any
  ASGI callable), `wsgi` (Flask and any WSGI callable) and `django` (the handler of
  `get_wsgi_application()` / `get_asgi_application()`, instrumented in place).
  `instrument_app()` picks one.
- **library adapters** hook a library the service imports: `httpx`, `requests` (outbound
  calls), `tenacity`, `stamina`, `backoff` (retries), `pybreaker`, `circuitbreaker`
  (breakers), `celery` (tasks). Each names its `LIBRARY` and has `instrument()` / `uninstrument()`.
  `instrument_libraries()` activates an adapter when its library is imported, before or after
  `init()`; a library that is not installed, or never imported, is never imported by obskit.
  An adapter that fails is counted in obskit_instrumentation_errors_total and logged once,
  never raised.

Adapters import their own library and `obskit.runtime`, never `obskit.generator`.
"""

from __future__ import annotations

import importlib
import importlib.util
import inspect
import sys
from collections.abc import Callable
from types import ModuleType
from typing import TYPE_CHECKING, Any, Final

from obskit.integrations import _hooks
from obskit.runtime import errors

if TYPE_CHECKING:
    from obskit.runtime.state import Obskit

LIBRARY_ADAPTERS: Final[dict[str, Callable[[Any], bool]]] = {
    "httpx": lambda config: bool(config.instrument_clients),
    "requests": lambda config: bool(config.instrument_clients),
    "tenacity": lambda config: True,
    "stamina": lambda config: True,
    "backoff": lambda config: True,
    "pybreaker": lambda config: True,
    "circuitbreaker": lambda config: True,
    "celery": lambda config: True,
}
"""Adapter module name -> whether the configuration wants it (the library's name is its LIBRARY)."""

_active: list[ModuleType] = []


def instrument_libraries(runtime: Obskit) -> list[str]:
    """Arrange for every wanted library adapter to activate when its library is imported.

    Returns the adapters whose library is already imported (activated now). The others wait
    for their library's import; `runtime.config.disabled_instrumentations` names adapters to
    leave alone.
    """
    config = runtime.config
    disabled = set(config.disabled_instrumentations)
    now: list[str] = []
    for name, wanted in LIBRARY_ADAPTERS.items():
        if name in disabled or not wanted(config):
            continue
        adapter = importlib.import_module(f"obskit.integrations.{name}")
        library: str = adapter.LIBRARY
        if importlib.util.find_spec(library) is None:
            continue  # not installed: nothing to wait for
        _hooks.when_imported(library, _activator(adapter))
        if adapter in _active:
            now.append(name)
    return now


def _activator(adapter: ModuleType) -> Callable[[ModuleType], None]:
    def activate(_library: ModuleType) -> None:
        try:
            adapter.instrument()
        except Exception as exc:  # noqa: BLE001 - a changed library must not break the service
            errors.record(f"{adapter.__name__} instrument", exc)
            return
        _active.append(adapter)

    return activate


def uninstrument_libraries() -> None:
    """Undo every activated adapter and forget the pending ones (reset)."""
    _hooks.clear()
    while _active:
        adapter = _active.pop()
        try:
            adapter.uninstrument()
        except Exception as exc:  # noqa: BLE001 - reset must finish
            errors.record(f"{adapter.__name__} uninstrument", exc)


def instrument_app(app: Any, runtime: Obskit) -> Any:
    """Instrument `app` in place when possible; returns what should be served."""
    from obskit.integrations.asgi import ObskitASGI, wrap_starlette  # noqa: PLC0415
    from obskit.integrations.wsgi import ObskitWSGI  # noqa: PLC0415

    if isinstance(app, (ObskitASGI, ObskitWSGI)) and app.rt is runtime:
        return app  # already obskit's wrapper for this handle
    if _is_django(app):
        from obskit.integrations import django  # noqa: PLC0415

        return django.instrument(app, runtime)
    if hasattr(app, "add_middleware") and hasattr(app, "router"):  # Starlette / FastAPI
        wrap_starlette(app, runtime)
        return app
    if hasattr(app, "wsgi_app") and callable(app.wsgi_app):  # Flask
        app.wsgi_app = ObskitWSGI(app.wsgi_app, runtime)
        return app
    if _is_asgi(app):
        return ObskitASGI(app, runtime)
    if callable(app):
        return ObskitWSGI(app, runtime)
    raise TypeError(
        f"obskit.init: cannot instrument {type(app).__name__}: "
        "expected a FastAPI/Starlette/Flask app or an ASGI/WSGI callable"
    )


def _is_django(app: Any) -> bool:
    """A Django WSGI/ASGI handler (Django is looked up only when something imported it)."""
    base = sys.modules.get("django.core.handlers.base")
    return base is not None and isinstance(app, base.BaseHandler)


def _is_asgi(app: Any) -> bool:
    if inspect.isfunction(app) or inspect.ismethod(app):
        return inspect.iscoroutinefunction(app)
    return inspect.iscoroutinefunction(type(app).__call__) if callable(app) else False


def is_worker_app(app: Any) -> bool:
    """True for an app whose `init()` waits for a worker to start in this process (Celery)."""
    from obskit.integrations.celery import is_celery_app  # noqa: PLC0415

    return is_celery_app(app)


def configure_worker(app: Any, settings: dict[str, Any]) -> Obskit | None:
    """`init(celery_app, ...)`: apply `settings` when a worker starts in this process."""
    from obskit.integrations import celery  # noqa: PLC0415

    return celery.configure_worker(app, settings)


def forget_workers() -> None:
    """Forget every `configure_worker` (reset)."""
    module = sys.modules.get("obskit.integrations.celery")
    if module is not None:
        module.reset()
