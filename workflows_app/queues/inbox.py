"""Accepted means durable: the database inbox that named-queue streams are fed from.

``accept`` commits an ``InboxMessage`` row (and its deduplication ``Guard``) before the caller is
told success; the stream entry is added on commit (``feed``), carrying the row id in its
``inbox`` field. Acknowledgement and dead-lettering mark the row (in the database first, then in
Redis: a lost Redis ack costs a redelivery that ``final_ids`` recognises, never a lost message).

Redis epochs: ``nexus:epoch`` holds a random token, created by the first feed into an empty Redis.
A row remembers the epoch it was fed in; ``replay`` (every queue sweep and at worker start)
re-feeds pending rows whose epoch is not the current one - i.e. after Redis restarted empty or was
flushed, or when Redis was unreachable at accept time - and delayed rows once due. One GET and one
indexed query when nothing is missing. A per-row marker key (``SET`` inside the feed script) makes
concurrent feeders add each row once per Redis lifetime.

Not on this path (by design): ``send_many`` / ``ingest_many`` of the built-in market and news
pollers. Their ticks are internal and regenerable (the next poll produces them again) and the event
path must stay fast, so they stay Redis-only; what protects money there is the durable trigger
guard in ``triggers.fire`` (one execution per trigger and event id).
"""
from __future__ import annotations

import json
import logging
import uuid
from datetime import timedelta

import redis
from django.db import transaction
from django.db.models import Q
from django.utils import timezone

from workflows_app import guards
from workflows_app.circuit import redis_client
from workflows_app.errors import OperationError
from workflows_app.models import InboxMessage, MessageQueue
from workflows_app.queues import layout
from workflows_app.queues.config import get_queue
from workflows_app.queues.handlers import schedule_drain

log = logging.getLogger(__name__)
EPOCH_KEY = "nexus:epoch"
PENDING = InboxMessage.State.PENDING

# KEYS: stream, fed marker, group list ('' = none), epoch
# ARGV: body, group, dedup, inbox id, retention cutoff id ('' = none), marker ttl, epoch candidate
_FEED = """
local epoch = redis.call('GET', KEYS[4])
if not epoch then redis.call('SET', KEYS[4], ARGV[7]); epoch = ARGV[7] end
local prev = redis.call('GET', KEYS[2])
if prev then return {0, prev, epoch} end
local id = redis.call('XADD', KEYS[1], '*', 'body', ARGV[1], 'group', ARGV[2], 'dedup', ARGV[3], 'inbox', ARGV[4])
redis.call('SET', KEYS[2], id, 'EX', tonumber(ARGV[6]))
if KEYS[3] ~= '' then redis.call('RPUSH', KEYS[3], id) end
if ARGV[5] ~= '' then redis.call('XTRIM', KEYS[1], 'MINID', '~', ARGV[5]) end
return {1, id, epoch}
"""


def dedup_scope(queue_name: str) -> str:
    return f"queue:{queue_name}"


def current_epoch(client: redis.Redis | None = None) -> str:
    client = client or redis_client()
    epoch = client.get(EPOCH_KEY)
    if epoch is None:
        client.set(EPOCH_KEY, uuid.uuid4().hex, nx=True)
        epoch = client.get(EPOCH_KEY)
    return epoch


def _pending_count(queue: MessageQueue) -> int:
    try:
        return int(redis_client().xlen(layout.stream_key(queue.name)))
    except redis.RedisError:  # Redis away: the rows not yet acknowledged are what the stream would hold
        return InboxMessage.objects.filter(queue_name=queue.name, state=PENDING).count()


def accept(queue: MessageQueue, body, *, group_id=None, dedup_id=None, delay: float | None = None,
           notify: bool = True, redrives: int = 0, dedup: bool = True) -> dict:
    """Store one message durably, then feed it to its stream (on commit). Returns the send reply."""
    encoded, group, dedup_key = layout.prepare(queue, body, group_id, dedup_id if dedup else None)
    if not dedup:
        dedup_key = ""
    if delay is not None and not 0 < delay <= 12 * 3600:
        raise OperationError("INVALID_INPUT_DATA", "delay must be between 0 and 43200 seconds", {"field": "delay"})
    if queue.max_messages and _pending_count(queue) >= queue.max_messages:
        raise OperationError("QUEUE_FULL", f"queue '{queue.name}' holds {queue.max_messages} messages (its "
                             "max_messages)", {"field": "queue_name", "max_messages": queue.max_messages})
    now = timezone.now()
    available_at = now + timedelta(seconds=delay) if delay else None
    ttl = queue.deduplication_window + (delay or 0)
    with transaction.atomic():  # the guard and the row commit together (or not at all)
        if dedup_key and not guards.claim(dedup_scope(queue.name), dedup_key, ttl, now=now):
            row = None
        else:
            row = InboxMessage.objects.create(
                queue_name=queue.name, body=json.loads(encoded), group_id=group, available_at=available_at,
                dedup_id=dedup_key or ("" if dedup else str(dedup_id or "")[:200]), redrives=redrives)
    if row is None:
        return _duplicate(queue, group, dedup_key)
    reply = {"queue": queue.name, "message_id": None, "deduplicated": False, "group_id": group,
             "deduplication_id": dedup_key or None, "inbox_id": row.pk}
    if available_at is not None:  # fed by the sweep once due
        return {**reply, "delayed_until": available_at.timestamp(), "delay": delay}
    if transaction.get_connection().in_atomic_block:
        transaction.on_commit(lambda: _feed_quietly([row], notify), robust=True)
        return reply
    fed = _feed_quietly([row], notify)
    return {**reply, "message_id": fed.get(row.pk)}


def _duplicate(queue: MessageQueue, group: str, dedup_key: str) -> dict:
    first = InboxMessage.objects.filter(queue_name=queue.name, dedup_id=dedup_key).order_by("-pk").first()
    return {"queue": queue.name, "message_id": (first.message_id or None) if first else None, "deduplicated": True,
            "group_id": group, "deduplication_id": dedup_key, "inbox_id": first.pk if first else None}


def _feed_quietly(rows: list[InboxMessage], notify: bool) -> dict:
    try:
        return feed(rows, notify=notify)
    except redis.RedisError as exc:  # accepted all the same: replay() feeds it once Redis answers
        log.warning("inbox: could not feed %d message(s) to Redis now (%s); the sweep will", len(rows), exc)
        return {}


def feed(rows: list[InboxMessage], *, client: redis.Redis | None = None, notify: bool = True) -> dict:
    """Add rows to their streams (each at most once per Redis lifetime). Returns {row id: stream id}."""
    if not rows:
        return {}
    client = client or redis_client()
    script = layout.script(client, _FEED)
    candidate = uuid.uuid4().hex
    pipe = client.pipeline(transaction=False)
    sent, gone = [], []
    for row in rows:
        try:
            queue = get_queue(row.queue_name)
        except OperationError:
            gone.append(row.pk)  # its queue was deleted
            continue
        layout.ensure_group(queue.name, client)
        fifo = queue.ordering == MessageQueue.Ordering.FIFO
        keys = [layout.stream_key(queue.name), layout.fed_key(queue.name, row.pk),
                layout.group_list_key(queue.name, row.group_id) if fifo else "", EPOCH_KEY]
        args = [layout.dumps(row.body), row.group_id, row.dedup_id, row.pk, layout.retention_cutoff(queue),
                queue.message_retention + 3600, candidate]
        script(keys=keys, args=args, client=pipe)
        sent.append((row, queue))
    results = pipe.execute() if sent else []
    if gone:
        InboxMessage.objects.filter(pk__in=gone).update(state=InboxMessage.State.EXPIRED, finished_at=timezone.now())
    out, touched = {}, {}
    for (row, queue), (_status, message_id, epoch) in zip(sent, results, strict=True):
        row.message_id, row.epoch = message_id, epoch
        out[row.pk] = message_id
        touched[queue.name] = queue
    if len(sent) == 1:  # the common case (one accepted message): a plain UPDATE
        row = sent[0][0]
        InboxMessage.objects.filter(pk=row.pk).update(message_id=row.message_id, epoch=row.epoch)
    elif sent:
        InboxMessage.objects.bulk_update([row for row, _ in sent], ["message_id", "epoch"], batch_size=500)
    if notify:
        for queue in touched.values():
            schedule_drain(queue)
    return out


def replay(*, queue_name: str | None = None, client: redis.Redis | None = None, limit: int = 1000) -> dict:
    """Feed pending rows Redis does not have: fed in another epoch (Redis restarted empty or was
    flushed), never fed (Redis was away), or delayed and now due."""
    client = client or redis_client()
    epoch = current_epoch(client)
    due = Q(available_at__isnull=True) | Q(available_at__lte=timezone.now())
    qs = InboxMessage.objects.filter(due, state=PENDING).exclude(epoch=epoch)
    if queue_name:
        qs = qs.filter(queue_name=queue_name)
    rows = list(qs.order_by("pk")[:limit])
    if rows:
        stale = sum(1 for r in rows if r.epoch)
        if stale:
            log.warning("inbox: Redis lost %d accepted message(s) (new epoch %s): feeding them again", stale, epoch)
        feed(rows, client=client)
    return {"epoch": epoch, "fed": len(rows)}


def delayed_count(queue_name: str) -> int:
    return InboxMessage.objects.filter(queue_name=queue_name, state=PENDING, available_at__gt=timezone.now()).count()


def final_ids(ids: list[int]) -> set[int]:
    """Of these rows, the ones already acknowledged / dead-lettered (a redelivery after a lost Redis ack)."""
    if not ids:
        return set()
    return set(InboxMessage.objects.filter(pk__in=ids).exclude(state=PENDING).values_list("pk", flat=True))


def mark(ids: list[int], state: str) -> int:
    if not ids:
        return 0
    return InboxMessage.objects.filter(pk__in=ids, state=PENDING).update(state=state, finished_at=timezone.now())


def redrives(inbox_id) -> int | None:
    if not inbox_id:
        return None
    return InboxMessage.objects.filter(pk=inbox_id).values_list("redrives", flat=True).first()


def prune(now=None, limit: int = 5000) -> dict:
    """Retention: pending rows older than their queue's message_retention expire (as XTRIM drops
    their entries); rows finished that long ago are deleted. Expired guards are deleted."""
    now = now or timezone.now()
    expired = deleted = 0
    for name, retention in MessageQueue.objects.values_list("name", "message_retention"):
        cutoff = now - timedelta(seconds=retention)
        mine = InboxMessage.objects.filter(queue_name=name)
        expired += mine.filter(state=PENDING, created_at__lt=cutoff).update(
            state=InboxMessage.State.EXPIRED, finished_at=now)
        ids = list(mine.exclude(state=PENDING).filter(finished_at__lt=cutoff).values_list("pk", flat=True)[:limit])
        if ids:
            deleted += InboxMessage.objects.filter(pk__in=ids).delete()[0]
    return {"expired": expired, "deleted": deleted, "guards_deleted": guards.prune(now)}
