"""Queue status figures, read live from Redis (and the inbox and dead-letter tables).

A stream queue reports messages available / in flight / delayed, the oldest message's age, the
processing rate (acks per minute over the last minute), messages processed (every ack counted),
messages failing, dead-lettered and its consumers; the dead-letter view reports the open dead
letters of the store.
"""
from __future__ import annotations

import time
from datetime import timedelta

import redis
from django.utils import timezone

from workflows_app.circuit import redis_client
from workflows_app.models import DeadLetter, MessageQueue
from workflows_app.queues import inbox, layout
from workflows_app.queues.config import get_queue
from workflows_app.queues.layout import GROUP, RATE_BUCKET, RATE_WINDOW


def processing_rate(name: str, client: redis.Redis | None = None) -> float:
    """Messages acknowledged per minute over the last minute (counted at each ack)."""
    client = client or redis_client()
    now = time.time()
    current = int(now // RATE_BUCKET)
    buckets = RATE_WINDOW // RATE_BUCKET
    keys = [layout.key(name, f"rate:{b}") for b in range(current - buckets, current + 1)]
    total = sum(int(v or 0) for v in client.mget(keys))
    elapsed = RATE_WINDOW + (now - current * RATE_BUCKET)
    return round(total / elapsed * 60, 2)


def _stream_messages(queue: MessageQueue, client: redis.Redis, limit: int) -> list[dict]:
    key = layout.stream_key(queue.name)
    in_flight_info = {p["message_id"]: p for p in client.xpending_range(key, GROUP, "-", "+", limit)}
    deliveries = client.hgetall(layout.key(queue.name, "deliveries"))
    messages = []
    for mid, fields in client.xrange(key, "-", "+", count=limit):
        info = in_flight_info.get(mid)
        messages.append({"message_id": mid, "body": layout.decode_body(fields), "group_id": fields.get("group"),
                         "state": "in_flight" if info else "available",
                         "age": round(time.time() - (layout.id_time(mid) or time.time()), 3),
                         "delivery_count": int(deliveries.get(mid, 0)),
                         "consumer": info["consumer"] if info else None})
    return messages


def _stream_status(queue: MessageQueue, client: redis.Redis, include_messages: bool, limit: int) -> dict:
    layout.ensure_group(queue.name, client)
    key = layout.stream_key(queue.name)
    pipe = client.pipeline(transaction=False)
    pipe.xlen(key)
    pipe.xpending(key, GROUP)
    pipe.xrange(key, "-", "+", count=1)
    pipe.get(layout.key(queue.name, "processed"))
    pipe.xinfo_consumers(key, GROUP)
    pipe.hlen(layout.key(queue.name, "errors"))
    length, pending, first, processed, consumers, failing = pipe.execute()
    delayed = inbox.delayed_count(queue.name)
    in_flight = int(pending["pending"]) if pending else 0
    oldest = layout.id_time(first[0][0]) if first else None
    reply = {
        "name": queue.name,
        "messages_available": max(0, int(length) - in_flight),
        "messages_in_flight": in_flight,
        "messages_delayed": int(delayed),
        "oldest_message_age": round(time.time() - oldest, 3) if oldest else 0,
        "processing_rate": processing_rate(queue.name, client),
        "messages_processed": int(processed or 0),
        # in flight or waiting for redelivery after their handler failed (the "error queue")
        "messages_failing": int(failing or 0),
        "dead_lettered": DeadLetter.objects.filter(source="queue", queue_name=queue.name).count(),
        "consumers": len(consumers),
        "config": queue.config(),
    }
    if include_messages:
        reply["messages"] = _stream_messages(queue, client, limit)
    return reply


def _dead_letter_status(queue: MessageQueue, include_messages: bool, limit: int, owner_id=None) -> dict:
    open_states = [DeadLetter.Status.PENDING, DeadLetter.Status.ALERTED, DeadLetter.Status.RETRY_SCHEDULED]
    qs = DeadLetter.objects.filter(status__in=open_states)
    if owner_id is not None:  # a non-staff caller sees the dead letters of their own workflows only
        qs = qs.filter(workflow__owner_id=owner_id)
    oldest = qs.order_by("created_at").values_list("created_at", flat=True).first()
    since = timezone.now() - timedelta(seconds=RATE_WINDOW)
    handled = DeadLetter.objects.exclude(status__in=open_states).filter(updated_at__gte=since).count()
    reply = {
        "name": queue.name,
        "messages_available": qs.exclude(status=DeadLetter.Status.RETRY_SCHEDULED).count(),
        "messages_in_flight": qs.filter(status=DeadLetter.Status.RETRY_SCHEDULED).count(),
        "messages_delayed": 0,
        "oldest_message_age": round((timezone.now() - oldest).total_seconds(), 3) if oldest else 0,
        "processing_rate": round(handled * 60 / RATE_WINDOW, 2),
        "dead_lettered": DeadLetter.objects.count(),
        "config": queue.config(),
    }
    if include_messages:
        reply["messages"] = [
            {"message_id": str(d.id), "id": str(d.id), "error": d.error_class, "error_class": d.error_class,
             "message": d.error, "source": d.source, "queue": d.queue_name or None, "step": d.step_name or None,
             "execution_id": str(d.execution_id) if d.execution_id else None, "payload": d.payload,
             "status": d.status, "attempts": d.attempts,
             "age": round((timezone.now() - d.created_at).total_seconds(), 3)}
            for d in qs.order_by("created_at")[:limit]
        ]
    return reply


def status(name: str | None = None, include_messages: bool = False, limit: int = 100, owner_id=None) -> dict:
    client = redis_client()
    queues = [get_queue(name)] if name else list(MessageQueue.objects.all())
    items = []
    for queue in queues:
        if queue.kind == MessageQueue.Kind.DEAD_LETTER:
            items.append(_dead_letter_status(queue, include_messages, limit, owner_id))
            continue
        try:
            items.append(_stream_status(queue, client, include_messages, limit))
        except redis.ResponseError as exc:
            if not layout.is_nogroup(exc):
                raise
            layout.forget_group(queue.name, client)
            items.append(_stream_status(queue, client, include_messages, limit))
    streams = [q for q, item in zip(queues, items, strict=True) if q.kind == MessageQueue.Kind.STREAM]
    stream_items = [i for i in items if i["name"] in {q.name for q in streams}]
    reply = {
        "queues": items,
        "total_messages": sum(i["messages_available"] + i["messages_in_flight"] for i in stream_items),
        "processing_rate": round(sum(i["processing_rate"] for i in stream_items), 2),
    }
    if len(items) == 1 and include_messages:
        reply["messages"] = items[0].get("messages", [])
    return reply
