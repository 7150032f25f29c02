"""Queue configuration: the database side of creating or reconfiguring a named queue."""
from __future__ import annotations

from workflows_app import audit
from workflows_app.errors import OperationError
from workflows_app.models import MessageQueue


def configure_queue(name: str, values: dict, workflow=None) -> tuple[MessageQueue, bool]:
    """Create queue `name` or change its settings (the checked queue_config fields); the
    dead-letter store keeps its kind. Returns (queue, created)."""
    values = {**values, "ordering": MessageQueue.Ordering(values.get("ordering", MessageQueue.Ordering.FIFO))}
    if workflow is not None:
        values["workflow"] = workflow
    existing = MessageQueue.objects.filter(name=name).first()
    if existing is not None and existing.kind != MessageQueue.Kind.STREAM:
        raise OperationError("CONFLICT", f"queue '{name}' is the dead-letter store", {"field": "name"})
    queue, created = MessageQueue.objects.update_or_create(name=name, defaults=values)
    audit.record("queue_created" if created else "queue_updated", queue=name, config=queue.config())
    return queue, created
