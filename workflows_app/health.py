"""/health/: is every part of the stack up? 200 when all are, 503 naming what is down."""
from __future__ import annotations

import time

from django.conf import settings
from django.db import connection
from django.http import JsonResponse

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
    from workflows_app.circuit import redis_client

    redis_client().ping()
    return {"ok": True, "source": settings.REDIS_SOURCE}


def _results():
    from django_celery_results.models import TaskResult

    TaskResult.objects.order_by("-id").values_list("id", flat=True).first()
    return {"ok": True, "backend": settings.CELERY_RESULT_BACKEND}


def _workers():
    from nexus_project.celery import app

    replies = app.control.ping(timeout=1.0) or []
    names = sorted(name for reply in replies for name in reply)
    return {"ok": bool(names), "seen": names, **({} if names else {"error": "no worker answered ping"})}


def _beat():
    from workflows_app.beat import last_tick

    tick = last_tick()
    if tick is None:
        return {"ok": False, "error": "beat has not ticked"}
    age = time.time() - tick
    limit = max(60, settings.CELERY_BEAT_MAX_LOOP_INTERVAL * 6)
    return {"ok": age < limit, "last_tick_age": round(age, 1), **({} if age < limit else {"error": "beat is silent"})}


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
