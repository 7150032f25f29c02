"""Approvals: what an `approval` step asks a person to decide, and the decision (who, when, why)."""
from __future__ import annotations

import uuid

from django.conf import settings
from django.db import models


class ApprovalRequest(models.Model):
    class Status(models.TextChoices):
        PENDING = "pending"
        APPROVED = "approved"
        REJECTED = "rejected"
        EXPIRED = "expired"  # nobody decided before `expires_at`: rejected by default
        CANCELLED = "cancelled"  # the execution was cancelled while it waited

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    execution = models.ForeignKey("workflows_app.Execution", on_delete=models.CASCADE, related_name="approvals")
    # One request per attempt of the step (a retried execution asks again).
    step_run = models.OneToOneField("workflows_app.StepRun", on_delete=models.CASCADE, related_name="approval")
    step_name = models.CharField(max_length=100)
    summary = models.TextField(max_length=2000, blank=True, default="")
    # What is to be approved, rendered from the context when the step ran (bounded).
    subject = models.JSONField(default=dict, blank=True)
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.PENDING)
    requested_at = models.DateTimeField()
    expires_at = models.DateTimeField()
    decided_at = models.DateTimeField(null=True, blank=True)
    decided_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL,
                                   related_name="+")
    # Who decided as shown in the audit trail: a username, "local operator" (CLI/MCP stdio) or "timer".
    decided_by_label = models.CharField(max_length=150, blank=True, default="")
    comment = models.CharField(max_length=1000, blank=True, default="")

    class Meta:
        ordering = ["-requested_at"]
        indexes = [models.Index(fields=["status", "expires_at"]), models.Index(fields=["execution", "status"])]

    def __str__(self) -> str:
        return f"approval {self.step_name} of {self.execution_id}: {self.status}"
