"""The application every variant serves: one FastAPI route with a path parameter.

Each variant builds a fresh app from here and adds its own instrumentation, so the
only difference between two variants is the instrumentation itself.
"""

from __future__ import annotations

from typing import Any

ROUTE_TEMPLATE = "/items/{item_id}"
"""The route template; the raw paths are /items/0 ... /items/999."""

DISTINCT_IDS = 1000


def item_path(i: int) -> str:
    """The raw path of the i-th request (bounded set of distinct paths)."""
    return f"/items/{i % DISTINCT_IDS}"


def create_app() -> Any:
    """A FastAPI app with the benchmark route, exactly as a user writes it.

    FastAPI's own OpenTelemetry support is left at its defaults on purpose: it
    switches on as soon as a global TracerProvider exists, and what that costs is
    part of what each instrumented variant costs a user.
    """
    from fastapi import FastAPI

    app = FastAPI()

    @app.get(ROUTE_TEMPLATE)
    async def get_item(item_id: int) -> dict[str, Any]:
        return {"item_id": item_id, "name": "widget", "price": 9.5}

    return app
