"""Named message queues on Redis Streams, with the specification's settings all in effect.

One stream per queue and one consumer group ("nexus") on it:

- send (durable, the default: ``services.inbox``): the message is committed to the database inbox
  (deduplicated by a ``Guard`` row within ``deduplication_window``) before the caller hears success,
  then ``XADD``ed on commit with its row id; ``delay`` keeps it in the inbox until the sweep feeds it.
  Re-fed after Redis lost it (see ``inbox.replay``).
- send_many (the pollers' fast path, not durable): ``XADD`` from a Lua script that also checks
  capacity -> QUEUE_FULL, deduplicates (``SET NX EX``) and, for FIFO queues, appends the id to its
  message group's list.
- receive / process: reclaim first (``XPENDING IDLE visibility_timeout`` + ``XCLAIM`` with the same
  min-idle, so only one consumer wins a message), then ``XREADGROUP COUNT batch_size``. An unacked
  message becomes visible again once it has been idle ``visibility_timeout`` seconds.
- deliveries are counted per message (a hash); a message already delivered ``1 + max_retries``
  times is not delivered again but moved to the dead-letter store (``DeadLetter`` source "queue",
  the same store as failed steps), with the last error its handler raised.
- ack: the inbox row is marked first, then ``XACK`` + ``XDEL`` (so XLEN = messages available + in
  flight), counted for processing_rate.
- FIFO per message group: a push consumer runs a message only when it is the head of its group's
  list, so two consumers never reorder a group (the later one waits for the earlier ack).
- retention: ``XTRIM MINID`` (approximate on every send, exact on every sweep).

Everything ``status()`` reports is read live from Redis (and the inbox and dead-letter tables).
"""
from __future__ import annotations

import hashlib
import json
import logging
import os
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta

import redis
from django.core.serializers.json import DjangoJSONEncoder
from django.db import transaction
from django.db.models.signals import post_delete, post_save
from django.utils import timezone

from workflows_app.circuit import redis_client
from workflows_app.errors import OperationError, StepError
from workflows_app.models import DeadLetter, MessageQueue
from workflows_app.registry import registry
from workflows_app.services import audit

log = logging.getLogger(__name__)

GROUP = "nexus"
RATE_BUCKET = 10  # seconds per processing-rate bucket
RATE_WINDOW = 60  # processing_rate is measured over the last minute (messages/minute)
DEAD_LETTER_QUEUE = "dead-letter-queue"

SPEC_CONFIG = {"max_retries": 3, "visibility_timeout": 30, "message_retention": 86_400, "batch_size": 10,
               "ordering": "FIFO", "deduplication": True}
DEFAULT_QUEUES = {
    "events": {"description": "Every ingested event (ticks, news, webhooks, schedules, manual) before matching.",
               "handler": "events"},
    "trading-signals": {"description": "Trade signals queued for execution."},
    "risk-alerts": {"description": "Risk alerts for hedging and operators."},
    DEAD_LETTER_QUEUE: {"description": "The dead-letter store: failed steps and undeliverable messages.",
                        "kind": MessageQueue.Kind.DEAD_LETTER},
}


def ensure_default_queues() -> list[MessageQueue]:
    """Create the specification's named queues (idempotent; existing settings are kept)."""
    out = []
    for name, extra in DEFAULT_QUEUES.items():
        queue, _ = MessageQueue.objects.get_or_create(name=name, defaults={**SPEC_CONFIG, **extra})
        out.append(queue)
    return out


# --- keys ---------------------------------------------------------------------------------------
def _k(name: str, part: str) -> str:
    return f"nexus:q:{name}:{part}"


def stream_key(name: str) -> str:
    return _k(name, "stream")


def group_list_key(name: str, group: str) -> str:
    return _k(name, f"grp:{group}")


# --- configuration cache (a send must not cost a database query) --------------------------------
_cache: dict[str, tuple[float, MessageQueue]] = {}
_groups_ready: set[tuple[str, str]] = set()
CONFIG_TTL = 5.0


def _forget(sender, instance, **kwargs):
    _cache.pop(instance.name, None)


post_save.connect(_forget, sender=MessageQueue, dispatch_uid="nexus-queue-config-save")
post_delete.connect(_forget, sender=MessageQueue, dispatch_uid="nexus-queue-config-delete")


def get_queue(name) -> MessageQueue:
    if not isinstance(name, str) or not name:
        raise OperationError("QUEUE_NOT_FOUND", "queue_name is required", {"field": "queue_name"})
    hit = _cache.get(name)
    if hit and hit[0] > time.monotonic():
        return hit[1]
    queue = MessageQueue.objects.filter(name=name[:100]).first()
    if queue is None and name in DEFAULT_QUEUES:
        ensure_default_queues()  # the system's own queues exist even before load_examples ran
        queue = MessageQueue.objects.filter(name=name).first()
    if queue is None:
        raise OperationError("QUEUE_NOT_FOUND", f"no queue named '{name}'", {"field": "queue_name"})
    _cache[name] = (time.monotonic() + CONFIG_TTL, queue)
    return queue


def fed_key(name: str, inbox_id) -> str:
    return _k(name, f"fed:{inbox_id}")


def _ensure_group(name: str, client: redis.Redis | None = None) -> None:
    client = client or redis_client()
    marker = (client.connection_pool.connection_kwargs.get("db"), name)
    if marker in _groups_ready:
        return
    try:
        client.xgroup_create(stream_key(name), GROUP, id="0", mkstream=True)
    except redis.ResponseError as exc:
        if "BUSYGROUP" not in str(exc):
            raise
    _groups_ready.add(marker)


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
_scripts: dict[int, Callable] = {}


def _script(client: redis.Redis, source: str):
    key = (id(client), hash(source))
    script = _scripts.get(key)
    if script is None:
        script = _scripts[key] = client.register_script(source)
    return script


def _dumps(value) -> str:
    return json.dumps(value, cls=DjangoJSONEncoder, separators=(",", ":"))


def content_dedup_id(body) -> str:
    return hashlib.sha256(_dumps(body).encode()).hexdigest()[:32]


def _retention_cutoff(queue: MessageQueue) -> str:
    return f"{int((time.time() - queue.message_retention) * 1000)}-0"


def _send_args(queue: MessageQueue, body, group_id, dedup_id) -> tuple[list, list]:
    encoded = _dumps(body)
    if len(encoded) > 256 * 1024:
        raise OperationError("INVALID_INPUT_DATA", "message is larger than 256 KiB", {"field": "message"})
    group = str(group_id) if group_id not in (None, "") else "default"
    if queue.deduplication and dedup_id in (None, ""):
        dedup_id = content_dedup_id(body)  # content-based deduplication, as FIFO queues do
    dedup = str(dedup_id) if (queue.deduplication and dedup_id) else ""
    keys = [stream_key(queue.name), _k(queue.name, f"dedup:{dedup}") if dedup else "",
            group_list_key(queue.name, group) if queue.ordering == MessageQueue.Ordering.FIFO else ""]
    args = [encoded, group, dedup, queue.max_messages, queue.deduplication_window, _retention_cutoff(queue)]
    return keys, args


def _check_stream(queue: MessageQueue) -> None:
    if queue.kind != MessageQueue.Kind.STREAM:
        raise OperationError("INVALID_INPUT_DATA", f"queue '{queue.name}' is the dead-letter store; it takes no "
                             "messages directly", {"field": "queue_name"})


def send(name: str, body, *, group_id=None, dedup_id=None, delay: float | None = None,
         client: redis.Redis | None = None, notify: bool = True, durable: bool = True) -> dict:
    """Put one message on a queue. Returns {message_id, deduplicated, queue, ...}.

    Durable (the default): committed to the database inbox first, so the reply means the message
    survives a Redis restart. ``durable=False`` is Redis only (internal, regenerable traffic)."""
    queue = get_queue(name)
    _check_stream(queue)
    if durable or delay:
        from workflows_app.services import inbox

        return inbox.accept(queue, body, group_id=group_id, dedup_id=dedup_id,
                            delay=float(delay) if delay else None, notify=notify)
    client = client or redis_client()
    _ensure_group(queue.name, client)
    keys, args = _send_args(queue, body, group_id, dedup_id)
    status, message_id = _script(client, _SEND)(keys=keys, args=args, client=client)
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
    the next poll regenerates them; see services.inbox). ``durable=True`` stores each in the inbox."""
    queue = get_queue(name)
    _check_stream(queue)
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
    _ensure_group(queue.name, client)
    script = _script(client, _SEND)
    pipe = client.pipeline(transaction=False)
    prepared = []
    for item in items:
        keys, args = _send_args(queue, item["body"], item.get("group_id"), item.get("dedup_id"))
        script(keys=keys, args=args, client=pipe)
        prepared.append(args)
    replies = []
    for args, (status, message_id) in zip(prepared, pipe.execute(), strict=True):
        replies.append({"queue": queue.name, "message_id": message_id or None, "deduplicated": status == 0,
                        "full": status == -1, "group_id": args[1]})
    if notify and any(r["message_id"] and not r["deduplicated"] for r in replies):
        schedule_drain(queue)
    return replies


def promote_delayed(queue: MessageQueue, client: redis.Redis | None = None) -> int:
    """Feed due delayed messages (they wait in the database inbox) onto the stream."""
    from workflows_app.services import inbox

    return inbox.replay(queue_name=queue.name, client=client)["fed"]


# --- consuming ----------------------------------------------------------------------------------
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
                "sent_at": id_time(self.id)}


def id_time(message_id: str) -> float | None:
    try:
        return int(message_id.split("-")[0]) / 1000
    except (ValueError, AttributeError):
        return None


def consumer_name() -> str:
    return f"{os.uname().nodename}:{os.getpid()}:{threading.get_ident()}"


def _parse(name: str, entries) -> list[tuple[str, dict]]:
    return [(mid, fields) for mid, fields in (entries or []) if fields is not None]


def _reclaim(queue: MessageQueue, consumer: str, count: int, client: redis.Redis) -> list[tuple[str, dict]]:
    """Claim messages idle for visibility_timeout (unacked by a consumer that gave up or died)."""
    idle_ms = int(queue.visibility_timeout * 1000)
    pending = client.xpending_range(stream_key(queue.name), GROUP, "-", "+", count, idle=idle_ms)
    if not pending:
        return []
    ids = [p["message_id"] for p in pending]
    claimed = client.xclaim(stream_key(queue.name), GROUP, consumer, idle_ms, ids)
    got = {mid for mid, fields in claimed if fields is not None}
    lost = [mid for mid in ids if mid not in got]
    # Entries trimmed away (retention) while pending: forget them.
    if lost:
        exist = {mid for mid in lost if client.xrange(stream_key(queue.name), mid, mid)}
        gone = [mid for mid in lost if mid not in exist]
        if gone:
            client.xack(stream_key(queue.name), GROUP, *gone)
            client.hdel(_k(queue.name, "deliveries"), *gone)
    return _parse(queue.name, claimed)


def _deliver(queue: MessageQueue, entries, client: redis.Redis) -> list[Message]:
    """Count a delivery of each entry; exhausted ones go to the dead-letter store instead."""
    if not entries:
        return []
    pipe = client.pipeline(transaction=False)
    for mid, _ in entries:
        pipe.hincrby(_k(queue.name, "deliveries"), mid, 1)
    counts = pipe.execute()
    from workflows_app.services import inbox

    done = inbox.final_ids([int(f["inbox"]) for _, f in entries if f.get("inbox")])
    out = []
    for (mid, fields), count in zip(entries, counts, strict=True):
        inbox_id = int(fields["inbox"]) if fields.get("inbox") else None
        if inbox_id in done:  # already handled (its Redis ack was lost, or it was fed twice): drop it
            ack(queue.name, [mid], groups={mid: fields.get("group", "default")}, inbox={}, processed=False,
                client=client)
            continue
        if count > queue.max_retries + 1:
            dead_letter(queue, mid, fields, deliveries=count - 1, client=client)
            continue
        out.append(Message(queue.name, mid, json.loads(fields["body"]), fields.get("group", "default"),
                           fields.get("dedup", ""), count, inbox_id))
    return out


def _nogroup(exc: redis.ResponseError) -> bool:
    return "NOGROUP" in str(exc)


def _forget_group(name: str, client: redis.Redis) -> None:
    """Redis lost the stream or its group (a restart without persistence, a flush): recreate it."""
    _groups_ready.discard((client.connection_pool.connection_kwargs.get("db"), name))
    _ensure_group(name, client)


def receive(name: str, *, consumer: str = "api", count: int | None = None,
            client: redis.Redis | None = None) -> list[Message]:
    """Pull up to ``count`` (default batch_size) messages; unacked ones come back after visibility_timeout."""
    client = client or redis_client()
    try:
        return _receive(name, consumer=consumer, count=count, client=client)
    except redis.ResponseError as exc:
        if not _nogroup(exc):
            raise
        _forget_group(name, client)
        return _receive(name, consumer=consumer, count=count, client=client)


def _receive(name: str, *, consumer: str, count: int | None, client: redis.Redis) -> list[Message]:
    queue = get_queue(name)
    _check_stream(queue)
    client = client or redis_client()
    _ensure_group(queue.name, client)
    count = max(1, min(int(count or queue.batch_size), 1000))
    entries = _reclaim(queue, consumer, count, client)
    if len(entries) < count:
        got = client.xreadgroup(GROUP, consumer, {stream_key(queue.name): ">"}, count=count - len(entries))
        for _stream, items in got or []:
            entries.extend(_parse(queue.name, items))
    return _deliver(queue, entries, client)


# KEYS: stream, deliveries hash, errors hash, rate bucket, processed counter, group list ('' = none), redrives
_ACK = """
local n = redis.call('XACK', KEYS[1], ARGV[1], ARGV[2])
if n == 1 then
  redis.call('XDEL', KEYS[1], ARGV[2])
  redis.call('HDEL', KEYS[2], ARGV[2])
  redis.call('HDEL', KEYS[3], ARGV[2])
  redis.call('HDEL', KEYS[7], ARGV[2])
  if ARGV[4] == '1' then
    redis.call('INCR', KEYS[4])
    redis.call('EXPIRE', KEYS[4], ARGV[3])
    redis.call('INCR', KEYS[5])
  end
end
if KEYS[6] ~= '' then redis.call('LREM', KEYS[6], 1, ARGV[2]) end
return n
"""


def _rate_key(name: str, at: float | None = None) -> str:
    return _k(name, f"rate:{int((at or time.time()) // RATE_BUCKET)}")


def ack(name: str, message_ids: list[str], *, groups: dict[str, str] | None = None,
        inbox: dict[str, int] | None = None, processed: bool = True, client: redis.Redis | None = None) -> int:
    """Acknowledge (and delete) messages. ``processed`` counts them towards processing_rate.
    ``inbox`` maps message ids to their inbox rows (read from the stream when not given); the rows
    are marked acknowledged before Redis is told."""
    from workflows_app.services import inbox as inbox_rows

    queue = get_queue(name)
    client = client or redis_client()
    if (inbox is None or groups is None) and message_ids:
        pipe = client.pipeline(transaction=False)
        for mid in message_ids:
            pipe.xrange(stream_key(queue.name), mid, mid)
        found = {entry[0][0]: entry[0][1] for entry in pipe.execute() if entry}
        if groups is None:
            groups = {mid: fields.get("group", "default") for mid, fields in found.items()}
        if inbox is None:
            inbox = {mid: int(fields["inbox"]) for mid, fields in found.items() if fields.get("inbox")}
    if processed and inbox:
        inbox_rows.mark(list(inbox.values()), "acked")
    script = _script(client, _ACK)
    pipe = client.pipeline(transaction=False)
    for mid in message_ids:
        group = (groups or {}).get(mid)
        keys = [stream_key(queue.name), _k(queue.name, "deliveries"), _k(queue.name, "errors"), _rate_key(queue.name),
                _k(queue.name, "processed"),
                group_list_key(queue.name, group) if group and queue.ordering == MessageQueue.Ordering.FIFO else "",
                _k(queue.name, "redrives")]
        script(keys=keys, args=[GROUP, mid, RATE_WINDOW * 10, "1" if processed else "0"], client=pipe)
    return sum(int(n) for n in pipe.execute())


def record_failure(queue: MessageQueue, message_id: str, exc: BaseException, client: redis.Redis) -> str:
    info = registry.classify_error(exc)
    client.hset(_k(queue.name, "errors"), message_id,
                _dumps({"error_class": info.error_class, "error": str(exc)[:2000], "at": time.time()}))
    return info.error_class


def dead_letter(queue: MessageQueue, message_id: str, fields: dict, *, deliveries: int,
                client: redis.Redis | None = None, error_class: str | None = None, error: str | None = None) -> DeadLetter:
    """Move a message to the dead-letter store (a DeadLetter row) and off the stream."""
    client = client or redis_client()
    raw_error = client.hget(_k(queue.name, "errors"), message_id)
    last = json.loads(raw_error) if raw_error else {}
    error_class = error_class or last.get("error_class") or "max_retries_exceeded"
    error = error or last.get("error") or (
        f"not acknowledged after {deliveries} deliveries (max_retries {queue.max_retries}, "
        f"visibility_timeout {queue.visibility_timeout:g}s)")
    try:
        body = json.loads(fields.get("body", "null"))
    except ValueError:
        body = fields.get("body")
    payload = {"message_id": message_id, "body": body, "group_id": fields.get("group", "default"),
               "deduplication_id": fields.get("dedup") or None, "deliveries": deliveries,
               "sent_at": id_time(message_id)}
    from workflows_app.services import inbox

    inbox_id = int(fields["inbox"]) if fields.get("inbox") else None
    redrives = inbox.redrives(inbox_id)
    if redrives is None:
        redrives = int(client.hget(_k(queue.name, "redrives"), message_id) or 0)
    letter = DeadLetter.objects.create(source="queue", queue_name=queue.name, error_class=error_class[:100],
                                       error=error, payload=payload, attempts=max(deliveries, 1),
                                       workflow_id=queue.workflow_id, redrive_count=redrives)
    if inbox_id:
        inbox.mark([inbox_id], "dead_lettered")
    client.hdel(_k(queue.name, "redrives"), message_id)
    audit.record("message_dead_lettered", workflow_id=queue.workflow_id, queue=queue.name, message_id=message_id,
                 dead_letter_id=str(letter.id), error_class=letter.error_class, deliveries=deliveries)
    ack(queue.name, [message_id], groups={message_id: fields.get("group", "default")}, inbox={}, processed=False,
        client=client)
    client.incr(_k(queue.name, "dead_lettered"))
    return letter


# --- push consumers -----------------------------------------------------------------------------
QUEUE_HANDLERS: dict[str, Callable[[Message], object]] = {}


def register_queue_handler(name: str, handler: Callable[[Message], object]) -> None:
    """A push consumer: queues whose ``handler`` names it are drained by workers through it."""
    QUEUE_HANDLERS[name] = handler


def handler_for(queue: MessageQueue) -> Callable[[Message], object] | None:
    if queue.handler:
        return QUEUE_HANDLERS.get(queue.handler)
    if queue.workflow_id:
        return _start_workflow
    return None


def _start_workflow(message: Message) -> None:
    from workflows_app.engine import start_execution
    from workflows_app.models import Workflow

    queue = get_queue(message.queue)
    workflow = Workflow.objects.select_related("current_version").get(pk=queue.workflow_id)
    if workflow.status != Workflow.Status.ACTIVE:
        raise StepError(f"workflow {workflow.name} is {workflow.status}", error_class="workflow_inactive")
    event = {"kind": "queue_message", "queue": message.queue, "message_id": message.id, "body": message.body,
             "group_id": message.group_id}
    body = message.body if isinstance(message.body, dict) else {"message": message.body}
    start_execution(workflow, {**body, "queue_message": event}, trigger="queue", trigger_event=event)


def schedule_drain(queue: MessageQueue) -> None:
    """Ask a worker to drain the queue, unless a drain is already scheduled (one flag per queue)."""
    if handler_for(queue) is None:
        return
    if not redis_client().set(_k(queue.name, "drain"), 1, nx=True, ex=max(5, int(queue.visibility_timeout))):
        return
    from workflows_app import event_tasks

    name = queue.name

    def dispatch():
        event_tasks.drain_queue.delay(name)

    if transaction.get_connection().in_atomic_block:
        transaction.on_commit(dispatch)
    else:
        dispatch()


def _turns(queue: MessageQueue, messages: list[Message], client: redis.Redis) -> list[int | None]:
    """Each message's position in its group's list (None: not tracked), in one round trip."""
    pipe = client.pipeline(transaction=False)
    for message in messages:
        pipe.lpos(group_list_key(queue.name, message.group_id), message.id)
    return pipe.execute()


def _wait_for_turn(queue: MessageQueue, message: Message, accepted: set[str], client: redis.Redis,
                   max_wait: float) -> bool:
    """FIFO: wait until every earlier message of the group is acked or accepted by this consumer.

    Gives up at once when an earlier message has been idle for visibility_timeout (its consumer
    failed or died): that one is reclaimed and retried first, by the next receive."""
    key = group_list_key(queue.name, message.group_id)
    deadline = time.monotonic() + max_wait
    idle_limit = int(queue.visibility_timeout * 1000)
    pause = 0.002
    while True:
        pos = client.lpos(key, message.id)
        if not pos:
            return True
        blockers = [mid for mid in client.lrange(key, 0, pos - 1) if mid not in accepted]
        if not blockers:
            return True
        gone = [mid for mid in blockers if not client.xrange(stream_key(queue.name), mid, mid)]
        for mid in gone:  # trimmed or deleted without an ack: not a blocker
            client.lrem(key, 1, mid)
        if gone:
            continue
        pending = client.xpending_range(stream_key(queue.name), GROUP, blockers[0], blockers[0], 1)
        if pending and pending[0]["time_since_delivered"] >= idle_limit:
            return False  # abandoned: reclaim it before anything later in its group
        if time.monotonic() > deadline:
            return False
        time.sleep(pause)
        pause = min(pause * 2, 0.05)


def _runnable(queue: MessageQueue, messages: list[Message], client: redis.Redis) -> list[Message]:
    """The messages of a batch this consumer may run now, in order (FIFO gating per group). The
    others stay unacked and come back after the visibility timeout, behind their group's head."""
    if queue.ordering != MessageQueue.Ordering.FIFO:
        return messages
    positions = _turns(queue, messages, client)
    accepted: set[str] = set()
    per_group: dict[str, int] = {}
    blocked: set[str] = set()
    out = []
    for message, pos in zip(messages, positions, strict=True):
        group = message.group_id
        if group in blocked:
            continue
        # Fast path: everything ahead of it in its group is already accepted in this batch.
        ready = pos is None or pos == per_group.get(group, 0)
        if not ready:
            ready = _wait_for_turn(queue, message, accepted, client, max_wait=min(queue.visibility_timeout, 30))
        if not ready:
            blocked.add(group)  # keep the group's order: it comes back after the visibility timeout
            continue
        accepted.add(message.id)
        per_group[group] = per_group.get(group, 0) + 1
        out.append(message)
    return out


def _fail(queue: MessageQueue, message: Message, exc: BaseException, client: redis.Redis) -> None:
    error_class = record_failure(queue, message.id, exc, client)
    log.warning("queue %s: message %s failed (%s): %s", queue.name, message.id, error_class, exc)
    if isinstance(exc, StepError) and not exc.transient:
        fields = {"body": _dumps(message.body), "group": message.group_id, "dedup": message.deduplication_id}
        dead_letter(queue, message.id, fields, deliveries=message.delivery_count, client=client)


def process(name: str, handler: Callable[[Message], object] | None = None, *, consumer: str | None = None,
            max_batches: int = 50, time_budget: float = 10.0, client: redis.Redis | None = None) -> dict:
    """Drain a queue through its handler: batches of batch_size, in group order, acked on success.

    A handler that raises leaves its message unacked: it becomes visible again after
    visibility_timeout and, once its deliveries are used up, goes to the dead-letter store.
    A ``PermanentStepError`` (any non-transient StepError) dead-letters it at once. A handler with
    ``batch = True`` gets the whole runnable batch (a list) at once."""
    queue = get_queue(name)
    handler = handler or handler_for(queue)
    if handler is None:
        return {"processed": 0, "failed": 0, "batches": 0, "deferred": 0}
    client = client or redis_client()
    consumer = consumer or consumer_name()
    processed = failed = batches = deferred = 0
    started = time.monotonic()
    while batches < max_batches and time.monotonic() - started < time_budget:
        messages = receive(queue.name, consumer=consumer, count=queue.batch_size, client=client)
        if not messages:
            break
        batches += 1
        runnable = _runnable(queue, messages, client)
        deferred += len(messages) - len(runnable)
        done: list[Message] = []
        if getattr(handler, "batch", False):
            try:
                handler(runnable)
                done = runnable
            except Exception as exc:  # noqa: BLE001 - the batch's failure, not the worker's
                failed += len(runnable)
                for message in runnable:
                    _fail(queue, message, exc, client)
        else:
            failed_groups: set[str] = set()
            for message in runnable:
                if message.group_id in failed_groups:
                    continue
                try:
                    handler(message)
                except Exception as exc:  # noqa: BLE001 - any handler failure is the message's
                    failed += 1
                    _fail(queue, message, exc, client)
                    failed_groups.add(message.group_id)
                    continue
                done.append(message)
        if done:
            ack(queue.name, [m.id for m in done], groups={m.id: m.group_id for m in done},
                inbox={m.id: m.inbox_id for m in done if m.inbox_id}, client=client)
            processed += len(done)
        if len(messages) < queue.batch_size:
            break
    if batches:
        compact(queue, client)
    return {"processed": processed, "failed": failed, "batches": batches, "deferred": deferred}


# --- housekeeping -------------------------------------------------------------------------------
def compact(queue: MessageQueue, client: redis.Redis | None = None) -> None:
    """Acked messages are XDEL'ed, which leaves tombstones in the stream's nodes until they are
    trimmed: drop every node before the first live message (reads stay fast)."""
    client = client or redis_client()
    key = stream_key(queue.name)
    first = client.xrange(key, "-", "+", count=1)
    # a message sent meanwhile has a newer id than both bounds: never trimmed here
    bound = first[0][0] if first else f"{int(time.time() * 1000) - 1000}-0"
    client.xtrim(key, minid=bound, approximate=True)


def trim(queue: MessageQueue, client: redis.Redis | None = None) -> int:
    """Drop messages older than message_retention (exact XTRIM MINID)."""
    client = client or redis_client()
    return int(client.xtrim(stream_key(queue.name), minid=_retention_cutoff(queue), approximate=False) or 0)


def sweep(name: str | None = None) -> dict:
    """Promote due delayed messages, apply retention, dead-letter exhausted unacked messages of
    pull queues, and ask a worker to drain push queues that have work."""
    from workflows_app.services import inbox

    client = redis_client()
    report = {}
    if client.set("nexus:inbox:prune", 1, nx=True, ex=60):  # retention of inbox rows and guards, once a minute
        report["_inbox_pruned"] = inbox.prune()
    replayed = inbox.replay(queue_name=name, client=client)  # re-feed what Redis lost, feed due delayed ones
    if replayed["fed"]:
        report["_inbox_fed"] = replayed["fed"]
    queues = [get_queue(name)] if name else list(MessageQueue.objects.filter(kind=MessageQueue.Kind.STREAM))
    for queue in queues:
        if queue.kind != MessageQueue.Kind.STREAM:
            continue
        try:
            client.xinfo_groups(stream_key(queue.name))
        except redis.ResponseError:
            _forget_group(queue.name, client)  # the stream is gone (Redis flushed / restarted empty)
        promoted = 0  # delayed messages wait in the inbox: inbox.replay() above fed the due ones
        trimmed = trim(queue, client)
        compact(queue, client)
        exhausted = 0
        idle_ms = int(queue.visibility_timeout * 1000)
        pending = client.xpending_range(stream_key(queue.name), GROUP, "-", "+", 100, idle=idle_ms)
        for entry in pending:
            deliveries = int(client.hget(_k(queue.name, "deliveries"), entry["message_id"]) or 0)
            if deliveries >= queue.max_retries + 1:
                claimed = client.xclaim(stream_key(queue.name), GROUP, "sweeper", idle_ms, [entry["message_id"]])
                if claimed and claimed[0][1] is not None:
                    dead_letter(queue, claimed[0][0], claimed[0][1], deliveries=deliveries, client=client)
                    exhausted += 1
        if handler_for(queue) is not None and (pending or client.xlen(stream_key(queue.name))):
            client.delete(_k(queue.name, "drain"))
            schedule_drain(queue)
        report[queue.name] = {"promoted": promoted, "trimmed": trimmed, "dead_lettered": exhausted}
    return report


# --- status -------------------------------------------------------------------------------------
def processing_rate(name: str, client: redis.Redis | None = None) -> float:
    """Messages acknowledged per minute over the last minute (counted at each ack)."""
    client = client or redis_client()
    now = time.time()
    current = int(now // RATE_BUCKET)
    buckets = RATE_WINDOW // RATE_BUCKET
    keys = [_k(name, f"rate:{b}") for b in range(current - buckets, current + 1)]
    total = sum(int(v or 0) for v in client.mget(keys))
    elapsed = RATE_WINDOW + (now - current * RATE_BUCKET)
    return round(total / elapsed * 60, 2)


def _stream_status(queue: MessageQueue, client: redis.Redis, include_messages: bool, limit: int) -> dict:
    _ensure_group(queue.name, client)
    key = stream_key(queue.name)
    pipe = client.pipeline(transaction=False)
    pipe.xlen(key)
    pipe.xpending(key, GROUP)
    pipe.xrange(key, "-", "+", count=1)
    pipe.get(_k(queue.name, "processed"))
    pipe.xinfo_consumers(key, GROUP)
    pipe.hlen(_k(queue.name, "errors"))
    length, pending, first, processed, consumers, failing = pipe.execute()
    from workflows_app.services import inbox

    delayed = inbox.delayed_count(queue.name)
    in_flight = int(pending["pending"]) if pending else 0
    oldest = id_time(first[0][0]) if first else None
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
        in_flight_info = {p["message_id"]: p for p in client.xpending_range(key, GROUP, "-", "+", limit)}
        deliveries = client.hgetall(_k(queue.name, "deliveries"))
        messages = []
        for mid, fields in client.xrange(key, "-", "+", count=limit):
            try:
                body = json.loads(fields.get("body", "null"))
            except ValueError:
                body = fields.get("body")
            info = in_flight_info.get(mid)
            messages.append({"message_id": mid, "body": body, "group_id": fields.get("group"),
                             "state": "in_flight" if info else "available",
                             "age": round(time.time() - (id_time(mid) or time.time()), 3),
                             "delivery_count": int(deliveries.get(mid, 0)),
                             "consumer": info["consumer"] if info else None})
        reply["messages"] = messages
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
            if not _nogroup(exc):
                raise
            _forget_group(queue.name, client)
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


# --- redrive (dead letters with source "queue") -------------------------------------------------
def redrive(letter: DeadLetter) -> dict:
    """Put a dead-lettered message back on its queue (a new durable message, deduplication bypassed)."""
    from workflows_app.services import inbox

    queue = get_queue(letter.queue_name)
    payload = letter.payload or {}
    reply = inbox.accept(queue, payload.get("body"), group_id=payload.get("group_id"),
                         dedup_id=payload.get("deduplication_id"), dedup=False, redrives=letter.redrive_count + 1)
    return {"queue": queue.name, "message_id": reply["message_id"], "inbox_id": reply["inbox_id"]}


# --- public names for services.inbox ------------------------------------------------------------
def prepare(queue: MessageQueue, body, group_id, dedup_id) -> tuple[str, str, str]:
    """(encoded body, message group, deduplication id or '') as send would use them."""
    keys, args = _send_args(queue, body, group_id, dedup_id)
    return args[0], args[1], args[2]


script, dumps, ensure_group, retention_cutoff = _script, _dumps, _ensure_group, _retention_cutoff
