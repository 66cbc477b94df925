"""ASGI entry point: the one obskit line goes right after get_asgi_application()."""

import os

from django.core.asgi import get_asgi_application

import obskit

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "tests.integrations.djproject.settings")
application = get_asgi_application()
obskit.init(application, service="djproject")
