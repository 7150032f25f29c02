"""The beat scheduler: django-celery-beat's DatabaseScheduler guarded by a Redis lock.

Exactly one beat may fire schedules. A second beat started by mistake (or on purpose, as a
stand-by) ticks but fires nothing until the first one's lock expires, then takes over.

Beat outlives Redis: when Redis cannot be reached a tick logs it, records the beat as
``degraded`` and comes back after a growing delay (1 s doubling to 10 s) instead of raising
(which ended the beat process). When Redis answers again the lock is taken back (or the beat
stays on stand-by if another one took it meanwhile). Liveness is kept in the database
(``ProcessHeartbeat``), so /health/ can tell "beat is down" from "beat cannot reach Redis".

Housekeeping entries (the plugins' beat jobs, put into Celery's ``beat_schedule`` at start by
``install_jobs``) expire after one period: a message that waited longer than that is superseded
by the next one and dropped by the worker, so a backlog never makes them pile up.
"""
from __future__ import annotations

import logging
import os
import random
import socket
import time
import uuid
from collections.abc import Mapping
from datetime import timedelta

import redis
from celery import current_app, schedules
from django.conf import settings
from django.db import DatabaseError, connection
from django.utils import timezone
from django_celery_beat.schedulers import DatabaseScheduler
from redis.exceptions import RedisError

from workflows_app import conf
from workflows_app.models import ProcessHeartbeat
from workflows_app.registry import BeatJob
from workflows_app.services.availability import sample_quietly
from workflows_app.services.triggers.calendar_entries import CalendarEntry

log = logging.getLogger(__name__)
LOCK_KEY = "nexus:beat:lock"
HEARTBEAT_EVERY = 5.0  # seconds between heartbeat rows written while nothing changes
BACKOFF_MAX = 10.0  # a retry costs one connection attempt: come back quickly once Redis does
# Refresh the lock only if we still own it.
_REFRESH = "if redis.call('get', KEYS[1]) == ARGV[1] then return redis.call('expire', KEYS[1], ARGV[2]) else return 0 end"


_client: redis.Redis | None = None


def redis_client() -> redis.Redis:
    """Beat's own client, with timeouts: a Redis that hangs must not hang the beat loop."""
    global _client
    if _client is None:
        _client = redis.Redis.from_url(settings.REDIS_URL, decode_responses=True, socket_timeout=5,
                                       socket_connect_timeout=5)
    return _client


def lock_ttl() -> int:
    """Seconds the lock lives unrefreshed: a stand-by beat takes over within this."""
    return int(conf.get("NEXUS_BEAT_LOCK_TTL"))


def install_jobs(jobs: Mapping[str, BeatJob]) -> None:
    """Put the plugins' beat jobs into Celery's beat_schedule (an entry settings define wins)."""

    schedule = current_app.conf.beat_schedule
    if schedule is None:
        current_app.conf.beat_schedule = schedule = {}
    for name, job in jobs.items():
        schedule.setdefault(name, job.entry())


def acquire_or_refresh(token: str, ttl: int | None = None) -> bool:
    ttl = ttl or lock_ttl()
    client = redis_client()
    if client.set(LOCK_KEY, token, nx=True, ex=ttl):
        return True
    return bool(client.eval(_REFRESH, 1, LOCK_KEY, token, ttl))


def _period(schedule) -> float | None:
    """Seconds between runs for an interval schedule (a number, timedelta or celery schedule)."""
    if isinstance(schedule, (int, float)):
        return float(schedule)
    if isinstance(schedule, timedelta):
        return schedule.total_seconds()
    if type(schedule) is schedules.schedule:
        return schedule.run_every.total_seconds()
    return None  # crontab, solar...: not housekeeping, left alone


def with_default_expiry(mapping: dict) -> dict:
    """Give every interval entry without an expiry one of about its own period (at least 5 s)."""
    out = {}
    for name, entry in mapping.items():
        entry = dict(entry)
        options = dict(entry.get("options") or {})
        period = _period(entry.get("schedule"))
        if period and not options.get("expire_seconds"):
            # django-celery-beat stores `expire_seconds` (it drops a plain `expires` option)
            options["expire_seconds"] = int(max(5.0, options.pop("expires", None) or period))
        entry["options"] = options
        out[name] = entry
    return out


class NexusScheduler(DatabaseScheduler):
    Entry = CalendarEntry  # schedule triggers run on their calendar's firings (market_calendar)

    def __init__(self, *args, **kwargs):
        self.lock_token = f"{uuid.uuid4()}"
        self._was_leader = None
        self._redis_failures = 0
        self._heartbeat_state = None
        self._heartbeat_at = 0.0
        self.process_name = f"beat:{socket.gethostname()}:{os.getpid()}:{self.lock_token[:8]}"
        super().__init__(*args, **kwargs)

    def update_from_dict(self, mapping):
        return super().update_from_dict(with_default_expiry(mapping))

    def tick(self, *args, **kwargs):
        try:
            leader = acquire_or_refresh(self.lock_token)
        except RedisError as exc:
            return self._redis_unreachable(exc)
        if self._redis_failures:
            log.warning("beat %s: Redis answers again after %d failed attempts", self.lock_token[:8],
                        self._redis_failures)
            self._redis_failures = 0
            self._was_leader = None
        if leader != self._was_leader:
            log.warning("beat %s: %s", self.lock_token[:8], "active" if leader else "stand-by (another beat holds the lock)")
            self._was_leader = leader
        if not leader:
            self.heartbeat("standby", "another beat holds the lock")
            return min(self.max_interval, 5)
        self.heartbeat("active")
        try:
            return min(super().tick(*args, **kwargs), lock_ttl() / 3)
        except DatabaseError as exc:  # the schedule lives in the database: wait for it, do not die
            log.error("beat %s: cannot read the schedule (%s); retrying in 5 s", self.lock_token[:8], exc)
            connection.close()  # a broken connection is replaced on the next query
            return 5.0

    def apply_async(self, entry, producer=None, advance=True, **kwargs):
        """A schedule trigger's entry sends one ``fire_schedule`` per firing due (its catch-up
        policy), each with the firing's own time; other entries are sent as usual."""
        if getattr(entry, "trigger", None) is None:
            return super().apply_async(entry, producer, advance, **kwargs)
        result = None
        for at in entry.firings_due(entry._default_now()):
            one = object.__new__(type(entry))  # the same entry, its own args (ScheduleEntry's __reduce__ rebuilds)
            one.__dict__.update(entry.__dict__)
            one.args = [entry.args[0], at.isoformat()]
            result = super().apply_async(one, producer, advance, **kwargs)
        return result

    def _redis_unreachable(self, exc: Exception) -> float:
        self._redis_failures += 1
        delay = min(BACKOFF_MAX, 2.0 ** (self._redis_failures - 1)) * random.uniform(0.8, 1.0)
        if self._redis_failures == 1 or self._redis_failures % 10 == 0:
            log.error("beat %s: cannot reach Redis (%s: %s); not firing schedules, retrying (attempt %d, next in %.1f s)",
                      self.lock_token[:8], type(exc).__name__, exc, self._redis_failures, delay)
        self.heartbeat("degraded", f"cannot reach Redis: {type(exc).__name__}: {exc}"[:500])
        return delay

    def heartbeat(self, state: str, detail: str = "") -> None:
        """Record this beat's liveness in the database (at most every few seconds unless it changes)."""
        now = time.monotonic()
        if state == self._heartbeat_state and now - self._heartbeat_at < HEARTBEAT_EVERY:
            return
        try:
            if self._heartbeat_state is None:  # first beat: forget beats that died long ago
                ProcessHeartbeat.objects.filter(role="beat", last_seen__lt=timezone.now() - timedelta(hours=1)).delete()
            ProcessHeartbeat.objects.update_or_create(name=self.process_name, defaults={
                "role": "beat", "host": socket.gethostname(), "pid": os.getpid(), "last_seen": timezone.now(),
                "state": state, "detail": detail})
        except DatabaseError as exc:  # the database is down too: beat keeps going, health will say so
            log.warning("beat %s: cannot record its heartbeat: %s", self.lock_token[:8], exc)
            return
        self._heartbeat_state, self._heartbeat_at = state, now
        sample_quietly()  # availability: about every NEXUS_AVAILABILITY_SAMPLE_EVERY s, by whichever beat ticks

    def close(self):
        try:
            client = redis_client()
            if client.get(LOCK_KEY) == self.lock_token:
                client.delete(LOCK_KEY)
        except RedisError:
            pass  # the lock expires on its own
        finally:
            try:
                ProcessHeartbeat.objects.filter(name=self.process_name).delete()
            except DatabaseError:
                pass
            super().close()
