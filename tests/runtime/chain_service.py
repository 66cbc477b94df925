"""A service for the two-service chain test, run as `python -m tests.runtime.chain_service`.

CHAIN_ROLE=front: FastAPI under uvicorn; GET /checkout/{cart_id} calls the back service with
httpx (async) and requests. CHAIN_ROLE=back: Flask under werkzeug; GET /charge/{cart_id}.
Logs go to CHAIN_LOG (a file), spans to OTEL_EXPORTER_OTLP_ENDPOINT. Prints the URL.
"""

from __future__ import annotations

import os
import socket
import sys
from typing import Any

import obskit


def front() -> Any:
    import httpx
    import requests
    from fastapi import FastAPI

    app = FastAPI()
    log = obskit.get_logger("front")
    back = os.environ["CHAIN_NEXT"]

    @app.get("/checkout/{cart_id}")
    async def checkout(cart_id: str) -> dict[str, Any]:
        log.info("checkout started", cart_id=cart_id)
        async with httpx.AsyncClient() as client:
            first = (await client.get(f"{back}/charge/{cart_id}")).json()
        second = requests.get(f"{back}/charge/{cart_id}", timeout=10).json()
        return {"first": first, "second": second, "mine": obskit.correlation_id()}

    return app


def back() -> Any:
    from flask import Flask, jsonify, request

    app = Flask("back")
    log = obskit.get_logger("back")

    @app.get("/charge/<cart_id>")
    def charge(cart_id: str) -> Any:
        log.info("charging", cart_id=cart_id)
        return jsonify(
            correlation_id=obskit.correlation_id(),
            traceparent=request.headers.get("traceparent"),
            baggage=request.headers.get("baggage"),
        )

    return app


def main() -> None:
    role = os.environ["CHAIN_ROLE"]
    app = front() if role == "front" else back()
    stream = open(os.environ["CHAIN_LOG"], "ab")  # noqa: SIM115 - lives as long as the process
    obskit.init(app, service=role, log_stream=stream, span_export_interval=0.05)
    # Print the URL only once the socket listens: a client may connect the moment it reads it.
    if role == "front":
        import uvicorn

        sock = socket.socket()
        sock.bind(("127.0.0.1", 0))
        sock.listen(128)
        print(f"listening on http://127.0.0.1:{sock.getsockname()[1]}", flush=True)
        config = uvicorn.Config(app, log_config=None, lifespan="off")
        uvicorn.Server(config).run(sockets=[sock])
    else:
        from werkzeug.serving import make_server

        server = make_server("127.0.0.1", 0, app, threaded=True)
        print(f"listening on http://127.0.0.1:{server.port}", flush=True)
        server.serve_forever()
    sys.exit(0)


if __name__ == "__main__":
    main()
