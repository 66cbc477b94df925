"""The worker's fault knob, kept in Redis so every pool process sees it (no Celery import)."""

from __future__ import annotations

import json
from typing import Any

import redis

FAULTS_KEY = "example:faults:worker"


def read_faults(client: redis.Redis) -> dict[str, Any]:
    raw = client.get(FAULTS_KEY)
    settings: dict[str, Any] = json.loads(raw) if raw else {}
    return {"error_rate": float(settings.get("error_rate", 0.0))}


def set_faults(redis_url: str, *, error_rate: float = 0.0) -> dict[str, Any]:
    """Set the share of tasks that fail for good; every worker process reads it per task."""
    if isinstance(error_rate, bool) or not 0.0 <= float(error_rate) <= 1.0:
        raise ValueError("error_rate must be between 0 and 1")
    client = redis.Redis.from_url(redis_url)
    try:
        client.set(FAULTS_KEY, json.dumps({"error_rate": float(error_rate)}))
        return read_faults(client)
    finally:
        client.close()
