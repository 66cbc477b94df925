"""ASGI and WSGI middleware and outbound client instrumentation (imported lazily by init)."""
