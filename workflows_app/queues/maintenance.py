"""Housekeeping, run by beat's sweep (``nexus.maintenance.sweep_queues``) and after each drain:
inbox retention and replay, stream retention (``XTRIM MINID``), compaction, dead-lettering of
exhausted unacked messages of pull queues, and waking push consumers that have work.
"""
from __future__ import annotations

import time

import redis

from workflows_app.circuit import redis_client
from workflows_app.models import MessageQueue
from workflows_app.queues import inbox, layout
from workflows_app.queues.config import get_queue
from workflows_app.queues.dead_letters import dead_letter
from workflows_app.queues.handlers import clear_drain_flag, handler_for, schedule_drain

INBOX_PRUNE_EVERY = 60  # seconds: retention of inbox rows and guards runs at most this often


def compact(queue: MessageQueue, client: redis.Redis | None = None) -> None:
    """Acked messages are XDEL'ed, which leaves tombstones in the stream's nodes until they are
    trimmed: drop every node before the first live message (reads stay fast)."""
    client = client or redis_client()
    stream = layout.stream_key(queue.name)
    first = client.xrange(stream, "-", "+", count=1)
    # a message sent meanwhile has a newer id than both bounds: never trimmed here
    bound = first[0][0] if first else f"{int(time.time() * 1000) - 1000}-0"
    client.xtrim(stream, minid=bound, approximate=True)


def trim(queue: MessageQueue, client: redis.Redis | None = None) -> int:
    """Drop messages older than message_retention (exact XTRIM MINID)."""
    client = client or redis_client()
    return int(client.xtrim(layout.stream_key(queue.name), minid=layout.retention_cutoff(queue),
                            approximate=False) or 0)


def _dead_letter_exhausted(queue: MessageQueue, client: redis.Redis) -> tuple[int, list]:
    """Pull queues: unacked messages idle past visibility_timeout whose deliveries are used up go to
    the dead-letter store (push queues do it at their next receive). Returns (moved, idle pending)."""
    stream = layout.stream_key(queue.name)
    idle_ms = int(queue.visibility_timeout * 1000)
    moved = 0
    pending = client.xpending_range(stream, layout.GROUP, "-", "+", 100, idle=idle_ms)
    for entry in pending:
        deliveries = int(client.hget(layout.key(queue.name, "deliveries"), entry["message_id"]) or 0)
        if deliveries >= queue.max_retries + 1:
            claimed = client.xclaim(stream, layout.GROUP, "sweeper", idle_ms, [entry["message_id"]])
            if claimed and claimed[0][1] is not None:
                dead_letter(queue, claimed[0][0], claimed[0][1], deliveries=deliveries, client=client)
                moved += 1
    return moved, pending


def sweep(name: str | None = None) -> dict:
    """Promote due delayed messages, apply retention, dead-letter exhausted unacked messages of
    pull queues, and ask a worker to drain push queues that have work."""
    client = redis_client()
    report = {}
    if client.set("nexus:inbox:prune", 1, nx=True, ex=INBOX_PRUNE_EVERY):
        report["_inbox_pruned"] = inbox.prune()
    replayed = inbox.replay(queue_name=name, client=client)  # re-feed what Redis lost, feed due delayed ones
    if replayed["fed"]:
        report["_inbox_fed"] = replayed["fed"]
    queues = [get_queue(name)] if name else list(MessageQueue.objects.filter(kind=MessageQueue.Kind.STREAM))
    for queue in queues:
        if queue.kind != MessageQueue.Kind.STREAM:
            continue
        try:
            client.xinfo_groups(layout.stream_key(queue.name))
        except redis.ResponseError:
            layout.forget_group(queue.name, client)  # the stream is gone (Redis flushed / restarted empty)
        promoted = 0  # delayed messages wait in the inbox: inbox.replay() above fed the due ones
        trimmed = trim(queue, client)
        compact(queue, client)
        exhausted, pending = _dead_letter_exhausted(queue, client)
        if handler_for(queue) is not None and (pending or client.xlen(layout.stream_key(queue.name))):
            clear_drain_flag(queue.name)
            schedule_drain(queue)
        report[queue.name] = {"promoted": promoted, "trimmed": trimmed, "dead_lettered": exhausted}
    return report
