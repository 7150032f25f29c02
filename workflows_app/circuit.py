"""Circuit breakers shared by every execution and worker, kept in Redis and backed by the database.

closed --(failure_threshold failures within timeout_duration)--> open
open --(reset_timeout elapsed)--> half_open: exactly one execution is let through as a trial
half_open --(trial succeeds)--> closed;  half_open --(trial fails)--> open again

Every transition (open / closed) is also written to ``CircuitState``. When Redis has no state for
a breaker (first use, or Redis restarted empty) the last transition is restored from there, so an
open breaker stays open (with its original ``opened_at``) across a Redis restart. What is not
restored: the failures counted towards the threshold in the current window and a half-open trial
in progress (a new trial is let through).
"""
from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

import redis
from django.conf import settings

from workflows_app.models import CircuitState

CLOSED, OPEN, HALF_OPEN = "closed", "open", "half_open"
_client: redis.Redis | None = None


def redis_client() -> redis.Redis:
    global _client
    if _client is None:
        _client = redis.Redis.from_url(settings.REDIS_URL, decode_responses=True)
    return _client


@dataclass
class CircuitBreaker:
    key: str
    failure_threshold: int = 5
    timeout_duration: float = 60.0
    reset_timeout: float = 300.0
    clock: Callable[[], float] = time.time
    client: redis.Redis | None = None

    @property
    def _redis(self) -> redis.Redis:
        return self.client or redis_client()

    @property
    def _state_key(self) -> str:
        return f"nexus:circuit:{self.key}"

    @property
    def _failures_key(self) -> str:
        return f"nexus:circuit:{self.key}:failures"

    def _load(self) -> dict:
        data = self._redis.hgetall(self._state_key)
        if data:
            return data
        row = CircuitState.objects.filter(key=self.key[:200]).values("state", "opened_at").first()
        data = {"state": row["state"], "opened_at": row["opened_at"]} if row else {"state": CLOSED, "opened_at": 0}
        self._redis.hset(self._state_key, mapping=data)  # restored: the next read is Redis only
        return {k: str(v) for k, v in data.items()}

    def _persist(self, state: str, opened_at: float) -> None:
        CircuitState.objects.update_or_create(key=self.key[:200], defaults={"state": state, "opened_at": opened_at})

    def snapshot(self) -> dict:
        data = self._load()
        state = data.get("state", CLOSED)
        opened_at = float(data.get("opened_at", 0) or 0)
        if state == OPEN and self.clock() - opened_at >= self.reset_timeout:
            state = HALF_OPEN
        now = self.clock()
        recent = self._redis.zcount(self._failures_key, now - self.timeout_duration, "+inf")
        return {"state": state, "opened_at": opened_at or None, "recent_failures": recent}

    def acquire(self, token: str) -> tuple[bool, dict]:
        """May this execution (token) pass? In half_open only the first asker gets the trial."""
        snap = self.snapshot()
        if snap["state"] == CLOSED:
            return True, snap
        if snap["state"] == HALF_OPEN:
            trial_key = f"{self._state_key}:trial"
            won = self._redis.set(trial_key, token, nx=True, ex=max(int(self.reset_timeout), 1))
            if won or self._redis.get(trial_key) == token:
                return True, {**snap, "trial": True}
        return False, snap

    def record_failure(self) -> str:
        now = self.clock()
        pipe = self._redis.pipeline()
        pipe.zadd(self._failures_key, {f"{now}:{time.monotonic_ns()}": now})
        pipe.zremrangebyscore(self._failures_key, "-inf", now - self.timeout_duration)
        pipe.zcard(self._failures_key)
        pipe.execute()
        state = self._load().get("state")
        failures = self._redis.zcard(self._failures_key)
        half_open_trial = self._redis.exists(f"{self._state_key}:trial")
        if (state or CLOSED) == CLOSED and failures >= self.failure_threshold or half_open_trial:
            self._open(now)
            return OPEN
        return self.snapshot()["state"]

    def record_success(self) -> str:
        """A success closes the circuit only when it is the half-open trial's."""
        if self._redis.exists(f"{self._state_key}:trial"):
            pipe = self._redis.pipeline()
            pipe.hset(self._state_key, mapping={"state": CLOSED, "opened_at": 0})
            pipe.delete(self._failures_key, f"{self._state_key}:trial")
            pipe.execute()
            self._persist(CLOSED, 0)
        return self.snapshot()["state"]

    def _open(self, now: float) -> None:
        pipe = self._redis.pipeline()
        pipe.hset(self._state_key, mapping={"state": OPEN, "opened_at": now})
        pipe.delete(self._failures_key, f"{self._state_key}:trial")
        pipe.execute()
        self._persist(OPEN, now)

    def reset(self) -> None:
        self._redis.delete(self._state_key, self._failures_key, f"{self._state_key}:trial")
        CircuitState.objects.filter(key=self.key[:200]).delete()
