"""Queue definitions: the specification's settings, the queues that exist from the start, and the
cached lookup every send and receive begins with.

The default queues are whatever the apps registered (``registry.default_queues``): the engine its
``events`` queue and the dead-letter view, each domain its own. They are created on first use (or
by ``ensure_default_queues``) with ``SPEC_CONFIG`` plus what was registered; existing settings are
never overwritten.
"""
from __future__ import annotations

import time

from django.db.models.signals import post_delete, post_save

from workflows_app.errors import OperationError
from workflows_app.models import MessageQueue
from workflows_app.registry import registry

DEAD_LETTER_QUEUE = "dead-letter-queue"
SPEC_CONFIG = {"max_retries": 3, "visibility_timeout": 30, "message_retention": 86_400, "batch_size": 10,
               "ordering": "FIFO", "deduplication": True}
CONFIG_TTL = 5.0  # seconds a looked-up configuration is reused (a send must not cost a database query)

_cache: dict[str, tuple[float, MessageQueue]] = {}


def ensure_default_queues() -> list[MessageQueue]:
    """Create the registered default queues (idempotent; existing settings are kept)."""
    out = []
    for name, extra in registry.default_queues.items():
        queue, _ = MessageQueue.objects.get_or_create(name=name, defaults={**SPEC_CONFIG, **extra})
        out.append(queue)
    return out


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
    if queue is None and name in registry.default_queues:
        ensure_default_queues()  # the system's own queues exist even before load_examples ran
        queue = MessageQueue.objects.filter(name=name).first()
    if queue is None:
        raise OperationError("QUEUE_NOT_FOUND", f"no queue named '{name}'", {"field": "queue_name"})
    _cache[name] = (time.monotonic() + CONFIG_TTL, queue)
    return queue


def check_stream(queue: MessageQueue) -> None:
    """Refuse direct traffic to the dead-letter view (it is a view of DeadLetter rows, not a stream)."""
    if queue.kind != MessageQueue.Kind.STREAM:
        raise OperationError("INVALID_INPUT_DATA", f"queue '{queue.name}' is the dead-letter store; it takes no "
                             "messages directly", {"field": "queue_name"})
