"""WSGI entry point: the one obskit line goes right after get_wsgi_application()."""

import os

from django.core.wsgi import get_wsgi_application

import obskit

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "tests.integrations.djproject.settings")
application = get_wsgi_application()
obskit.init(application, service="djproject")
