"""ASGI entry point (`gunicorn -k uvicorn_worker.UvicornWorker examples.inventory.asgi`)."""

from __future__ import annotations

import os

from django.core.asgi import get_asgi_application

import obskit

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "examples.inventory.settings")
application = get_asgi_application()
obskit.init(application, service="inventory", version="1.0.0")
