"""Waiting for an execution to finish: a synchronous caller blocks on a Redis list the engine pushes
to when the execution ends; the database stays the truth (a lost signal only costs a poll)."""
from __future__ import annotations

import logging
import time

from django.utils import timezone

from workflows_app.circuit import redis_client
from workflows_app.models import Execution

log = logging.getLogger(__name__)
DONE_KEY = "nexus:execution-done:{}"


def notify_done(execution_id, status: str) -> None:
    try:
        client = redis_client()
        key = DONE_KEY.format(execution_id)
        client.pipeline().rpush(key, status).expire(key, 300).execute()
    except Exception:  # noqa: BLE001 - waiters fall back to polling the database
        log.warning("could not publish completion of %s", execution_id, exc_info=True)


def wait_until_final(execution_id, timeout: float) -> Execution:
    """Block up to `timeout` seconds for an execution to finish (Redis signal, DB as truth)."""
    key = DONE_KEY.format(execution_id)
    deadline = timezone.now().timestamp() + timeout
    execution = Execution.objects.get(pk=execution_id)
    while not execution.is_final:
        remaining = deadline - timezone.now().timestamp()
        if remaining <= 0:
            break
        try:
            redis_client().blpop([key], timeout=min(remaining, 1.0))
        except Exception:  # noqa: BLE001
            time.sleep(min(remaining, 0.2))
        execution = Execution.objects.get(pk=execution_id)
    return execution
