"""Sending, receiving and acknowledging: XADD (capacity, dedup, FIFO group lists), XREADGROUP after
reclaiming idle messages, delivery counting, XACK - each one Lua script per batch (``scripts``).

- send (durable, the default): the message is committed to the database inbox (``inbox.accept``,
  deduplicated by a ``Guard`` row within ``deduplication_window``) before the caller hears success,
  then ``XADD``ed on commit with its row id; ``delay`` keeps it in the inbox until the sweep feeds it.
- send_many (the pollers' fast path, not durable): the whole batch from one script that checks
  capacity -> QUEUE_FULL, deduplicates (``GET`` / ``SET EX``), ``XADD``s and, for FIFO queues,
  appends each id to its message group's list.
- receive: reclaim first (``XPENDING IDLE visibility_timeout`` + ``XCLAIM`` with the same min-idle,
  so only one consumer wins a message), then ``XREADGROUP COUNT``. Deliveries are counted per
  message; one already delivered ``1 + max_retries`` times goes to the dead-letter store instead.
- ack: the inbox rows are marked first, then ``XACK`` + ``XDEL`` (so XLEN = messages available + in
  flight), counted for processing_rate and messages_processed. A consumer acknowledges a batch and
  receives the next in the same round trip (``ack_and_receive``).
"""
from __future__ import annotations

import os
import threading
from dataclasses import dataclass

import redis

from workflows_app import codec
from workflows_app.circuit import redis_client
from workflows_app.errors import OperationError
from workflows_app.models import MessageQueue
from workflows_app.queues import inbox, layout, scripts
from workflows_app.queues.config import check_stream, get_queue
from workflows_app.queues.dead_letters import dead_letter
from workflows_app.queues.handlers import schedule_drain


# --- sending ------------------------------------------------------------------------------------
def _redis_send(queue: MessageQueue, items: list[dict], client: redis.Redis) -> list[dict]:
    """XADD a batch from one script (``scripts.SEND_MANY``); a reply per item, in order."""
    layout.ensure_group(queue.name, client)
    fifo = queue.ordering == MessageQueue.Ordering.FIFO
    prepared = [layout.prepare(queue, item["body"], item.get("group_id"), item.get("dedup_id")) for item in items]
    reply = codec.loads(scripts.run(client, scripts.SEND_MANY, [layout.stream_key(queue.name)], [
        queue.max_messages, queue.deduplication_window, layout.retention_cutoff(queue), layout.key(queue.name, ""),
        "1" if fifo else "0", codec.dumps(prepared)]))
    return [{"queue": queue.name, "message_id": reply[2 * i + 1] or None, "deduplicated": reply[2 * i] == 0,
             "full": reply[2 * i] == -1, "group_id": group, "deduplication_id": dedup or None}
            for i, (_body, group, dedup) in enumerate(prepared)]


def send(name: str, body, *, group_id=None, dedup_id=None, delay: float | None = None,
         client: redis.Redis | None = None, notify: bool = True, durable: bool = True) -> dict:
    """Put one message on a queue. Returns {message_id, deduplicated, queue, ...}.

    Durable (the default): committed to the database inbox first, so the reply means the message
    survives a Redis restart. ``durable=False`` is Redis only (internal, regenerable traffic)."""
    queue = get_queue(name)
    check_stream(queue)
    if durable or delay:
        return inbox.accept(queue, body, group_id=group_id, dedup_id=dedup_id,
                            delay=float(delay) if delay else None, notify=notify)
    reply = _redis_send(queue, [{"body": body, "group_id": group_id, "dedup_id": dedup_id}],
                        client or redis_client())[0]
    if reply.pop("full"):
        raise OperationError("QUEUE_FULL", f"queue '{queue.name}' holds {queue.max_messages} messages (its "
                             "max_messages)", {"field": "queue_name", "max_messages": queue.max_messages})
    if not reply["deduplicated"] and notify:
        schedule_drain(queue)
    return reply


def send_many(name: str, items: list[dict], *, client: redis.Redis | None = None, notify: bool = True,
              durable: bool = False) -> list[dict]:
    """Send many messages in one round trip; items are {body, group_id?, dedup_id?}.

    Not durable by default: this is the pollers' high-rate path (ticks and articles are internal and
    the next poll regenerates them; see ``inbox``). ``durable=True`` stores each in the inbox."""
    queue = get_queue(name)
    check_stream(queue)
    if durable:
        out = []
        for item in items:
            try:
                out.append({**send(name, item["body"], group_id=item.get("group_id"), dedup_id=item.get("dedup_id"),
                                   notify=notify), "full": False})
            except OperationError as exc:
                if exc.code != "QUEUE_FULL":
                    raise
                out.append({"queue": queue.name, "message_id": None, "deduplicated": False, "full": True})
        return out
    if not items:
        return []
    replies = _redis_send(queue, items, client or redis_client())
    if notify and any(r["message_id"] and not r["deduplicated"] for r in replies):
        schedule_drain(queue)
    return replies


# --- receiving ----------------------------------------------------------------------------------
@dataclass
class Message:
    queue: str
    id: str
    body: object
    group_id: str
    deduplication_id: str
    delivery_count: int
    inbox_id: int | None = None  # its durable inbox row (None: a Redis-only message)
    position: int | None = None  # its place in its FIFO group's list when received (None: not listed)

    def as_dict(self) -> dict:
        return {"message_id": self.id, "queue": self.queue, "body": self.body, "group_id": self.group_id,
                "deduplication_id": self.deduplication_id or None, "delivery_count": self.delivery_count,
                "sent_at": layout.id_time(self.id)}


def consumer_name() -> str:
    return f"{os.uname().nodename}:{os.getpid()}:{threading.get_ident()}"


def _deliver(queue: MessageQueue, entries: list[layout.Entry], client: redis.Redis) -> list[Message]:
    """The received entries as messages; exhausted ones go to the dead-letter store instead, and
    ones whose inbox row is already final (a redelivery after a lost Redis ack) are dropped."""
    if not entries:
        return []
    done = inbox.final_ids([int(f["inbox"]) for _, f, _, _ in entries if f.get("inbox")])
    out = []
    for mid, fields, count, position in entries:
        inbox_id = int(fields["inbox"]) if fields.get("inbox") else None
        if inbox_id in done:  # already handled (its Redis ack was lost, or it was fed twice): drop it
            layout.ack_in_redis(queue, [mid], {mid: fields.get("group", "default")}, processed=False, client=client)
            continue
        if count > queue.max_retries + 1:
            dead_letter(queue, mid, fields, deliveries=count - 1, client=client)
            continue
        out.append(Message(queue.name, mid, layout.loads(fields["body"]), fields.get("group", "default"),
                           fields.get("dedup", ""), count, inbox_id, position))
    return out


def _retry_without_group(name: str, client: redis.Redis, call):
    """Run ``call(queue)``; when Redis lost the stream or its group, recreate it and run it again."""
    queue = get_queue(name)
    check_stream(queue)
    layout.ensure_group(queue.name, client)
    try:
        return call(queue)
    except redis.ResponseError as exc:
        if not layout.is_nogroup(exc):
            raise
        layout.forget_group(queue.name, client)
        return call(queue)


def receive(name: str, *, consumer: str = "api", count: int | None = None,
            client: redis.Redis | None = None) -> list[Message]:
    """Pull up to ``count`` (default batch_size) messages; unacked ones come back after visibility_timeout."""
    return ack_and_receive(name, [], consumer=consumer, count=count, client=client)[0]


def ack_and_receive(name: str, done: list[Message], *, consumer: str, count: int | None = None,
                    ahead: list[Message] = (), received_positions: bool = True, before=None, after=None,
                    client: redis.Redis | None = None) -> tuple[list[Message], layout.Cycled]:
    """Acknowledge a handled batch and pull the next one in one round trip (``layout.cycle``);
    ``count`` 0 pulls nothing. Inbox rows are marked acknowledged first (the database before
    Redis). ``ahead``: messages received earlier, about to run, whose FIFO positions are read in
    the same round trip (set on them). ``before`` / ``after``: see ``layout.cycle``."""
    client = client or redis_client()
    inbox.mark([m.inbox_id for m in done if m.inbox_id], "acked")
    acks = [(m.id, m.group_id) for m in done]
    asked = [(m.id, m.group_id) for m in ahead]

    def call(queue: MessageQueue) -> tuple[list[Message], layout.Cycled]:
        wanted = 0 if count == 0 else max(1, min(int(count or queue.batch_size), 1000))
        cycled = layout.cycle(queue, acks, count=wanted, consumer=consumer, positions_of=asked,
                              received_positions=received_positions, client=client, before=before, after=after)
        for message, position in zip(ahead, cycled.positions, strict=True):
            message.position = position
        return _deliver(queue, cycled.entries, client), cycled

    return _retry_without_group(name, client, call)


# --- acknowledging ------------------------------------------------------------------------------
def ack(name: str, message_ids: list[str], *, groups: dict[str, str] | None = None,
        inbox_rows: dict[str, int] | None = None, processed: bool = True, client: redis.Redis | None = None) -> int:
    """Acknowledge (and delete) messages. ``processed`` counts them towards processing_rate.
    ``inbox_rows`` maps message ids to their inbox rows (read from the stream when not given); the
    rows are marked acknowledged before Redis is told."""
    queue = get_queue(name)
    client = client or redis_client()
    if (inbox_rows is None or groups is None) and message_ids:
        pipe = client.pipeline(transaction=False)
        for mid in message_ids:
            pipe.xrange(layout.stream_key(queue.name), mid, mid)
        found = {entry[0][0]: entry[0][1] for entry in pipe.execute() if entry}
        if groups is None:
            groups = {mid: fields.get("group", "default") for mid, fields in found.items()}
        if inbox_rows is None:
            inbox_rows = {mid: int(fields["inbox"]) for mid, fields in found.items() if fields.get("inbox")}
    if processed and inbox_rows:
        inbox.mark(list(inbox_rows.values()), "acked")
    return layout.ack_in_redis(queue, message_ids, groups, processed=processed, client=client)
