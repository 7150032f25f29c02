"""The append-only audit trail and the dead-letter store."""
from __future__ import annotations

import uuid

from django.db import models


class AuditEventQuerySet(models.QuerySet):
    def update(self, **kwargs):
        raise TypeError("the audit trail is append-only")

    def delete(self):
        raise TypeError("the audit trail is append-only")


class AuditEvent(models.Model):
    timestamp = models.DateTimeField(auto_now_add=True, db_index=True)
    event = models.CharField(max_length=50)
    workflow = models.ForeignKey(
        "workflows_app.Workflow", null=True, blank=True, on_delete=models.SET_NULL, related_name="audit_events"
    )
    execution = models.ForeignKey(
        "workflows_app.Execution", null=True, blank=True, on_delete=models.SET_NULL, related_name="audit_events"
    )
    step = models.CharField(max_length=100, blank=True, default="")
    data = models.JSONField(default=dict, blank=True)

    objects = AuditEventQuerySet.as_manager()

    class Meta:
        ordering = ["timestamp", "id"]
        indexes = [
            models.Index(fields=["execution", "timestamp"]),
            models.Index(fields=["workflow", "timestamp"]),
            models.Index(fields=["event", "timestamp"]),
        ]

    def __str__(self) -> str:
        return f"{self.timestamp:%Y-%m-%d %H:%M:%S} {self.event} {self.step}"

    def save(self, *args, **kwargs):
        if self.pk is not None:
            raise TypeError("the audit trail is append-only")
        super().save(*args, **kwargs)

    def delete(self, *args, **kwargs):
        raise TypeError("the audit trail is append-only")


class DeadLetter(models.Model):
    class Status(models.TextChoices):
        PENDING = "pending"
        RETRY_SCHEDULED = "retry_scheduled"
        REDRIVEN = "redriven"
        DISCARDED = "discarded"
        ALERTED = "alerted"

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    # "step" for a failed workflow step, "queue" for a message from a named queue.
    source = models.CharField(max_length=16, default="step")
    queue_name = models.CharField(max_length=100, blank=True, default="")
    workflow = models.ForeignKey(
        "workflows_app.Workflow", null=True, blank=True, on_delete=models.SET_NULL, related_name="dead_letters"
    )
    execution = models.ForeignKey(
        "workflows_app.Execution", null=True, blank=True, on_delete=models.SET_NULL, related_name="dead_letters"
    )
    step_name = models.CharField(max_length=100, blank=True, default="")
    error_class = models.CharField(max_length=100, db_index=True)
    error = models.TextField(blank=True, default="")
    traceback = models.TextField(blank=True, default="")
    payload = models.JSONField(default=dict, blank=True)
    attempts = models.PositiveIntegerField(default=1)
    status = models.CharField(max_length=20, choices=Status.choices, default=Status.PENDING)
    redrive_count = models.PositiveIntegerField(default=0)
    next_attempt_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["-created_at"]
        indexes = [
            models.Index(fields=["status", "created_at"]),
            models.Index(fields=["queue_name", "status"]),
        ]

    def __str__(self) -> str:
        return f"{self.error_class}: {self.step_name or self.queue_name}"
