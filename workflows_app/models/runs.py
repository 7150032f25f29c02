"""What happened: executions and the runs of their steps. The database is the source of truth."""
from __future__ import annotations

import uuid

from django.conf import settings
from django.db import models


class Execution(models.Model):
    class Status(models.TextChoices):
        QUEUED = "queued"
        RUNNING = "running"
        # Suspended at a `wait` or `approval` step: no message, no worker; `wake_at` says when the
        # timer resumes it (engine.timers), a decision may resume it earlier (an approval).
        WAITING = "waiting"
        SUCCEEDED = "succeeded"
        FAILED = "failed"
        COMPENSATING = "compensating"
        COMPENSATED = "compensated"
        CANCELLED = "cancelled"

    FINAL = (Status.SUCCEEDED, Status.FAILED, Status.COMPENSATED, Status.CANCELLED)

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    workflow = models.ForeignKey("workflows_app.Workflow", on_delete=models.CASCADE, related_name="executions")
    version = models.ForeignKey("workflows_app.WorkflowVersion", on_delete=models.PROTECT, related_name="executions")
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.QUEUED)
    trigger = models.CharField(max_length=50, default="manual")
    trigger_event = models.JSONField(null=True, blank=True)
    input_data = models.JSONField(default=dict, blank=True)
    context = models.JSONField(default=dict, blank=True)
    test_mode = models.BooleanField(default=False)
    priority = models.PositiveSmallIntegerField(default=5)
    parent = models.ForeignKey("self", null=True, blank=True, on_delete=models.CASCADE, related_name="children")
    parent_step = models.CharField(max_length=100, blank=True, default="")
    # A re-run (engine.rerun): the execution it started from, and the step it ran again from; the
    # steps before that one carry that execution's outputs (in the context, no StepRun of their own).
    rerun_of = models.ForeignKey("self", null=True, blank=True, on_delete=models.SET_NULL, related_name="reruns")
    rerun_from_step = models.CharField(max_length=100, blank=True, default="")
    owner = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL)
    # Index of the next step (or group) to run; the reconciler resumes from here.
    cursor = models.PositiveIntegerField(default=0)
    current_step = models.CharField(max_length=100, blank=True, default="")
    error = models.JSONField(null=True, blank=True)
    dispatch_count = models.PositiveIntegerField(default=0)
    queued_at = models.DateTimeField(auto_now_add=True)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    # Last sign of life (dispatch, step start/finish); stale + unfinished = lost messages.
    heartbeat_at = models.DateTimeField(null=True, blank=True)
    # While `waiting`: when the timer resumes it (a wait's end, an approval's expiry).
    wake_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-queued_at"]
        indexes = [
            models.Index(fields=["workflow", "-queued_at"]),
            models.Index(fields=["queued_at"]),  # system-wide metrics windows
            models.Index(fields=["status", "heartbeat_at"]),
            models.Index(fields=["finished_at"]),
            models.Index(fields=["parent"]),
            models.Index(fields=["status", "wake_at"]),  # the timer's due executions
        ]

    def __str__(self) -> str:
        return str(self.id)

    @property
    def is_final(self) -> bool:
        return self.status in self.FINAL

    @property
    def duration(self) -> float | None:
        if self.started_at and self.finished_at:
            return (self.finished_at - self.started_at).total_seconds()
        return None


class StepRun(models.Model):
    class Status(models.TextChoices):
        RUNNING = "running"
        SUCCEEDED = "succeeded"
        FAILED = "failed"
        RETRYING = "retrying"
        SKIPPED = "skipped"
        WAITING = "waiting"

    execution = models.ForeignKey(Execution, on_delete=models.CASCADE, related_name="step_runs")
    step_name = models.CharField(max_length=100)
    step_type = models.CharField(max_length=100)
    step_index = models.PositiveIntegerField()
    attempt = models.PositiveIntegerField(default=1)
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.RUNNING)
    is_compensation = models.BooleanField(default=False)
    queue = models.CharField(max_length=100, blank=True, default="")
    task_id = models.CharField(max_length=255, blank=True, default="")
    started_at = models.DateTimeField()
    finished_at = models.DateTimeField(null=True, blank=True)
    result = models.JSONField(null=True, blank=True)
    error = models.TextField(blank=True, default="")
    error_class = models.CharField(max_length=100, blank=True, default="")
    traceback = models.TextField(blank=True, default="")

    class Meta:
        ordering = ["execution", "started_at", "id"]
        indexes = [
            models.Index(fields=["execution", "step_name", "status"]),
            models.Index(fields=["step_name", "started_at"]),
            models.Index(fields=["status", "started_at"]),
            models.Index(fields=["started_at"]),  # steps_performance windows
            models.Index(fields=["finished_at"]),  # messages processed in a window
        ]

    def __str__(self) -> str:
        return f"{self.step_name}#{self.attempt} {self.status}"

    @property
    def duration(self) -> float | None:
        if self.finished_at:
            return (self.finished_at - self.started_at).total_seconds()
        return None
