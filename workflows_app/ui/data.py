"""The dashboard's figures: read from the database, the broker and the registered panels, every
time the page polls (nothing cached, nothing estimated)."""
from __future__ import annotations

from datetime import UTC, datetime, timedelta

from django.conf import settings
from django.db.models import Count
from django.urls import reverse
from django.utils import timezone

from workflows_app import operations, selectors
from workflows_app.models import DeadLetter, Execution, StepRun
from workflows_app.registry import registry


def _hours(since: datetime, now: datetime) -> list[datetime]:
    start = _hour(since)
    hours = []
    while start <= now:
        hours.append(start)
        start += timedelta(hours=1)
    return hours


def _hour(value: datetime) -> datetime:
    return value.astimezone(UTC).replace(minute=0, second=0, microsecond=0)


def executions_per_hour(since: datetime, now: datetime) -> dict:
    counts: dict[tuple, int] = {}
    for queued_at, status in Execution.objects.filter(queued_at__gte=since).values_list("queued_at", "status"):
        key = (_hour(queued_at), status)
        counts[key] = counts.get(key, 0) + 1
    hours = _hours(since, now)
    statuses = [s for s in Execution.Status.values if any(k[1] == s for k in counts)]
    return {
        "hours": [selectors.iso(h) for h in hours],
        "statuses": statuses,
        "series": {s: [counts.get((h, s), 0) for h in hours] for s in statuses},
    }


def latency_per_hour(since: datetime, now: datetime) -> dict:
    finished = Execution.objects.filter(finished_at__gte=since, started_at__isnull=False).exclude(
        status=Execution.Status.CANCELLED).values_list("finished_at", "started_at")
    buckets: dict[datetime, list[float]] = {}
    for finished_at, started_at in finished:
        hour = _hour(finished_at)
        buckets.setdefault(hour, []).append((finished_at - started_at).total_seconds())
    hours = _hours(since, now)
    p50, p99 = [], []
    for hour in hours:
        durations = sorted(buckets.get(hour, []))
        p50.append(selectors.percentile(durations, 0.5) if durations else None)
        p99.append(selectors.percentile(durations, 0.99) if durations else None)
    return {"hours": [selectors.iso(h) for h in hours], "p50": p50, "p99": p99}


def step_durations(since: datetime, limit: int = 15) -> list[dict]:
    performance = selectors.steps_performance(StepRun.objects.all(), since)
    rows = [{"step": name, **figures} for name, figures in performance.items()]
    rows.sort(key=lambda r: -r["avg_time"])
    return rows[:limit]


def _broker_depths() -> list[dict]:
    """Messages waiting in each Celery queue (Redis lists, one per priority step)."""
    try:
        import redis

        client = redis.Redis.from_url(settings.CELERY_BROKER_URL, socket_timeout=1)
        depths = []
        sep = settings.CELERY_BROKER_TRANSPORT_OPTIONS.get("sep", ":")
        steps = settings.CELERY_BROKER_TRANSPORT_OPTIONS.get("priority_steps", [0])
        with client.pipeline() as pipe:
            for name in settings.NEXUS_QUEUES:
                for step in steps:
                    pipe.llen(name if not step else f"{name}{sep}{step}")
            lengths = pipe.execute()
        per_queue = len(steps)
        for i, name in enumerate(settings.NEXUS_QUEUES):
            depths.append({"name": name, "kind": "celery", "messages_available": sum(lengths[i * per_queue:(i + 1) * per_queue]),
                           "messages_in_flight": None})
        return depths
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
    by_status = dict(DeadLetter.objects.values_list("status").annotate(n=Count("id")).values_list("status", "n"))
    by_class = dict(DeadLetter.objects.exclude(status__in=["redriven", "discarded"]).values_list("error_class")
                    .annotate(n=Count("id")).values_list("error_class", "n"))
    recent = [{"created_at": selectors.iso(d.created_at), "error_class": d.error_class, "status": d.status,
               "step": d.step_name or None, "queue": d.queue_name or None, "workflow": d.workflow.name if d.workflow else None}
              for d in DeadLetter.objects.select_related("workflow").order_by("-created_at")[:10]]
    return {"by_status": by_status, "by_error_class": by_class, "total": sum(by_status.values()), "recent": recent}


def recent_executions(limit: int = 12) -> list[dict]:
    rows = Execution.objects.select_related("workflow").order_by("-queued_at")[:limit]
    return [{"execution_id": str(e.id), "workflow": e.workflow.name, "status": e.status, "trigger": e.trigger,
             "current_step": e.current_step or None, "queued_at": selectors.iso(e.queued_at),
             "duration": e.duration, "url": reverse("admin:workflows_app_execution_change", args=[e.pk])}
            for e in rows]


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
    metrics = selectors.execution_metrics(Execution.objects.all(), since)
    running = Execution.objects.exclude(status__in=Execution.FINAL).count()
    return {
        "generated_at": selectors.iso(now),
        "window_hours": hours,
        "summary": {**metrics, "running": running},
        "executions_per_hour": executions_per_hour(since, now),
        "latency": latency_per_hour(since, now),
        "step_durations": step_durations(since),
        "queues": queue_depths(),
        "dead_letters": dead_letters(),
        "recent_executions": recent_executions(),
        "panels": panels(since),
    }
