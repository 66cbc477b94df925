"""Run an example service on 127.0.0.1: `python -m examples.shop --port 0 --port-file F`.

The socket is bound here (port 0 = any free port) and the chosen port written to --port-file,
so the supervisor never races another process for a port. ASGI apps run under uvicorn, WSGI
apps under werkzeug's threaded server. SIGTERM shuts down cleanly, so obskit flushes its spans.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import os
import signal
import socket
import sys
from pathlib import Path
from typing import Any


def _bind(host: str, port: int) -> socket.socket:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host, port))
    sock.listen(128)
    return sock


def _announce(port_file: Path | None, port: int) -> None:
    if port_file is not None:
        tmp = port_file.with_suffix(".tmp")
        tmp.write_text(f"{port}\n")
        os.replace(tmp, port_file)


def _serve_asgi(app: Any, sock: socket.socket) -> None:
    import uvicorn  # noqa: PLC0415 - only the ASGI service needs it

    config = uvicorn.Config(app, log_config=None, access_log=False, lifespan="on")
    uvicorn.Server(config).run(sockets=[sock])


def _serve_wsgi(app: Any, sock: socket.socket) -> None:
    from werkzeug.serving import make_server  # noqa: PLC0415 - only the WSGI service

    logging.getLogger("werkzeug").setLevel(logging.WARNING)  # obskit writes the access log
    host, port = sock.getsockname()[:2]
    server = make_server(host, port, app, threaded=True, fd=sock.fileno())

    def _stop(signum: int, frame: object) -> None:
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, _stop)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()


def main(module: str, kind: str, argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog=f"python -m {module.rsplit('.', 1)[0]}")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--port-file", type=Path)
    args = parser.parse_args(argv)
    sock = _bind(args.host, args.port)
    app = importlib.import_module(module).app
    _announce(args.port_file, sock.getsockname()[1])
    if kind == "asgi":
        _serve_asgi(app, sock)
    else:
        _serve_wsgi(app, sock)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1], sys.argv[2], sys.argv[3:]))
