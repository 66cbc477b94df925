"""gunicorn config of the example: `gunicorn -c examples/inventory/gunicorn.conf.py
examples.inventory.wsgi`. obskit's line makes gunicorn's error log obskit JSON, flushes each
worker's spans when it exits, and clears a dead worker's live gauges (PROMETHEUS_MULTIPROC_DIR)."""

import os

from obskit.integrations.gunicorn import child_exit, logger_class, worker_exit  # noqa: F401

bind = os.environ.get("INVENTORY_BIND", "127.0.0.1:8002")
workers = int(os.environ.get("INVENTORY_WORKERS", "2"))
raw_env = ["OTEL_SERVICE_NAME=inventory"]  # names the master's log lines
