"""System-wide figures kept in Redis: when the stack started (for uptime)."""
from __future__ import annotations

import time

from workflows_app.circuit import redis_client

STARTED_KEY = "nexus:system:started_at"


def mark_started() -> None:
    """Called when a worker starts; the first one since Redis began keeps its time."""
    redis_client().set(STARTED_KEY, time.time(), nx=True)


def uptime() -> float | None:
    try:
        started = redis_client().get(STARTED_KEY)
    except Exception:  # noqa: BLE001
        return None
    return round(time.time() - float(started), 1) if started else None
