"""The reconciler: resume executions that made no progress for their step timeout plus a margin,
under a new generation (their old messages are then ignored).

It looks into the broker first. Behind a backlog a step's message can wait longer than that without
being lost; re-dispatching it would only move it to the back of the queue again (and again: under a
long backlog nothing would ever reach a worker). A message still waiting in a queue list is not
lost, so the reconciler leaves it alone. A message a worker took (kombu's unacked hash) may be
waiting in that worker for a free process, or lost with a dead worker (it would come back only after
the visibility timeout): it is reported with its delivery time, and the step's timeout counts from then.
"""
from __future__ import annotations

import base64
import json
import logging

from django.conf import settings
from django.db import transaction
from django.utils import timezone
from redis.exceptions import RedisError

from workflows_app.circuit import redis_client
from workflows_app.definitions import execution_groups
from workflows_app.engine.lifecycle import dispatch
from workflows_app.engine.messages import ENGINE_TASKS
from workflows_app.engine.policy import step_timeout
from workflows_app.models import Execution, StepRun

log = logging.getLogger(__name__)
S = Execution.Status
UNACKED, UNACKED_INDEX = "unacked", "unacked_index"  # kombu's Redis transport defaults
MAX_SCANNED = 200_000  # messages per pass; beyond that the reconciler falls back to timeouts alone


# --- what the broker still holds ----------------------------------------------------------------
def _dispatch_of(raw: str) -> tuple[str, int] | None:
    try:
        message = json.loads(raw)
        if message.get("headers", {}).get("task") not in ENGINE_TASKS:
            return None
        body = message["body"]
        if message.get("properties", {}).get("body_encoding") == "base64":
            body = base64.b64decode(body)
        args = json.loads(body)[0]
        return str(args[0]), int(args[1])
    except (ValueError, KeyError, IndexError, TypeError, AttributeError):
        return None  # not a kombu message of ours


def waiting_dispatches() -> dict[tuple[str, int], float | None] | None:
    """{(execution_id, generation): None if waiting in a queue, else the time a worker took it};
    None if Redis cannot say."""
    client = redis_client()
    found: dict[tuple[str, int], float | None] = {}
    scanned = 0
    try:
        # Queue lists first, then what workers took: a message moving from a list to a worker while
        # we scan is then seen in the second place instead of in neither (it would look lost).
        for key in client.scan_iter(_type="list", count=500):
            for start in range(0, client.llen(key), 1000):
                try:
                    chunk = client.lrange(key, start, start + 999)
                except UnicodeDecodeError:
                    break  # binary values: not a queue of ours
                scanned += len(chunk)
                found.update((d, None) for d in map(_dispatch_of, chunk) if d)
                if scanned >= MAX_SCANNED:
                    log.warning("broker scan stopped after %d messages", scanned)
                    return found
        delivered = dict(client.zrange(UNACKED_INDEX, 0, -1, withscores=True))
        for tag, raw in client.hscan_iter(UNACKED):
            try:
                dispatch_key = _dispatch_of(json.dumps(json.loads(raw)[0]))
            except (ValueError, IndexError, TypeError):
                continue
            if dispatch_key and found.get(dispatch_key, 0.0) is not None:
                found[dispatch_key] = delivered.get(tag, 0.0)
    except RedisError as exc:
        log.warning("cannot look into the broker's queues: %s", exc)
        return None
    return found


# --- resuming -----------------------------------------------------------------------------------
def reconcile(now=None, margin: int | None = None, waiting: dict | None = None) -> list[str]:
    """Re-dispatch unfinished executions with no progress for their step timeout plus a margin.
    `waiting` (waiting_dispatches): {(execution, generation): None while its message waits in a queue
    (late behind a backlog, not lost: left alone), else when a worker took it (the timeout counts
    from then)}."""
    waiting = waiting or {}
    now = now or timezone.now()
    margin = settings.NEXUS_RECONCILE_MARGIN_SECONDS if margin is None else margin
    floor = now - timezone.timedelta(seconds=margin)
    candidates = list(Execution.objects.filter(
        status__in=[S.QUEUED, S.RUNNING, S.COMPENSATING], heartbeat_at__lt=floor
    ).values_list("pk", "heartbeat_at", "dispatch_count")[:500 + len(waiting)])
    resumed = []
    for pk, seen_heartbeat, seen_generation in candidates:
        key = (str(pk), seen_generation)
        if key in waiting and waiting[key] is None:
            continue
        with transaction.atomic():
            if _resume_if_lost(pk, (seen_heartbeat, seen_generation), waiting.get(key), now, margin):
                resumed.append(str(pk))
    return resumed


def _resume_if_lost(pk, seen: tuple, taken_at: float | None, now, margin: int) -> bool:
    """Inside a transaction: re-dispatch this execution if it is still as silent as it looked."""
    execution = Execution.objects.select_for_update().select_related("version").filter(pk=pk).first()
    if execution is None or execution.is_final or execution.status == S.WAITING:
        return False  # a waiting execution holds no message: the timer resumes it, not the reconciler
    if (execution.heartbeat_at, execution.dispatch_count) != seen:
        return False  # progress or another reconciler since we looked: not lost
    steps = execution.version.definition["steps"]
    groups = execution_groups(steps)
    current = groups[min(execution.cursor, len(groups) - 1)]
    timeout = max(step_timeout(steps[i]) for i in current)
    silent_since = now - timezone.timedelta(seconds=timeout + margin)
    if execution.heartbeat_at and execution.heartbeat_at > silent_since:
        return False  # someone made progress meanwhile (or another reconciler got here first)
    if (taken_at or 0) > silent_since.timestamp():
        return False  # a worker took it lately: it may be waiting there for a free process
    if StepRun.objects.filter(execution=execution, status=StepRun.Status.WAITING).exists():
        return False  # waiting for a child, which the reconciler looks after on its own
    dispatch(execution, reason="reconciled")
    return True
