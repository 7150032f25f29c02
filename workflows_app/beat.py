"""The beat scheduler: django-celery-beat's DatabaseScheduler guarded by a Redis lock.

Exactly one beat may fire schedules. A second beat started by mistake stays on stand-by
(it ticks but fires nothing) until the first one's lock expires. Every tick of the active
beat is recorded for /health/.
"""
from __future__ import annotations

import logging
import time
import uuid

from django_celery_beat.schedulers import DatabaseScheduler

from workflows_app.circuit import redis_client

log = logging.getLogger(__name__)
LOCK_KEY = "nexus:beat:lock"
TICK_KEY = "nexus:beat:last_tick"
LOCK_TTL = 30
# Refresh the lock only if we still own it.
_REFRESH = "if redis.call('get', KEYS[1]) == ARGV[1] then return redis.call('expire', KEYS[1], ARGV[2]) else return 0 end"


def acquire_or_refresh(token: str, ttl: int = LOCK_TTL) -> bool:
    client = redis_client()
    if client.set(LOCK_KEY, token, nx=True, ex=ttl):
        return True
    return bool(client.eval(_REFRESH, 1, LOCK_KEY, token, ttl))


def last_tick() -> float | None:
    value = redis_client().get(TICK_KEY)
    return float(value) if value else None


class NexusScheduler(DatabaseScheduler):
    def __init__(self, *args, **kwargs):
        self.lock_token = f"{uuid.uuid4()}"
        self._was_leader = None
        super().__init__(*args, **kwargs)

    def tick(self, *args, **kwargs):
        leader = acquire_or_refresh(self.lock_token)
        if leader != self._was_leader:
            log.warning("beat %s: %s", self.lock_token[:8], "active" if leader else "stand-by (another beat holds the lock)")
            self._was_leader = leader
        if not leader:
            return min(self.max_interval, 5)
        redis_client().set(TICK_KEY, time.time(), ex=3600)
        return min(super().tick(*args, **kwargs), LOCK_TTL / 3)

    def close(self):
        try:
            client = redis_client()
            if client.get(LOCK_KEY) == self.lock_token:
                client.delete(LOCK_KEY)
        finally:
            super().close()
