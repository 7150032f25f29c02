"""What the broker still holds: engine messages waiting in Redis queues, by (execution, generation).

The reconciler resumes an execution that made no progress for its step timeout plus a margin.
Behind a backlog a step's message can wait longer than that without being lost; re-dispatching it
would only move it to the back of the queue again (and again: under a long backlog nothing would
ever reach a worker). A message still waiting in a queue list is not lost, so the reconciler leaves
it alone. Messages a worker took (kombu's unacked hash) are not counted: if that worker died they
come back only after the visibility timeout, which is what the reconciler is there to cut short.
"""
from __future__ import annotations

import base64
import json
import logging

from redis.exceptions import RedisError

log = logging.getLogger(__name__)
ENGINE_TASKS = {"nexus.engine.run_step", "nexus.engine.run_compensation", "nexus.engine.join_group",
                "nexus.engine.finish_compensation"}
MAX_SCANNED = 200_000  # messages per pass; beyond that the reconciler falls back to timeouts alone


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


def waiting_dispatches() -> set[tuple[str, int]] | None:
    """(execution_id, generation) of every engine message waiting in a queue; None if Redis cannot say."""
    from workflows_app.circuit import redis_client

    client = redis_client()
    found: set[tuple[str, int]] = set()
    scanned = 0
    try:
        for key in client.scan_iter(_type="list", count=500):
            for start in range(0, client.llen(key), 1000):
                try:
                    chunk = client.lrange(key, start, start + 999)
                except UnicodeDecodeError:
                    break  # binary values: not a queue of ours
                scanned += len(chunk)
                found.update(d for d in map(_dispatch_of, chunk) if d)
                if scanned >= MAX_SCANNED:
                    log.warning("broker scan stopped after %d messages", scanned)
                    return found
    except RedisError as exc:
        log.warning("cannot look into the broker's queues: %s", exc)
        return None
    return found
