"""The example worker service: Celery tasks that charge orders through payments, idempotently."""
