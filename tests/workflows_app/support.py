"""Test-only step types, registered in the engine's registry (imported by the worker too).

They keep their observable effects in Redis (the test database number), so a test can see
what a worker in another thread or process did.
"""
from __future__ import annotations

import time

import redis
from django.conf import settings
from pydantic import BaseModel, ConfigDict, Field

from workflows_app.errors import PermanentStepError, TransientStepError
from workflows_app.registry import RetryPolicy, StepContext, registry


def client() -> redis.Redis:
    return redis.Redis.from_url(settings.REDIS_URL, decode_responses=True)


class Params(BaseModel):
    model_config = ConfigDict(extra="forbid")
    value: object = None
    failures: int = Field(0, ge=0)
    error_class: str = "rate_limit"
    transient: bool = True
    sleep: float = Field(0, ge=0, le=60)
    tag: str = "t"


def noop(ctx: StepContext) -> dict:
    return {"ok": True, "step": ctx.step_name}


def echo(ctx: StepContext) -> dict:
    return {"value": ctx.params.value, "seen": sorted(k for k in ctx.context if not k.startswith("_"))}


def flaky(ctx: StepContext) -> dict:
    """Fail the first `failures` attempts with a transient error, then succeed."""
    calls = client().incr(f"test:flaky:{ctx.idempotency_key}")
    if calls <= ctx.params.failures:
        raise TransientStepError(f"flaky failure {calls}", error_class=ctx.params.error_class)
    return {"calls": calls}


def fail(ctx: StepContext) -> dict:
    client().incr(f"test:fail:{ctx.idempotency_key}")
    if ctx.params.transient:
        raise TransientStepError("always fails", error_class=ctx.params.error_class)
    raise PermanentStepError("refused", error_class=ctx.params.error_class)


def side_effect(ctx: StepContext) -> dict:
    """An external effect guarded by the step's idempotency key, then a slow tail."""
    r = client()
    r.rpush(f"test:attempts:{ctx.params.tag}", ctx.attempt)
    if r.set(f"test:effect-key:{ctx.idempotency_key}", 1, nx=True):
        r.incr(f"test:effects:{ctx.params.tag}")
    time.sleep(ctx.params.sleep)
    return {"effects": int(r.get(f"test:effects:{ctx.params.tag}") or 0)}


def sleeper(ctx: StepContext) -> dict:
    """Holds its worker slot for `sleep` s and touches nothing (a `wait` no longer holds one)."""
    time.sleep(ctx.params.sleep)
    return {"slept": ctx.params.sleep}


def record(ctx: StepContext) -> dict:
    client().rpush(f"test:order:{ctx.params.tag}", ctx.step_name)
    time.sleep(ctx.params.sleep)
    return {"recorded": ctx.step_name}


def hold(ctx: StepContext) -> dict:
    """Wait (up to `sleep` s) until the test pushes to test:release:<tag>: a step that runs exactly as
    long as the test needs it to, whatever the machine's speed."""
    deadline = time.monotonic() + (ctx.params.sleep or 60)
    while time.monotonic() < deadline:  # short waits: the client's socket timeout is a few seconds
        if client().blpop([f"test:release:{ctx.params.tag}"], timeout=1) is not None:
            return {"released": True}
    return {"released": False}


def undo(ctx: StepContext) -> dict:
    client().rpush(f"test:undo:{ctx.params.tag or 't'}", f"{ctx.step_name}:{(ctx.compensating or {}).get('recorded')}")
    return {"undone": ctx.step_name}


def _backend_pid() -> int:
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_backend_pid()")
        return cursor.fetchone()[0]


def _effect_once(ctx: StepContext) -> int:
    r = client()
    if r.set(f"test:effect-key:{ctx.idempotency_key}", 1, nx=True):
        r.incr(f"test:effects:{ctx.params.tag}")
    return int(r.get(f"test:effects:{ctx.params.tag}") or 0)


def pg_victim(ctx: StepContext) -> dict:
    """PostgreSQL only. First attempt: publish this worker's backend pid, then wait (up to `sleep` s)
    until the test has terminated that backend, so the step's completion meets a dead connection."""
    r = client()
    r.rpush(f"test:attempts:{ctx.params.tag}", ctx.attempt)
    if r.incr(f"test:pg-victim:{ctx.idempotency_key}") == 1:
        r.rpush(f"test:pg-pid:{ctx.params.tag}", _backend_pid())
        r.blpop([f"test:pg-killed:{ctx.params.tag}"], timeout=ctx.params.sleep)
    return {"effects": _effect_once(ctx)}


def pg_suicide(ctx: StepContext) -> dict:
    """PostgreSQL only. The first `failures` attempts terminate their own backend (the server hangs up
    on this worker), do the side effect and return: the step's completion meets a dead connection."""
    from django.db import Error

    r = client()
    r.rpush(f"test:attempts:{ctx.params.tag}", ctx.attempt)
    if r.incr(f"test:pg-suicide:{ctx.idempotency_key}") <= ctx.params.failures:
        from django.db import connection

        try:
            with connection.cursor() as cursor:
                cursor.execute("SELECT pg_terminate_backend(pg_backend_pid())")
        except Error:
            pass  # the server ended the connection, as asked
    return {"effects": _effect_once(ctx)}


def redis_probe(ctx: StepContext) -> dict:
    """Talks to the Redis server at `value` (a test's own redis-server): fails while that server is down."""
    other = redis.Redis.from_url(str(ctx.params.value), socket_connect_timeout=2, socket_timeout=2)
    return {"probes": other.incr(f"test:probe:{ctx.idempotency_key}"), "effects": _effect_once(ctx)}


FAST = RetryPolicy(max_retries=3, backoff=0.05, backoff_max=0.5, jitter=True)
for name, handler in [("test_noop", noop), ("test_echo", echo), ("test_flaky", flaky), ("test_fail", fail),
                      ("test_side_effect", side_effect), ("test_record", record), ("test_sleep", sleeper), ("test_hold", hold), ("test_undo", undo),
                      ("test_pg_victim", pg_victim), ("test_pg_suicide", pg_suicide), ("test_redis_probe", redis_probe)]:
    registry.register_step_type(name, handler, params_model=Params, retry=FAST, action=True)
