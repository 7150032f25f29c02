"""Named message queues on Redis Streams, fed from a durable database inbox.

The public front; the modules behind it, each one concern (lower layers never import higher ones):

- ``config``: queue definitions, the registered default queues, the cached ``get_queue``
- ``scripts``: the hot path's Lua (a batch sent, a batch acknowledged + the next received: one
  round trip each) and how they ride on a pipeline with a handler's writes and reads
- ``layout``: the Redis layout of a queue (keys, consumer group, encoding, Redis-side ack + receive)
- ``handlers``: which handler drains a queue (``registry.queue_handlers``), ``schedule_drain``
- ``inbox``: accepted means durable (rows, Guard dedup, epochs, replay after Redis loss)
- ``dead_letters``: failures, the move to the dead-letter store, redrive
- ``streams``: send (XADD, dedup, FIFO lists), receive (reclaim + XREADGROUP), ack
- ``maintenance``: the sweep (retention, compaction, exhausted messages, waking consumers)
- ``status``: the figures of ``workflow_queue_status``
- ``consumers``: ``process``, draining a queue through its handler in group order, one round trip
  per batch (``Drain``: acknowledging one batch, reading ahead for the next, receiving the one after)

Handlers and default queues are plugged in through the registry
(declared by each app's plugin: ``queue_handlers``, ``default_queues``).
"""
from workflows_app.queues import inbox
from workflows_app.queues.config import DEAD_LETTER_QUEUE, ensure_default_queues, get_queue
from workflows_app.queues.consumers import process
from workflows_app.queues.dead_letters import redrive
from workflows_app.queues.handlers import clear_drain_flag, schedule_drain
from workflows_app.queues.layout import GROUP, stream_key
from workflows_app.queues.maintenance import sweep
from workflows_app.queues.status import status
from workflows_app.queues.streams import Message, ack, receive, send, send_many

__all__ = [
    "DEAD_LETTER_QUEUE", "GROUP", "Message", "ack", "clear_drain_flag", "ensure_default_queues", "get_queue",
    "inbox", "process", "receive", "redrive", "schedule_drain", "send", "send_many", "status",
    "stream_key", "sweep",
]
