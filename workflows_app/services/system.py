"""System-wide figures measured from the live workers."""
from __future__ import annotations


def uptime(timeout: float = 0.5) -> float | None:
    """Seconds the longest-running live worker has been up (Celery's own `stats`), None if none answer."""
    from nexus_project.celery import app

    try:
        stats = app.control.inspect(timeout=timeout).stats() or {}
    except Exception:  # noqa: BLE001 - no broker: no figure, not a made-up one
        return None
    uptimes = [s.get("uptime") for s in stats.values() if isinstance(s.get("uptime"), int | float)]
    return float(max(uptimes)) if uptimes else None
