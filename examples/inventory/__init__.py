"""The example inventory service: Django under gunicorn, instrumented by one line in wsgi.py."""
