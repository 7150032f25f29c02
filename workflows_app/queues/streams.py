"""Sending, receiving and acknowledging: XADD (capacity, dedup, FIFO group lists), XREADGROUP after
reclaiming idle messages, delivery counting, XACK.

- send (durable, the default): the message is committed to the database inbox (``inbox.accept``,
  deduplicated by a ``Guard`` row within ``deduplication_window``) before the caller hears success,
  then ``XADD``ed on commit with its row id; ``delay`` keeps it in the inbox until the sweep feeds it.
- send_many (the pollers' fast path, not durable): ``XADD`` from a Lua script that also checks
  capacity -> QUEUE_FULL, deduplicates (``SET NX EX``) and, for FIFO queues, appends the id to its
  message group's list.
- receive: reclaim first (``XPENDING IDLE visibility_timeout`` + ``XCLAIM`` with the same min-idle,
  so only one consumer wins a message), then ``XREADGROUP COUNT``. Deliveries are counted per
  message; one already delivered ``1 + max_retries`` times goes to the dead-letter store instead.
- ack: the inbox row is marked first, then ``XACK`` + ``XDEL`` (so XLEN = messages available + in
  flight), counted for processing_rate and messages_processed.
"""
from __future__ import annotations

import json
import os
import threading
from dataclasses import dataclass

import redis

from workflows_app.circuit import redis_client
from workflows_app.errors import OperationError
from workflows_app.models import MessageQueue
from workflows_app.queues import inbox, layout
from workflows_app.queues.config import check_stream, get_queue
from workflows_app.queues.dead_letters import dead_letter
from workflows_app.queues.handlers import schedule_drain

# --- sending ------------------------------------------------------------------------------------
# KEYS: stream, dedup key ('' = none), group list ('' = none)
# ARGV: body, group, dedup id, max_messages, dedup window (s), retention cutoff id ('' = none)
_SEND = """
if KEYS[2] ~= '' then
  local prev = redis.call('GET', KEYS[2])
  if prev then return {0, prev} end
end
if tonumber(ARGV[4]) > 0 and redis.call('XLEN', KEYS[1]) >= tonumber(ARGV[4]) then return {-1, ''} end
local id = redis.call('XADD', KEYS[1], '*', 'body', ARGV[1], 'group', ARGV[2], 'dedup', ARGV[3])
if KEYS[2] ~= '' then redis.call('SET', KEYS[2], id, 'EX', tonumber(ARGV[5])) end
if KEYS[3] ~= '' then redis.call('RPUSH', KEYS[3], id) end
if ARGV[6] ~= '' then redis.call('XTRIM', KEYS[1], 'MINID', '~', ARGV[6]) end
return {1, id}
"""


def _send_args(queue: MessageQueue, body, group_id, dedup_id) -> tuple[list, list]:
    encoded, group, dedup = layout.prepare(queue, body, group_id, dedup_id)
    keys = [layout.stream_key(queue.name), layout.key(queue.name, f"dedup:{dedup}") if dedup else "",
            layout.group_list_key(queue.name, group) if queue.ordering == MessageQueue.Ordering.FIFO else ""]
    args = [encoded, group, dedup, queue.max_messages, queue.deduplication_window, layout.retention_cutoff(queue)]
    return keys, args


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
    client = client or redis_client()
    layout.ensure_group(queue.name, client)
    keys, args = _send_args(queue, body, group_id, dedup_id)
    status, message_id = layout.script(client, _SEND)(keys=keys, args=args, client=client)
    if status == -1:
        raise OperationError("QUEUE_FULL", f"queue '{queue.name}' holds {queue.max_messages} messages (its "
                             "max_messages)", {"field": "queue_name", "max_messages": queue.max_messages})
    reply = {"queue": queue.name, "message_id": message_id, "deduplicated": status == 0,
             "group_id": args[1], "deduplication_id": args[2] or None}
    if status == 1 and notify:
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
    client = client or redis_client()
    layout.ensure_group(queue.name, client)
    send_script = layout.script(client, _SEND)
    pipe = client.pipeline(transaction=False)
    prepared = []
    for item in items:
        keys, args = _send_args(queue, item["body"], item.get("group_id"), item.get("dedup_id"))
        send_script(keys=keys, args=args, client=pipe)
        prepared.append(args)
    replies = []
    for args, (status, message_id) in zip(prepared, pipe.execute(), strict=True):
        replies.append({"queue": queue.name, "message_id": message_id or None, "deduplicated": status == 0,
                        "full": status == -1, "group_id": args[1]})
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

    def as_dict(self) -> dict:
        return {"message_id": self.id, "queue": self.queue, "body": self.body, "group_id": self.group_id,
                "deduplication_id": self.deduplication_id or None, "delivery_count": self.delivery_count,
                "sent_at": layout.id_time(self.id)}


def consumer_name() -> str:
    return f"{os.uname().nodename}:{os.getpid()}:{threading.get_ident()}"


def _live(entries) -> list[tuple[str, dict]]:
    """Drop entries whose message was deleted (XCLAIM / XREADGROUP report them with no fields)."""
    return [(mid, fields) for mid, fields in (entries or []) if fields is not None]


def _reclaim(queue: MessageQueue, consumer: str, count: int, client: redis.Redis) -> list[tuple[str, dict]]:
    """Claim messages idle for visibility_timeout (unacked by a consumer that gave up or died)."""
    stream = layout.stream_key(queue.name)
    idle_ms = int(queue.visibility_timeout * 1000)
    pending = client.xpending_range(stream, layout.GROUP, "-", "+", count, idle=idle_ms)
    if not pending:
        return []
    ids = [p["message_id"] for p in pending]
    claimed = client.xclaim(stream, layout.GROUP, consumer, idle_ms, ids)
    got = {mid for mid, fields in claimed if fields is not None}
    lost = [mid for mid in ids if mid not in got]
    # Entries trimmed away (retention) while pending: forget them.
    if lost:
        exist = {mid for mid in lost if client.xrange(stream, mid, mid)}
        gone = [mid for mid in lost if mid not in exist]
        if gone:
            client.xack(stream, layout.GROUP, *gone)
            client.hdel(layout.key(queue.name, "deliveries"), *gone)
    return _live(claimed)


def _deliver(queue: MessageQueue, entries, client: redis.Redis) -> list[Message]:
    """Count a delivery of each entry; exhausted ones go to the dead-letter store instead."""
    if not entries:
        return []
    pipe = client.pipeline(transaction=False)
    for mid, _ in entries:
        pipe.hincrby(layout.key(queue.name, "deliveries"), mid, 1)
    counts = pipe.execute()
    done = inbox.final_ids([int(f["inbox"]) for _, f in entries if f.get("inbox")])
    out = []
    for (mid, fields), count in zip(entries, counts, strict=True):
        inbox_id = int(fields["inbox"]) if fields.get("inbox") else None
        if inbox_id in done:  # already handled (its Redis ack was lost, or it was fed twice): drop it
            layout.ack_in_redis(queue, [mid], {mid: fields.get("group", "default")}, processed=False, client=client)
            continue
        if count > queue.max_retries + 1:
            dead_letter(queue, mid, fields, deliveries=count - 1, client=client)
            continue
        out.append(Message(queue.name, mid, json.loads(fields["body"]), fields.get("group", "default"),
                           fields.get("dedup", ""), count, inbox_id))
    return out


def receive(name: str, *, consumer: str = "api", count: int | None = None,
            client: redis.Redis | None = None) -> list[Message]:
    """Pull up to ``count`` (default batch_size) messages; unacked ones come back after visibility_timeout."""
    client = client or redis_client()
    try:
        return _receive(name, consumer=consumer, count=count, client=client)
    except redis.ResponseError as exc:
        if not layout.is_nogroup(exc):
            raise
        layout.forget_group(name, client)
        return _receive(name, consumer=consumer, count=count, client=client)


def _receive(name: str, *, consumer: str, count: int | None, client: redis.Redis) -> list[Message]:
    queue = get_queue(name)
    check_stream(queue)
    layout.ensure_group(queue.name, client)
    count = max(1, min(int(count or queue.batch_size), 1000))
    entries = _reclaim(queue, consumer, count, client)
    if len(entries) < count:
        got = client.xreadgroup(layout.GROUP, consumer, {layout.stream_key(queue.name): ">"},
                                count=count - len(entries))
        for _stream, items in got or []:
            entries.extend(_live(items))
    return _deliver(queue, entries, client)


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
