"""The dashboard's figures, every time the page polls (nothing cached, nothing estimated): read
through ``selectors`` and ``operations`` (the same reads every face uses), never the ORM here."""
from __future__ import annotations

from datetime import datetime, timedelta

import redis
from django.conf import settings
from django.urls import reverse
from django.utils import timezone

from workflows_app import operations, selectors
from workflows_app.registry import registry


def step_durations(since: datetime, limit: int = 15) -> list[dict]:
    performance = selectors.all_steps_performance(since)
    rows = [{"step": name, **figures} for name, figures in performance.items()]
    rows.sort(key=lambda r: -r["avg_time"])
    return rows[:limit]


def _broker_depths() -> list[dict]:
    """Messages waiting in each Celery queue (Redis lists, one per priority step)."""
    try:
        client = redis.Redis.from_url(settings.CELERY_BROKER_URL, socket_timeout=1)
        options = settings.CELERY_BROKER_TRANSPORT_OPTIONS
        lengths = selectors.broker_queue_lengths(list(settings.NEXUS_QUEUES), options.get("priority_steps", [0]),
                                                 options.get("sep", ":"), client)
        return [{"name": name, "kind": "celery", "messages_available": n, "messages_in_flight": None}
                for name, n in lengths.items()]
    except Exception as exc:  # noqa: BLE001 - the broker being down is itself a figure to show
        return [{"name": "broker", "kind": "celery", "error": str(exc)[:200]}]


def queue_depths() -> dict:
    queues = _broker_depths()
    named_error = None
    status = getattr(operations, "workflow_queue_status", None)
    if status is not None:
        try:
            reply = status(user=None)
            for q in reply.get("queues", []):
                queues.append({"name": q.get("name"), "kind": "named",
                               "messages_available": q.get("messages_available"),
                               "messages_in_flight": q.get("messages_in_flight"),
                               "oldest_message_age": q.get("oldest_message_age")})
        except Exception as exc:  # noqa: BLE001
            named_error = str(exc)[:200]
    return {"queues": queues, "error": named_error}


def dead_letters() -> dict:
    return selectors.dead_letter_summary()


def recent_executions(limit: int = 12) -> list[dict]:
    rows = selectors.recent_executions(limit)
    for row in rows:
        pk = row.pop("pk")
        row["url"] = reverse("execution-view", args=[pk])
        row["admin_url"] = reverse("admin:workflows_app_execution_change", args=[pk])
    return rows


def panels(since: datetime) -> list[dict]:
    out = []
    for name, fn in registry.dashboard_panels.items():
        try:
            panel = dict(fn(since) or {})
            panel.setdefault("title", name)
            panel["name"] = name
        except Exception as exc:  # noqa: BLE001 - one broken panel must not hide the dashboard
            panel = {"name": name, "title": name, "error": str(exc)[:200]}
        out.append(panel)
    return out


def dashboard_data(hours: int = 24) -> dict:
    now = timezone.now()
    since = now - timedelta(hours=hours)
    return {
        "generated_at": selectors.iso(now),
        "window_hours": hours,
        "summary": selectors.summary_figures(since),
        "executions_per_hour": selectors.executions_per_hour(since, now),
        "latency": selectors.latency_per_hour(since, now),
        "step_durations": step_durations(since),
        "queues": queue_depths(),
        "dead_letters": dead_letters(),
        "recent_executions": recent_executions(),
        "panels": panels(since),
    }
