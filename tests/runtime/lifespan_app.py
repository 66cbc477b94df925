"""An app for the SIGTERM test, served as `uvicorn tests.runtime.lifespan_app:create --factory`.

Spans are exported only every 60 s, so whatever reaches the receiver after SIGTERM was
flushed by the shutdown path.
"""

from __future__ import annotations

import os
from typing import Any

import obskit


def create() -> Any:
    from fastapi import FastAPI

    app = FastAPI()

    @app.get("/items/{item_id}")
    async def item(item_id: int) -> dict[str, int]:
        return {"item_id": item_id}

    stream = open(os.devnull, "wb")  # noqa: SIM115 - lives as long as the process
    obskit.init(app, service="lifespan", log_stream=stream, span_export_interval=60)
    return app
