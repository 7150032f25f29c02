"""/health/: is every part of the stack up? 200 when all are, 503 naming what is down."""
from __future__ import annotations

import time

from celery import current_app
from django.conf import settings
from django.db import connection
from django.http import JsonResponse
from django_celery_results.models import TaskResult

from workflows_app.circuit import redis_client
from workflows_app.models import ProcessHeartbeat
from workflows_app.registry import registry


def _check(fn):
    try:
        return fn()
    except Exception as exc:  # noqa: BLE001 - a health check reports, it does not raise
        return {"ok": False, "error": f"{type(exc).__name__}: {exc}"[:300]}


def _database():
    with connection.cursor() as cursor:
        cursor.execute("SELECT 1")
    return {"ok": True, "engine": connection.vendor}


def _broker():
    redis_client().ping()
    return {"ok": True, "source": settings.REDIS_SOURCE}


def _results():
    TaskResult.objects.order_by("-id").values_list("id", flat=True).first()
    return {"ok": True, "backend": settings.CELERY_RESULT_BACKEND}


def _workers():

    replies = current_app.control.ping(timeout=1.0) or []
    names = sorted(name for reply in replies for name in reply)
    return {"ok": bool(names), "seen": names, **({} if names else {"error": "no worker answered ping"})}


def _beat():
    """From the beats' heartbeats in the database (not Redis: a beat that cannot reach Redis says so)."""
    limit = max(60, settings.CELERY_BEAT_MAX_LOOP_INTERVAL * 6)
    now = time.time()
    beats = [{"name": b.name, "state": b.state, "age": round(now - b.last_seen.timestamp(), 1), "detail": b.detail}
             for b in ProcessHeartbeat.objects.filter(role="beat").order_by("-last_seen")[:10]]
    alive = [b for b in beats if b["age"] < limit]
    active = [b for b in alive if b["state"] == "active"]
    if active:
        return {"ok": True, "last_tick_age": active[0]["age"], "beats": alive}
    if not beats:
        return {"ok": False, "error": "beat has not ticked"}
    degraded = [b for b in alive if b["state"] == "degraded"]
    if degraded:
        error = f"beat is running but {degraded[0]['detail'] or 'degraded'}"
    elif alive:
        error = "no active beat (only stand-by beats, waiting for the lock)"
    else:
        error = "beat is silent"
    return {"ok": False, "error": error, "beats": alive or beats[:1]}


def health(request):
    parts = {
        "database": _check(_database),
        "broker": _check(_broker),
        "result_backend": _check(_results),
        "workers": _check(_workers),
        "beat": _check(_beat),
    }
    for name, fn in registry.health_checks.items():  # domain apps add theirs (e.g. trading mode)
        parts[name] = _check(fn)
    down = [name for name, part in parts.items() if not part.get("ok")]
    body = {"status": "ok" if not down else "degraded", "down": down, **parts}
    return JsonResponse(body, status=200 if not down else 503)
