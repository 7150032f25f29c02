"""The ``Backtest`` row: what was asked (arguments), where it is (status, progress, ETA) and what
came out (metrics and bounded artefacts: trades, equity curve, decisions)."""
from __future__ import annotations

import uuid

from django.conf import settings
from django.db import models
from django.utils import timezone


class Backtest(models.Model):
    class Status(models.TextChoices):
        QUEUED = "queued"
        RUNNING = "running"
        SUCCEEDED = "succeeded"
        FAILED = "failed"

    FINAL = ("succeeded", "failed")

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    workflow = models.ForeignKey("workflows_app.Workflow", on_delete=models.CASCADE, related_name="backtests")
    version = models.ForeignKey("workflows_app.WorkflowVersion", on_delete=models.PROTECT, related_name="+")
    owner = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL,
                              related_name="backtests")
    account = models.OneToOneField("trading_app.BrokerAccount", null=True, blank=True, on_delete=models.SET_NULL,
                                   related_name="backtest")
    # A sweep: the parent row holds the grid and the ranking; each point is a backtest of its own.
    parent = models.ForeignKey("self", null=True, blank=True, on_delete=models.CASCADE, related_name="points")
    point = models.JSONField(default=dict, blank=True)
    arguments = models.JSONField(default=dict)
    definition = models.JSONField(default=dict, help_text="the version's definition with the overrides applied")
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.QUEUED, db_index=True)
    bars_total = models.PositiveIntegerField(default=0)
    bars_done = models.PositiveIntegerField(default=0)
    decisions = models.PositiveIntegerField(default=0)
    error = models.TextField(blank=True, default="")
    metrics = models.JSONField(default=dict, blank=True)
    artefacts = models.JSONField(default=dict, blank=True)
    created_at = models.DateTimeField(default=timezone.now, db_index=True)
    started_at = models.DateTimeField(null=True, blank=True)
    # The running replay writes it at least every second (with its progress); a row ``running`` whose
    # heartbeat is older than NEXUS_BACKTEST_STALE_SECONDS lost its worker (``recovery``).
    heartbeat_at = models.DateTimeField(null=True, blank=True)
    attempt = models.PositiveSmallIntegerField(default=1, help_text="1, then +1 each time a lost run is re-run")
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return f"backtest {self.workflow_id} {self.arguments.get('start')}..{self.arguments.get('end')} ({self.status})"

    @property
    def is_final(self) -> bool:
        return self.status in self.FINAL

    def eta_seconds(self) -> float | None:
        """Remaining seconds at the rate measured so far (None before the first bar or once final)."""
        if self.is_final or not self.started_at or not self.bars_done or not self.bars_total:
            return None
        elapsed = (timezone.now() - self.started_at).total_seconds()
        return round(elapsed / self.bars_done * max(self.bars_total - self.bars_done, 0), 1)
