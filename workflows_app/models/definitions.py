"""What a trader defines: workflows, their immutable versions, and the editable steps and triggers.

The current definition is kept twice on purpose: as Step/Trigger rows (editable as admin forms,
queryable) and as the JSON of the current WorkflowVersion (immutable, what executions run).
services.workflows keeps them in step: every change writes both in one transaction.
"""
from __future__ import annotations

import uuid

from django.conf import settings
from django.core.validators import MaxValueValidator, MinValueValidator
from django.db import models


class Workflow(models.Model):
    class Status(models.TextChoices):
        ACTIVE = "active"
        PAUSED = "paused"
        ARCHIVED = "archived"

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    # Unique per owner (see Meta), not globally: a name must not reveal another user's workflow.
    name = models.CharField(max_length=200, db_index=True)
    description = models.TextField(blank=True, default="")
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.ACTIVE)
    priority = models.PositiveSmallIntegerField(
        default=5, validators=[MinValueValidator(0), MaxValueValidator(10)]
    )
    queue = models.CharField(max_length=100, default="workflows")
    metadata = models.JSONField(default=dict, blank=True)
    owner = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="workflows"
    )
    current_version = models.ForeignKey(
        "WorkflowVersion", null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["-created_at"]
        indexes = [
            models.Index(fields=["status", "-created_at"]),
            models.Index(fields=["owner", "-created_at"]),
        ]
        constraints = [
            models.UniqueConstraint(fields=["owner", "name"], name="unique_workflow_name_per_owner"),
            # NULLs are distinct in a unique index: owner-less workflows need their own constraint.
            models.UniqueConstraint(fields=["name"], condition=models.Q(owner__isnull=True),
                                    name="unique_workflow_name_unowned"),
        ]

    def __str__(self) -> str:
        return self.name

    @property
    def version(self) -> int:
        return self.current_version.number if self.current_version_id else 0


class WorkflowVersion(models.Model):
    """An immutable snapshot of a definition; executions point at the one they started with."""

    workflow = models.ForeignKey(Workflow, on_delete=models.CASCADE, related_name="versions")
    number = models.PositiveIntegerField()
    definition = models.JSONField()
    changed_paths = models.JSONField(default=list, blank=True)
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["workflow", "-number"]
        constraints = [models.UniqueConstraint(fields=["workflow", "number"], name="unique_workflow_version")]

    def __str__(self) -> str:
        return f"{self.workflow_id} v{self.number}"

    def save(self, *args, **kwargs):
        if self.pk is not None:
            raise ValueError("workflow versions are immutable")
        super().save(*args, **kwargs)

    @property
    def steps(self) -> list[dict]:
        return self.definition.get("steps", [])


class Step(models.Model):
    workflow = models.ForeignKey(Workflow, on_delete=models.CASCADE, related_name="steps")
    position = models.PositiveIntegerField()
    name = models.CharField(max_length=100)
    type = models.CharField(max_length=100, blank=True, help_text="Empty: the step's name is its type.")
    params = models.JSONField(default=dict, blank=True)
    condition = models.CharField(max_length=1000, blank=True, default="")
    actions = models.JSONField(default=list, blank=True)
    group = models.CharField(max_length=100, blank=True, default="", help_text="Steps sharing a group run in parallel.")
    retry = models.JSONField(default=dict, blank=True)
    timeout = models.PositiveIntegerField(null=True, blank=True)
    compensate = models.CharField(max_length=100, blank=True, default="")
    agent = models.CharField(max_length=100, blank=True, default="")
    subprocess_workflow = models.CharField(max_length=200, blank=True, default="")

    class Meta:
        ordering = ["workflow", "position"]
        constraints = [
            models.UniqueConstraint(fields=["workflow", "name"], name="unique_step_name"),
        ]

    def __str__(self) -> str:
        return f"{self.position}: {self.name}"


class Trigger(models.Model):
    workflow = models.ForeignKey(Workflow, on_delete=models.CASCADE, related_name="triggers")
    position = models.PositiveIntegerField()
    type = models.CharField(max_length=50, db_index=True)
    params = models.JSONField(default=dict, blank=True)
    enabled = models.BooleanField(default=True)
    # Event triggers: the symbol/kind they listen to (indexed so a tick only touches its own).
    symbol = models.CharField(max_length=32, blank=True, default="", db_index=True)
    cooldown_seconds = models.PositiveIntegerField(default=300)
    last_fired_at = models.DateTimeField(null=True, blank=True)
    periodic_task = models.OneToOneField(
        "django_celery_beat.PeriodicTask", null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )

    class Meta:
        ordering = ["workflow", "position"]

    def __str__(self) -> str:
        return f"{self.type} #{self.position}"


class Agent(models.Model):
    """A worker pool: steps assigned to an agent run on the agent's Celery queue."""

    name = models.CharField(max_length=100, unique=True)
    type = models.CharField(max_length=50)
    capabilities = models.JSONField(default=list, blank=True)
    queue = models.CharField(max_length=100)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name
