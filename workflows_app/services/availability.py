"""Availability: liveness heartbeats of the stack's processes, and samples of them kept in the database.

Every long-running process refreshes its own ``ProcessHeartbeat`` row: beat (workflows_app/beat.py),
each worker (on Celery's ``worker-heartbeat``, sent only while its consumer is connected to the
broker, see workflows_app/process_heartbeats.py) and each web process. Beat calls ``sample_if_due``
from its heartbeat, so a sample is taken about every ``NEXUS_AVAILABILITY_SAMPLE_EVERY`` seconds
whatever the backlog, and reads nothing from Redis (a Redis outage is seen, not suffered).

A sample is *available* when every role in ``NEXUS_AVAILABILITY_REQUIRES`` (default worker, beat,
web) was alive: a worker consuming the ``workflows`` queue (NEXUS_AVAILABILITY_WORK_QUEUE) whose heartbeat is younger than
``NEXUS_HEARTBEAT_STALE_AFTER``, an *active* beat (holds the lock; a stand-by or a beat that cannot
reach Redis does not count), a web process. selectors.availability turns the samples into the figure.
"""
from __future__ import annotations

import logging
import os
import socket
from datetime import datetime, timedelta

from django.conf import settings
from django.db import DatabaseError, close_old_connections
from django.utils import timezone

from workflows_app.models import AvailabilitySample, ProcessHeartbeat

log = logging.getLogger(__name__)
ROLES = ("worker", "beat", "web")


def sample_every() -> float:
    return float(settings.NEXUS_AVAILABILITY_SAMPLE_EVERY)


def stale_after() -> float:
    return float(settings.NEXUS_HEARTBEAT_STALE_AFTER)


def required() -> tuple[str, ...]:
    roles = tuple(settings.NEXUS_AVAILABILITY_REQUIRES)
    unknown = set(roles) - set(ROLES)
    if unknown or not roles:  # a typo must not silently make everything "available"
        raise ValueError(f"NEXUS_AVAILABILITY_REQUIRES must name some of {ROLES}, got {roles}")
    return roles


def record_heartbeat(*, name: str, role: str, state: str = "active", detail: str = "", queues=(),
                     now: datetime | None = None) -> None:
    ProcessHeartbeat.objects.update_or_create(name=name, defaults={
        "role": role, "host": socket.gethostname(), "pid": os.getpid(), "last_seen": now or timezone.now(),
        "state": state, "detail": detail[:500], "queues": sorted(queues)})


def forget_heartbeat(name: str) -> None:
    """A process that stops cleanly says so at once (a killed one goes stale after NEXUS_HEARTBEAT_STALE_AFTER)."""
    ProcessHeartbeat.objects.filter(name=name).delete()


def liveness(now: datetime | None = None) -> dict:
    """Which required processes are alive at `now`, from heartbeats no older than the stale limit."""
    now = now or timezone.now()
    fresh = ProcessHeartbeat.objects.filter(last_seen__gt=now - timedelta(seconds=stale_after()),
                                            last_seen__lte=now + timedelta(seconds=1), state="active")
    rows = list(fresh.values_list("role", "name", "queues"))
    queue = settings.NEXUS_AVAILABILITY_WORK_QUEUE  # runs workflow steps: a worker not consuming it runs no workflow
    workers = sorted(name for role, name, queues in rows if role == "worker" and queue in (queues or []))
    ok = {"worker": bool(workers), "beat": any(r == "beat" for r, *_ in rows),
          "web": any(r == "web" for r, *_ in rows)}
    down = [role for role in required() if not ok[role]]
    return {"available": not down, "workers_ok": ok["worker"], "beat_ok": ok["beat"], "web_ok": ok["web"],
            "workers": workers[:50], "down": down}


def take_sample(now: datetime | None = None) -> AvailabilitySample:
    now = now or timezone.now()
    return AvailabilitySample.objects.create(taken_at=now, **liveness(now))


def prune(now: datetime | None = None) -> int:
    cutoff = (now or timezone.now()) - timedelta(days=float(settings.NEXUS_AVAILABILITY_RETENTION_DAYS))
    deleted, _ = AvailabilitySample.objects.filter(taken_at__lt=cutoff).delete()
    return deleted


def sample_if_due(now: datetime | None = None) -> AvailabilitySample | None:
    """Take a sample unless one (by any beat, an active or a stand-by one) is younger than the period."""
    now = now or timezone.now()
    recent = now - timedelta(seconds=sample_every() * 0.9)  # 0.9: a tick a little early still samples
    if AvailabilitySample.objects.filter(taken_at__gt=recent, taken_at__lte=now).exists():
        return None
    sample = take_sample(now)
    if sample.pk % 360 == 0:  # about hourly at the default period: cheap enough, no clock of its own
        prune(now)
    return sample


def sample_quietly() -> None:
    """For beat: a database that cannot be written is an outage the gap in the samples will show."""
    try:
        sample_if_due()
    except DatabaseError as exc:
        log.warning("cannot record an availability sample: %s", exc)
        close_old_connections()  # a broken connection is replaced on the next query
