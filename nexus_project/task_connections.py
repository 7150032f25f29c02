"""A worker keeps its database connection from one task to the next, as Django keeps it from one
request to the next.

Celery's Django fix-up closes every database connection before and after every task unless
``CELERY_DB_REUSE_MAX`` is set (celery.fixups.django, 5.x: ``conn.close()``, not Django's checks).
Each step then opened a new connection: on PostgreSQL a TCP connect, authentication and a new
server process, 11 ms of a 60 ms step in a profiled worker (docs/benchmarks.md), and the server's
fork on the same loaded CPUs.

Instead the settings give the fix-up a reuse count it never reaches in practice, and each task
starts and ends with Django's own ``close_old_connections()``, the request cycle's rule: a
connection past ``CONN_MAX_AGE`` is closed, one that raised an error and no longer answers is
closed, and ``CONN_HEALTH_CHECKS`` is re-armed, so the first query of the next task checks the
connection (one ``SELECT 1`` on PostgreSQL) and reconnects if the server dropped it (killed
backend, database restart) instead of failing the task. An error inside a task is still handled
by the engine (``engine.infrastructure_fault`` closes the connection and retries).
"""
from __future__ import annotations

from celery.signals import task_postrun, task_prerun


def _recycle(sender=None, **kwargs) -> None:
    if getattr(getattr(sender, "request", None), "is_eager", False):
        return  # an eager call runs inside its caller's connection use (never in Nexus: no eager tasks)
    from django.db import close_old_connections

    close_old_connections()


def connect() -> None:
    task_prerun.connect(_recycle, weak=False, dispatch_uid="nexus-task-connections-prerun")
    task_postrun.connect(_recycle, weak=False, dispatch_uid="nexus-task-connections-postrun")
