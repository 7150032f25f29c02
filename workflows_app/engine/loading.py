"""Loading a step's message: one query for the execution, its version and workflow, and what the
step's earlier attempts left (the redelivery check), instead of a load and a second SELECT. On
PostgreSQL that query is also the connection's health check of the task."""
from __future__ import annotations

from django.db import InterfaceError, OperationalError, connection
from django.db.models import Count, OuterRef, Subquery
from django.db.models.functions import Coalesce

from workflows_app.engine.outcomes import StaleMessage
from workflows_app.models import Execution, StepRun

S = Execution.Status


def load_step(execution_id, generation: int, step_index: int) -> Execution:
    """The step's load, first query of its task. A worker's connection lives across tasks and Django
    checks it at each task's first query (CONN_HEALTH_CHECKS: a ``SELECT 1`` round trip before it,
    nexus_project/task_connections.py). Here the load itself is the check: it is a read, so when a
    reused connection turns out dead (backend killed, database restarted) it is closed and the load
    runs once more on a new one, as Django's check would have done; a second failure is an
    infrastructure fault (retried by the task)."""
    if connection.vendor != "postgresql" or connection.connection is None or connection.in_atomic_block:
        return _load(execution_id, generation, step_index)  # SQLite's check is free; a new connection is fresh
    connection.health_check_done = True  # Django's ping is replaced by this load
    try:
        return _load(execution_id, generation, step_index)
    except (OperationalError, InterfaceError):
        connection.close()
        return _load(execution_id, generation, step_index)


def _load(execution_id, generation: int, step_index: int) -> Execution:
    """The execution with its version and workflow, and what earlier attempts of this step left, in
    one query: ``prior_status`` (the latest attempt that succeeded, was skipped or is waiting for its
    child) and ``prior_attempts`` (how many attempts there were). Within an execution a step's index
    names it (its version is fixed), and every attempt of a step records it."""
    runs = StepRun.objects.filter(execution=OuterRef("pk"), step_index=step_index, is_compensation=False)
    settled = runs.filter(status__in=(StepRun.Status.SUCCEEDED, StepRun.Status.SKIPPED, StepRun.Status.WAITING))
    counted = runs.order_by().values("execution").annotate(n=Count("pk")).values("n")
    try:
        execution = (Execution.objects.select_related("version", "workflow")
                     .annotate(prior_status=Subquery(settled.order_by("-id").values("status")[:1]),
                               prior_attempts=Coalesce(Subquery(counted), 0))
                     .get(pk=execution_id))
    except Execution.DoesNotExist:
        raise StaleMessage("execution deleted") from None
    if execution.dispatch_count != generation or execution.status not in (S.QUEUED, S.RUNNING):
        raise StaleMessage(f"execution {execution_id} is {execution.status}, generation {execution.dispatch_count}")
    return execution
