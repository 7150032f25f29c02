"""Loading a step's message: one query for the execution, its version and workflow, and what the
step's earlier attempts left (the redelivery check), instead of a load and a second SELECT. On
PostgreSQL that query is also the connection's health check of the task."""
from __future__ import annotations

from django.db import InterfaceError, OperationalError, connection
from django.db.models.expressions import RawSQL

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


def _earlier(sql: str) -> str:
    """A scalar subquery over this step's earlier attempts (``r``), correlated with the loaded row."""
    run, execution = (connection.ops.quote_name(m._meta.db_table) for m in (StepRun, Execution))
    return (f"SELECT {sql} FROM {run} r WHERE r.execution_id = {execution}.id AND r.step_index = %s "
            f"AND r.is_compensation = %s")


# Written as SQL, not Subquery(): Django spent more CPU building the two subqueries than the rest of the
# load (measured in-process: 3.8 ms against 6.7 ms per load at load ~8). Portable SQL (SQLite, PostgreSQL).
SETTLED = tuple(s.value for s in (StepRun.Status.SUCCEEDED, StepRun.Status.SKIPPED, StepRun.Status.WAITING))
PRIOR_STATUS = _earlier("r.status") + " AND r.status IN (%s, %s, %s) ORDER BY r.id DESC LIMIT 1"
PRIOR_ATTEMPTS = _earlier("COUNT(*)")


def _load(execution_id, generation: int, step_index: int) -> Execution:
    """The execution with its version and workflow, and what earlier attempts of this step left, in
    one query: ``prior_status`` (the latest attempt that succeeded, was skipped or is waiting for its
    child) and ``prior_attempts`` (how many attempts there were). Within an execution a step's index
    names it (its version is fixed), and every attempt of a step records it."""
    try:
        execution = (Execution.objects.select_related("version", "workflow")
                     .annotate(prior_status=RawSQL(PRIOR_STATUS, (step_index, False, *SETTLED)),
                               prior_attempts=RawSQL(PRIOR_ATTEMPTS, (step_index, False)))
                     .get(pk=execution_id))
    except Execution.DoesNotExist:
        raise StaleMessage("execution deleted") from None
    if execution.dispatch_count != generation or execution.status not in (S.QUEUED, S.RUNNING):
        raise StaleMessage(f"execution {execution_id} is {execution.status}, generation {execution.dispatch_count}")
    return execution
