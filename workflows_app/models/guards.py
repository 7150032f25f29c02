"""Durable duplicate guards and circuit breaker state: what decides whether money moves must not
live in Redis alone (a Redis restarted empty would forget it)."""
from __future__ import annotations

from django.db import models


class Guard(models.Model):
    """A claim on ``(scope, key)`` until ``expires_at``: event-id dedup of a queue, a webhook
    signature seen, a schedule minute fired, a trigger fired for an event, a trigger's cooldown.
    Claimed atomically by ``workflows_app.guards.claim`` (insert; on conflict take it over only if expired)."""

    scope = models.CharField(max_length=120)
    key = models.CharField(max_length=255)
    value = models.CharField(max_length=255, blank=True, default="", help_text="Who holds it (ids).")
    expires_at = models.DateTimeField()
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["scope", "key"], name="guard_scope_key")]
        indexes = [models.Index(fields=["expires_at"], name="guard_expires")]

    def __str__(self) -> str:
        return f"{self.scope}:{self.key}"


class CircuitState(models.Model):
    """The last transition of a circuit breaker (open / closed), so a Redis restart does not close an
    open breaker (workflows_app.circuit restores it from here when Redis has no state)."""

    key = models.CharField(max_length=200, unique=True)
    state = models.CharField(max_length=16)
    opened_at = models.FloatField(default=0)
    updated_at = models.DateTimeField(auto_now=True)

    def __str__(self) -> str:
        return f"{self.key}: {self.state}"
