"""An app module for `python -m uvicorn tests.runtime.uvicorn_app:app` (the way users run it)."""

from __future__ import annotations

import logging

from fastapi import FastAPI

import obskit

app = FastAPI()
obskit.init(app, service="cli-app", traces_enabled=False)


@app.get("/hello/{name}")
async def hello(name: str) -> dict[str, str]:
    logging.getLogger("library").info("library says hi to %s", name)
    return {"hello": name}
