"""Loading a step's message: one query for the execution, its version and workflow, and what the
step's earlier attempts left (the redelivery check). On PostgreSQL that query is also the
connection's health check of the task.

The query's SQL is built once per process from the models' fields, not by the ORM per call:
building it was the largest share of a step's Python time (~1 ms of Django's compiler per load on a
quiet machine, as much as running it). Rows become model instances through the fields' own
database converters, as the ORM's would.
"""
from __future__ import annotations

from functools import cache

from django.db import InterfaceError, OperationalError, connection

from workflows_app.engine.outcomes import StaleMessage
from workflows_app.models import Execution, StepRun, Workflow, WorkflowVersion

S = Execution.Status
SETTLED = (StepRun.Status.SUCCEEDED.value, StepRun.Status.SKIPPED.value, StepRun.Status.WAITING.value)


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


def _q(name: str) -> str:
    return connection.ops.quote_name(name)


class _Columns:
    """A model's concrete fields as selected under an alias, and how a row's values become an instance."""

    def __init__(self, model, alias: str):
        self.model, self.fields = model, list(model._meta.concrete_fields)
        self.sql = ", ".join(f"{alias}.{_q(f.column)}" for f in self.fields)
        self.attnames = [f.attname for f in self.fields]
        self.converters = []  # (column expression, its converters): as the ORM's compiler applies them
        for f in self.fields:
            col = f.get_col(alias)
            self.converters.append((col, [*connection.ops.get_db_converters(col), *f.get_db_converters(connection)]))

    def instance(self, values):
        converted = []
        for value, (col, converters) in zip(values, self.converters, strict=True):
            for convert in converters:
                value = convert(value, col, connection)
            converted.append(value)
        return self.model.from_db(connection.alias, self.attnames, converted)


@cache
def _load_plan(vendor: str) -> tuple[str, _Columns, _Columns, _Columns]:
    """Built once per process (and database vendor): the SQL and the three models' columns."""
    e, v, w = _Columns(Execution, "e"), _Columns(WorkflowVersion, "v"), _Columns(Workflow, "w")
    runs = _q(StepRun._meta.db_table)
    earlier = f"FROM {runs} r WHERE r.execution_id = e.id AND r.step_index = %s AND r.is_compensation = %s"
    sql = (f"SELECT {e.sql}, {v.sql}, {w.sql}, "
           f"(SELECT r.status {earlier} AND r.status IN (%s, %s, %s) ORDER BY r.id DESC LIMIT 1), "
           f"(SELECT COUNT(*) {earlier}) "
           f"FROM {_q(Execution._meta.db_table)} e "
           f"JOIN {_q(WorkflowVersion._meta.db_table)} v ON v.id = e.version_id "
           f"JOIN {_q(Workflow._meta.db_table)} w ON w.id = e.workflow_id "
           f"WHERE e.id = %s")
    return sql, e, v, w


def _select(execution_id, step_index: int) -> Execution | None:
    """The execution with its version and workflow attached, ``prior_status`` (the latest attempt of
    the step that succeeded, was skipped or waits for its child) and ``prior_attempts``; None if gone."""
    sql, e, v, w = _load_plan(connection.vendor)
    pk = Execution._meta.pk.get_db_prep_value(execution_id, connection)
    with connection.cursor() as cursor:
        cursor.execute(sql, (step_index, False, *SETTLED, step_index, False, pk))
        row = cursor.fetchone()
    if row is None:
        return None
    ne, nv = len(e.fields), len(v.fields)
    execution = e.instance(row[:ne])
    Execution._meta.get_field("version").set_cached_value(execution, v.instance(row[ne:ne + nv]))
    Execution._meta.get_field("workflow").set_cached_value(execution, w.instance(row[ne + nv:-2]))
    execution.prior_status, execution.prior_attempts = row[-2], row[-1]
    return execution




def _load(execution_id, generation: int, step_index: int) -> Execution:
    execution = _select(execution_id, step_index)
    if execution is None:
        raise StaleMessage("execution deleted")
    if execution.dispatch_count != generation or execution.status not in (S.QUEUED, S.RUNNING):
        raise StaleMessage(f"execution {execution_id} is {execution.status}, generation {execution.dispatch_count}")
    return execution
