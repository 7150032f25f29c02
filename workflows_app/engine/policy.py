"""Per-step settings read from the definition and the step type: retries, timeout, queue, priority;
and how durably a step's completion commits."""
from __future__ import annotations

import random

from django.conf import settings
from django.db import connection

from workflows_app.definitions import step_type_name
from workflows_app.registry import RetryPolicy, registry

HARD_LIMIT_SLACK = 10  # a step's hard time limit is its timeout plus this (its soft limit is the timeout)


def celery_priority(workflow_priority: int) -> int:
    """Workflow priority 0..10 (10 most urgent) -> Redis priority 0..9 (0 consumed first)."""
    return 9 - min(max(int(workflow_priority), 0), 9)


def backoff_delay(policy: RetryPolicy, retries_done: int) -> float:
    delay = min(policy.backoff * (2**retries_done), policy.backoff_max)
    if policy.jitter:
        delay = random.uniform(delay / 2, delay)  # "equal jitter": never zero, never above the cap
    return round(delay, 3)


def retry_policy(step: dict) -> RetryPolicy:
    step_type = registry.get_step_type(step_type_name(step))
    base = step_type.retry if step_type else RetryPolicy()
    override = step.get("retry") or {}
    return RetryPolicy(
        max_retries=override.get("max_retries", base.max_retries),
        backoff=override.get("backoff", base.backoff),
        backoff_max=override.get("backoff_max", base.backoff_max),
        jitter=override.get("jitter", base.jitter),
    )


def step_timeout(step: dict) -> int:
    step_type = registry.get_step_type(step_type_name(step))
    return int(step.get("timeout") or (step_type and step_type.timeout) or settings.NEXUS_STEP_DEFAULT_TIMEOUT)


def step_queue(workflow_queue: str, step: dict, agents: dict[str, str]) -> str:
    if step.get("agent") and step["agent"] in agents:
        return agents[step["agent"]]
    step_type = registry.get_step_type(step_type_name(step))
    if step_type and step_type.queue != "workflows":
        return step_type.queue
    return workflow_queue


def infrastructure_policy() -> RetryPolicy:
    """Backoff for database/Redis outages on a step's path: generous, an outage outlives a step's own retries."""
    return RetryPolicy(
        max_retries=settings.NEXUS_INFRA_MAX_RETRIES,
        backoff=settings.NEXUS_INFRA_BACKOFF,
        backoff_max=settings.NEXUS_INFRA_BACKOFF_MAX,
        jitter=True,
    )


def async_commit() -> None:
    """Inside a sequential, non-final step's completion transaction on PostgreSQL: commit without
    waiting for the WAL flush (NEXUS_ASYNC_STEP_COMMIT). Safe because what such a commit may lose is
    the tail of the WAL in a database crash (never a torn or reordered write, and never in a worker or
    Redis crash): the database comes back at an earlier step, whole. The next step's message, already
    sent, then finds the cursor behind its group and stops (run_step); the reconciler re-dispatches
    from the cursor once the heartbeat is old, and the lost step runs again, its side effects guarded
    by its idempotency key, as after a worker killed before its commit. The final step's commit, and
    every other write of the engine, stays synchronous: a caller told `succeeded` reads a durable row."""
    if settings.NEXUS_ASYNC_STEP_COMMIT and connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute("SET LOCAL synchronous_commit TO OFF")
