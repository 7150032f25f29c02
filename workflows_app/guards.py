"""Durable duplicate guards (the ``Guard`` table): claim ``(scope, key)`` for ``ttl`` seconds.

A claim is one INSERT (``ON CONFLICT DO NOTHING``); on a conflict it takes the row over only if it
has expired (one conditional UPDATE, so of two claimers of an expired guard exactly one wins). Inside a caller's
transaction the claim commits or rolls back with it: a firing that fails releases its claims.

Scopes in use: ``queue:<name>`` (deduplication ids within the queue's window), ``webhook-seen:<source>``
(signatures already used), ``schedule`` (a trigger's wall-clock minute fired), ``trigger-fired``
(a trigger fired for an event id), ``trigger-cooldown`` (a trigger's cooldown).
"""
from __future__ import annotations

import hashlib
from datetime import datetime, timedelta

from django.db import IntegrityError, connection, transaction
from django.utils import timezone

from workflows_app.models import Guard

KEY_MAX = 255


def schedule_key(workflow_id, trigger_id, wall: str) -> str:
    """Scope ``schedule``: the durable record that a schedule trigger fired at a local wall-clock minute."""
    return f"{workflow_id}:{trigger_id}:{wall}"


def _key(key: str) -> str:
    key = str(key)
    if len(key) <= KEY_MAX:
        return key
    return "sha256:" + hashlib.sha256(key.encode()).hexdigest()  # long ids: a digest, still unique


def _insert(scope: str, key: str, value: str, expires: datetime, now: datetime) -> bool:
    """One INSERT ... ON CONFLICT DO NOTHING (PostgreSQL, SQLite): no savepoint round trips on the
    event path. A conflicting insert not yet committed by another transaction is waited for."""
    if connection.vendor not in ("postgresql", "sqlite"):
        try:
            with transaction.atomic():  # a savepoint: the conflict must not poison the caller's transaction
                Guard.objects.create(scope=scope, key=key, value=value, expires_at=expires, created_at=now)
            return True
        except IntegrityError:
            return False
    qn, ops = connection.ops.quote_name, connection.ops
    sql = (f"INSERT INTO {qn(Guard._meta.db_table)} (scope, {qn('key')}, value, expires_at, created_at) "
           f"VALUES (%s, %s, %s, %s, %s) ON CONFLICT (scope, {qn('key')}) DO NOTHING")
    with connection.cursor() as cursor:
        cursor.execute(sql, [scope, key, value, ops.adapt_datetimefield_value(expires),
                             ops.adapt_datetimefield_value(now)])
        return cursor.rowcount == 1


def claim(scope: str, key: str, ttl: float, *, value: str = "", now: datetime | None = None) -> bool:
    """True when this caller now holds the guard (it was free or expired); False when it is held."""
    now = now or timezone.now()
    expires = now + timedelta(seconds=max(float(ttl), 0.001))
    key, value = _key(key), str(value)[:255]
    if _insert(scope, key, value, expires, now):
        return True
    taken = Guard.objects.filter(scope=scope, key=key, expires_at__lte=now).update(
        value=value, expires_at=expires, created_at=now)
    return taken == 1


def holder(scope: str, key: str, *, now: datetime | None = None) -> Guard | None:
    """The live guard on (scope, key), if any."""
    return Guard.objects.filter(scope=scope, key=_key(key), expires_at__gt=now or timezone.now()).first()


def held(scope: str, key: str, *, now: datetime | None = None) -> bool:
    return holder(scope, key, now=now) is not None


def release(scope: str, key: str) -> int:
    return Guard.objects.filter(scope=scope, key=_key(key)).delete()[0]


def prune(now: datetime | None = None, limit: int = 10_000) -> int:
    """Delete expired guards (retention); bounded per call so a sweep stays short."""
    ids = list(Guard.objects.filter(expires_at__lte=now or timezone.now()).values_list("pk", flat=True)[:limit])
    return Guard.objects.filter(pk__in=ids).delete()[0] if ids else 0
