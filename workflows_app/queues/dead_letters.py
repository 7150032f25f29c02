"""Undeliverable messages: recorded handler failures, the move to the dead-letter store
(``DeadLetter`` source "queue", the same store as failed steps) and the redrive back.
"""
from __future__ import annotations

import json
import time

import redis

from workflows_app import audit
from workflows_app.circuit import redis_client
from workflows_app.models import DeadLetter, MessageQueue
from workflows_app.queues import inbox, layout
from workflows_app.queues.config import get_queue
from workflows_app.registry import registry


def record_failure(queue: MessageQueue, message_id: str, exc: BaseException, client: redis.Redis) -> str:
    """Remember the last error a message's handler raised (reported if it is dead-lettered)."""
    info = registry.classify_error(exc)
    client.hset(layout.key(queue.name, "errors"), message_id,
                layout.dumps({"error_class": info.error_class, "error": str(exc)[:2000], "at": time.time()}))
    return info.error_class


def dead_letter(queue: MessageQueue, message_id: str, fields: dict, *, deliveries: int,
                client: redis.Redis | None = None, error_class: str | None = None, error: str | None = None) -> DeadLetter:
    """Move a message to the dead-letter store (a DeadLetter row) and off the stream."""
    client = client or redis_client()
    raw_error = client.hget(layout.key(queue.name, "errors"), message_id)
    last = json.loads(raw_error) if raw_error else {}
    error_class = error_class or last.get("error_class") or "max_retries_exceeded"
    error = error or last.get("error") or (
        f"not acknowledged after {deliveries} deliveries (max_retries {queue.max_retries}, "
        f"visibility_timeout {queue.visibility_timeout:g}s)")
    group = fields.get("group", "default")
    payload = {"message_id": message_id, "body": layout.decode_body(fields), "group_id": group,
               "deduplication_id": fields.get("dedup") or None, "deliveries": deliveries,
               "sent_at": layout.id_time(message_id)}
    inbox_id = int(fields["inbox"]) if fields.get("inbox") else None
    redrives = inbox.redrives(inbox_id)
    if redrives is None:
        redrives = int(client.hget(layout.key(queue.name, "redrives"), message_id) or 0)
    letter = DeadLetter.objects.create(source="queue", queue_name=queue.name, error_class=error_class[:100],
                                       error=error, payload=payload, attempts=max(deliveries, 1),
                                       workflow_id=queue.workflow_id, redrive_count=redrives)
    if inbox_id:
        inbox.mark([inbox_id], "dead_lettered")
    client.hdel(layout.key(queue.name, "redrives"), message_id)
    audit.record("message_dead_lettered", workflow_id=queue.workflow_id, queue=queue.name, message_id=message_id,
                 dead_letter_id=str(letter.id), error_class=letter.error_class, deliveries=deliveries)
    layout.ack_in_redis(queue, [message_id], {message_id: group}, processed=False, client=client)
    client.incr(layout.key(queue.name, "dead_lettered"))
    return letter


def redrive(letter: DeadLetter) -> dict:
    """Put a dead-lettered message back on its queue (a new durable message, deduplication bypassed)."""
    queue = get_queue(letter.queue_name)
    payload = letter.payload or {}
    reply = inbox.accept(queue, payload.get("body"), group_id=payload.get("group_id"),
                         dedup_id=payload.get("deduplication_id"), dedup=False, redrives=letter.redrive_count + 1)
    return {"queue": queue.name, "message_id": reply["message_id"], "inbox_id": reply["inbox_id"]}
