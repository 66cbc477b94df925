"""WSGI entry point (`gunicorn examples.inventory.wsgi`): the obskit line follows Django's."""

from __future__ import annotations

import os

from django.core.wsgi import get_wsgi_application

import obskit

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "examples.inventory.settings")
application = get_wsgi_application()
obskit.init(application, service="inventory", version="1.0.0")
