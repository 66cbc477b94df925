"""Small FastAPI, Starlette and Flask apps used by the runtime tests."""

from __future__ import annotations

from typing import Any

from fastapi import BackgroundTasks

import obskit


def fastapi_app() -> Any:
    from fastapi import FastAPI, HTTPException

    app = FastAPI()
    log = obskit.get_logger("shop")

    @app.get("/orders/{order_id}")
    async def order(order_id: str) -> dict[str, Any]:
        log.info("order looked up", order_id=order_id)
        return {"order_id": order_id, "correlation_id": obskit.correlation_id()}

    @app.get("/sync/{item}")
    def sync_item(item: str) -> dict[str, Any]:
        log.info("sync handler", item=item)
        return {"item": item, "correlation_id": obskit.correlation_id()}

    @app.get("/missing")
    async def missing() -> None:
        raise HTTPException(status_code=404)

    @app.get("/boom")
    async def boom() -> None:
        raise RuntimeError("kaboom")

    @app.get("/health")
    async def health() -> dict[str, str]:
        return {"status": "ok"}

    @app.post("/background")
    async def background(tasks: BackgroundTasks) -> dict[str, Any]:
        def later() -> None:
            log.info("background task ran", seen=obskit.correlation_id())

        tasks.add_task(later)
        return {"correlation_id": obskit.correlation_id()}

    return app


def flask_app() -> Any:
    from flask import Flask, jsonify

    app = Flask("payments")
    log = obskit.get_logger("payments")

    @app.get("/refunds/<int:refund_id>")
    def refund(refund_id: int) -> Any:
        log.info("refund looked up", refund_id=refund_id)
        return jsonify(refund_id=refund_id, correlation_id=obskit.correlation_id())

    @app.get("/boom")
    def boom() -> Any:
        raise RuntimeError("kaboom")

    @app.get("/health")
    def health() -> Any:
        return jsonify(status="ok")

    return app
