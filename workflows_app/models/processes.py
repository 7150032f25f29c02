"""Liveness of the stack's long-running processes, kept in the database.

A process that depends on Redis (beat) must still be able to say "I am alive but cannot reach
Redis": its heartbeat therefore lives here, not in Redis. /health/ reads it.
"""
from __future__ import annotations

from django.db import models


class ProcessHeartbeat(models.Model):
    class State(models.TextChoices):
        ACTIVE = "active"  # doing its job (beat: holds the lock and fires schedules)
        STANDBY = "standby"  # alive, another process of the same role is active
        DEGRADED = "degraded"  # alive, cannot do its job (e.g. Redis unreachable); detail says why

    name = models.CharField(max_length=200, unique=True)  # e.g. beat:<host>:<pid>:<token>
    role = models.CharField(max_length=40, db_index=True)
    host = models.CharField(max_length=200)
    pid = models.PositiveIntegerField()
    last_seen = models.DateTimeField(db_index=True)
    state = models.CharField(max_length=16, choices=State.choices)
    detail = models.CharField(max_length=500, blank=True, default="")

    class Meta:
        ordering = ["role", "-last_seen"]

    def __str__(self) -> str:
        return f"{self.name} ({self.state})"
