"""Outbound notifications: one delivery per (notification, channel), one attempt row per try.

A delivery is accepted when its row is committed; Redis only carries the message that asks a worker
to send it (the maintenance sweep re-sends the message when it was lost). Its status guards the
send: a delivery that succeeded is never posted again, whatever number of messages arrive for it.
"""
from __future__ import annotations

import uuid

from django.db import models


class NotificationDelivery(models.Model):
    class Status(models.TextChoices):
        PENDING = "pending"  # waiting for its (next) attempt at next_attempt_at
        SENDING = "sending"  # a worker holds it until lease_until
        SUCCESS = "success"
        FAILED = "failed"  # every attempt failed (or the channel is gone); retry re-opens it
        SKIPPED = "skipped"  # test mode: recorded, never sent

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    kind = models.CharField(max_length=100)
    channel = models.CharField(max_length=100)
    channel_format = models.CharField(max_length=16)
    # Set by callers that may run twice (a step retried): the same key and channel is one delivery.
    key = models.CharField(max_length=255, null=True, blank=True)  # noqa: DJ001 - NULLs never collide
    execution = models.ForeignKey("workflows_app.Execution", null=True, blank=True, on_delete=models.SET_NULL,
                                  related_name="notification_deliveries")
    payload = models.JSONField(default=dict, blank=True)
    body = models.TextField(help_text="The exact request body, rendered (and bounded) when accepted.")
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.PENDING)
    attempts = models.PositiveIntegerField(default=0)
    max_attempts = models.PositiveIntegerField(default=5)
    next_attempt_at = models.DateTimeField()
    lease_until = models.DateTimeField(null=True, blank=True)
    last_error = models.CharField(max_length=500, blank=True, default="")
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)
    delivered_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at"]
        constraints = [models.UniqueConstraint(fields=["key", "channel"], name="notification_key_channel")]
        indexes = [models.Index(fields=["status", "next_attempt_at"], name="notification_due"),
                   models.Index(fields=["kind", "-created_at"], name="notification_kind")]

    def __str__(self) -> str:
        return f"{self.kind} -> {self.channel} ({self.status})"


class NotificationAttempt(models.Model):
    delivery = models.ForeignKey(NotificationDelivery, on_delete=models.CASCADE, related_name="attempt_rows")
    number = models.PositiveIntegerField()
    status_code = models.PositiveIntegerField(null=True, blank=True)
    duration_ms = models.FloatField(default=0)
    response_excerpt = models.TextField(blank=True, default="")
    error = models.CharField(max_length=500, blank=True, default="")
    success = models.BooleanField(default=False)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["delivery", "number"]
        constraints = [models.UniqueConstraint(fields=["delivery", "number"], name="notification_attempt_number")]

    def __str__(self) -> str:
        return f"attempt {self.number}: {self.status_code or self.error[:40]}"
