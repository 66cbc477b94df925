from __future__ import annotations

from typing import Any

from obskit.model import Service
from obskit.render.templates import Templates


def dashboard(service: Service, templates: Templates) -> dict[str, Any]:
    return {"panels": []}


def expressions(d: dict[str, Any]) -> list[str]:
    return []
