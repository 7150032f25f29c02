"""How a queue lives in Redis: key names, the consumer group, the Lua scripts, message encoding,
and the Redis half of an acknowledgement. No database access here.

One stream per queue (``nexus:q:<name>:stream``) with one consumer group (``GROUP``); beside it a
deliveries hash, a last-error hash, per-group lists (FIFO), dedup keys, rate buckets and counters.
"""
from __future__ import annotations

import hashlib
import time
from dataclasses import dataclass

import redis

from workflows_app import codec
from workflows_app.circuit import redis_client
from workflows_app.errors import OperationError
from workflows_app.models import MessageQueue
from workflows_app.queues import scripts

GROUP = "nexus"
RATE_BUCKET = 10  # seconds per processing-rate bucket
RATE_WINDOW = 60  # processing_rate is measured over the last minute (messages/minute)
MAX_MESSAGE_BYTES = 256 * 1024


# --- keys ---------------------------------------------------------------------------------------
def key(name: str, part: str) -> str:
    return f"nexus:q:{name}:{part}"


def stream_key(name: str) -> str:
    return key(name, "stream")


def group_list_key(name: str, group: str) -> str:
    return key(name, f"grp:{group}")


def fed_key(name: str, inbox_id) -> str:
    return key(name, f"fed:{inbox_id}")


def rate_key(name: str, at: float | None = None) -> str:
    return key(name, f"rate:{int((at or time.time()) // RATE_BUCKET)}")


# --- the consumer group -------------------------------------------------------------------------
_groups_ready: set[tuple[str, str]] = set()


def ensure_group(name: str, client: redis.Redis | None = None) -> None:
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


def is_nogroup(exc: redis.ResponseError) -> bool:
    return "NOGROUP" in str(exc)


def forget_group(name: str, client: redis.Redis) -> None:
    """Redis lost the stream or its group (a restart without persistence, a flush): recreate it."""
    _groups_ready.discard((client.connection_pool.connection_kwargs.get("db"), name))
    ensure_group(name, client)


# --- scripts ------------------------------------------------------------------------------------
def script(client: redis.Redis, source: str):
    """The registered script for this client (registered once per client and source)."""
    return scripts._script(client, source)


# --- encoding -----------------------------------------------------------------------------------
def dumps(value) -> str:
    return codec.dumps(value)


def loads(text):
    return codec.loads(text)


def content_dedup_id(body) -> str:
    return hashlib.sha256(dumps(body).encode()).hexdigest()[:32]


def retention_cutoff(queue: MessageQueue) -> str:
    """The stream id before which messages are past message_retention (for XTRIM MINID)."""
    return f"{int((time.time() - queue.message_retention) * 1000)}-0"


def id_time(message_id: str) -> float | None:
    try:
        return int(message_id.split("-")[0]) / 1000
    except (ValueError, AttributeError):
        return None


def prepare(queue: MessageQueue, body, group_id, dedup_id) -> tuple[str, str, str]:
    """(encoded body, message group, deduplication id or '') of a message for this queue."""
    encoded = dumps(body)
    if len(encoded) > MAX_MESSAGE_BYTES:
        raise OperationError("INVALID_INPUT_DATA", "message is larger than 256 KiB", {"field": "message"})
    group = str(group_id) if group_id not in (None, "") else "default"
    if queue.deduplication and dedup_id in (None, ""):
        dedup_id = content_dedup_id(body)  # content-based deduplication, as FIFO queues do
    dedup = str(dedup_id) if (queue.deduplication and dedup_id) else ""
    return encoded, group, dedup


def decode_body(fields: dict):
    """A stream entry's body (the raw text if it is not JSON)."""
    try:
        return codec.loads(fields.get("body", "null"))
    except ValueError:
        return fields.get("body")


# --- the Redis half of an acknowledgement, and the next receive -----------------------------------
Entry = tuple[str, dict, int, int | None]  # stream id, fields, deliveries counted, FIFO position


@dataclass
class Cycled:
    acked: int  # how many of the acknowledged messages were pending
    positions: list[int | None]  # FIFO positions of the messages asked about (None: not listed)
    entries: list[Entry]  # the messages received
    after: list  # the replies of the commands queued after the script


def cycle(queue: MessageQueue, acks: list[tuple[str, str]], *, count: int = 0, consumer: str = "",
          processed: bool = True, positions_of: list[tuple[str, str]] = (), received_positions: bool = True,
          client: redis.Redis, before=None, after=None) -> Cycled:
    """One round trip (``scripts.CYCLE``): acknowledge ``acks`` [(message id, its group or '')] -
    XACK, and for those that were pending XDEL, drop their bookkeeping, count them when
    ``processed`` - then report the FIFO positions of ``positions_of`` (a batch about to run) and
    receive up to ``count`` messages for ``consumer`` (with their positions when
    ``received_positions``). ``before(pipeline)`` / ``after(pipeline)`` queue commands Redis runs
    just before / after the script, in the same round trip."""
    fifo = queue.ordering == MessageQueue.Ordering.FIFO
    keys = [stream_key(queue.name), key(queue.name, "deliveries"), key(queue.name, "errors"),
            key(queue.name, "redrives"), rate_key(queue.name), key(queue.name, "processed")]
    args = [GROUP, consumer, int(count), int(queue.visibility_timeout * 1000),
            group_list_key(queue.name, "") if fifo else "", RATE_WINDOW * 10, "1" if processed else "0",
            "1" if received_positions else "0", codec.dumps([[m, g or ""] for m, g in acks]),
            codec.dumps([[m, g or ""] for m, g in positions_of])]
    if before is None and after is None:
        reply, after_replies = scripts.run(client, scripts.CYCLE, keys, args), []
    else:
        reply, after_replies = scripts.run_between(client, scripts.CYCLE, keys, args, before=before, after=after)
    acked, asked, received = codec.loads(reply)
    # (Lua's cjson writes an empty list as {})
    positions = [None if p < 0 else p for p in asked or ()]
    entries = [(mid, dict(zip(flat[::2], flat[1::2], strict=True)), deliveries, None if position < 0 else position)
               for mid, flat, deliveries, position in received or ()]
    return Cycled(acked, positions, entries, after_replies)


def ack_in_redis(queue: MessageQueue, message_ids: list[str], groups: dict[str, str] | None, *, processed: bool,
                 client: redis.Redis) -> int:
    """XACK + XDEL each message, drop its bookkeeping and its place in its FIFO group; ``processed``
    counts it towards processing_rate and messages_processed. Returns how many were pending."""
    if not message_ids:
        return 0
    acks = [(mid, (groups or {}).get(mid) or "") for mid in message_ids]
    return cycle(queue, acks, processed=processed, client=client).acked
