"""Settings of the test project: DEBUG off (Django's own 404/500 pages), LOGGING with levels."""

import os

SECRET_KEY = "tests-only"
DEBUG = os.environ.get("DJPROJECT_DEBUG") == "1"
ALLOWED_HOSTS = ["*"]
ROOT_URLCONF = "tests.integrations.djproject.urls"
INSTALLED_APPS: list[str] = []
MIDDLEWARE = ["django.middleware.common.CommonMiddleware"]
USE_TZ = True
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"plain": {"format": "PLAIN %(name)s %(message)s"}},
    "handlers": {
        "console": {"class": "logging.StreamHandler", "formatter": "plain"},
        "warnings_only": {"class": "logging.StreamHandler", "level": "WARNING"},
    },
    "loggers": {
        "djproject": {"handlers": ["console"], "level": "INFO", "propagate": False},
        "djproject.quiet": {"level": "WARNING"},
        "djproject.picky": {"handlers": ["warnings_only"], "level": "DEBUG", "propagate": False},
    },
}
