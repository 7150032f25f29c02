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
    queues = models.JSONField(default=list, blank=True)  # a worker's consumed queues (empty for other roles)

    class Meta:
        ordering = ["role", "-last_seen"]

    def __str__(self) -> str:
        return f"{self.name} ({self.state})"


class AvailabilitySample(models.Model):
    """One look at which processes were alive (services/availability.py), taken by beat every few seconds.

    `available` is the figure's definition applied at that moment (see availability.REQUIRED); the
    booleans and `workers` say what was seen, `down` what was missing.
    """

    taken_at = models.DateTimeField(db_index=True)
    available = models.BooleanField()
    workers_ok = models.BooleanField()  # at least one live worker consuming the workflows queue
    beat_ok = models.BooleanField()  # an active beat (holds the lock, fires schedules and the reconciler)
    web_ok = models.BooleanField()  # a live web process
    workers = models.JSONField(default=list)  # names of the live workers consuming the workflows queue
    down = models.JSONField(default=list)  # the required roles that were not alive ("worker", "beat", "web")

    class Meta:
        ordering = ["taken_at"]

    def __str__(self) -> str:
        return f"{self.taken_at:%Y-%m-%d %H:%M:%S} {'up' if self.available else 'down'}"
