"""Named message queues: their configuration (messages live in Redis Streams) and the durable inbox
of the messages accepted for callers (``InboxMessage``, which the streams are fed from).

The settings are the specification's ``queue_config``; every one takes effect in
the ``workflows_app.queues`` package.
"""
from __future__ import annotations

from django.core.validators import MaxValueValidator, MinValueValidator, RegexValidator
from django.db import models

QUEUE_NAME_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.\-]{0,99}$"


class MessageQueue(models.Model):
    class Ordering(models.TextChoices):
        FIFO = "FIFO"  # in order within a message group, one group member in flight at a time
        STANDARD = "standard"  # best effort order, any number in flight

    class Kind(models.TextChoices):
        STREAM = "stream"  # a Redis stream with a consumer group
        DEAD_LETTER = "dead_letter"  # a view over the dead-letter store (DeadLetter rows)

    name = models.CharField(max_length=100, unique=True, validators=[RegexValidator(QUEUE_NAME_PATTERN)])
    description = models.CharField(max_length=300, blank=True, default="")
    kind = models.CharField(max_length=16, choices=Kind.choices, default=Kind.STREAM)
    max_retries = models.PositiveIntegerField(default=3, validators=[MaxValueValidator(100)],
                                              help_text="Deliveries beyond 1 + max_retries go to the dead-letter store.")
    visibility_timeout = models.FloatField(default=30, validators=[MinValueValidator(0.1), MaxValueValidator(43_200)],
                                           help_text="Seconds an unacknowledged message stays invisible.")
    message_retention = models.PositiveIntegerField(default=86_400, validators=[MinValueValidator(1)],
                                                    help_text="Seconds a message is kept (XTRIM MINID).")
    batch_size = models.PositiveIntegerField(default=10, validators=[MinValueValidator(1), MaxValueValidator(1000)])
    ordering = models.CharField(max_length=16, choices=Ordering.choices, default=Ordering.FIFO)
    deduplication = models.BooleanField(default=True)
    deduplication_window = models.PositiveIntegerField(default=300, validators=[MinValueValidator(1)],
                                                       help_text="Seconds a deduplication id is remembered.")
    max_messages = models.PositiveIntegerField(default=100_000, validators=[MinValueValidator(1)],
                                               help_text="Capacity: sending to a full queue is refused (QUEUE_FULL).")
    # Push consumers: a registered handler name (e.g. "events"), or a workflow started per message.
    handler = models.CharField(max_length=100, blank=True, default="")
    workflow = models.ForeignKey("workflows_app.Workflow", null=True, blank=True, on_delete=models.SET_NULL,
                                 related_name="consumed_queues")
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name

    def config(self) -> dict:
        return {
            "name": self.name, "max_retries": self.max_retries, "visibility_timeout": self.visibility_timeout,
            "message_retention": self.message_retention, "batch_size": self.batch_size, "ordering": self.ordering,
            "deduplication": self.deduplication, "deduplication_window": self.deduplication_window,
            "max_messages": self.max_messages, "kind": self.kind, "handler": self.handler or None,
            "workflow_id": str(self.workflow_id) if self.workflow_id else None,
        }


class InboxMessage(models.Model):
    """A named-queue message accepted for a caller (queue_send, event_ingest, POST /api/v1/events/,
    webhooks). The row is committed before the caller hears "accepted"; the Redis stream is fed from
    it on commit and re-fed after Redis lost it (a new Redis ``epoch``). Acknowledgement and
    dead-lettering mark it; ``queues.inbox.prune`` deletes it after the queue's retention."""

    class State(models.TextChoices):
        PENDING = "pending"  # accepted; in the stream (or to be fed into it) and not yet acknowledged
        ACKED = "acked"
        DEAD_LETTERED = "dead_lettered"
        EXPIRED = "expired"  # older than the queue's message_retention without an ack (like XTRIM)

    queue_name = models.CharField(max_length=100)
    body = models.JSONField()
    group_id = models.CharField(max_length=100, default="default")
    dedup_id = models.CharField(max_length=200, blank=True, default="")
    state = models.CharField(max_length=16, choices=State.choices, default=State.PENDING)
    available_at = models.DateTimeField(null=True, blank=True, help_text="Delayed until (null: at once).")
    # Where it was last fed: the stream entry id, in the Redis whose epoch token is `epoch`.
    message_id = models.CharField(max_length=64, blank=True, default="")
    epoch = models.CharField(max_length=64, blank=True, default="")
    redrives = models.PositiveIntegerField(default=0)
    created_at = models.DateTimeField(auto_now_add=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        indexes = [models.Index(fields=["state", "epoch"], name="inbox_state_epoch"),
                   models.Index(fields=["queue_name", "created_at"], name="inbox_queue_created"),
                   models.Index(fields=["queue_name", "dedup_id"], name="inbox_queue_dedup")]

    def __str__(self) -> str:
        return f"{self.queue_name}#{self.pk} ({self.state})"
