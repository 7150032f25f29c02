"""A sequential step's completion, written as SQL once instead of built by the ORM per call, and
on PostgreSQL sent as one statement instead of six round trips (BEGIN, SET LOCAL, UPDATE, INSERT,
INSERT, COMMIT).

The statement, run in autocommit, is the conditional UPDATE of the execution with the INSERTs of
the step's StepRun and audit rows as data-modifying CTEs (PostgreSQL runs each exactly once, read or
not); a non-final step's commits asynchronously through ``set_config('synchronous_commit', 'off',
true)`` in the same statement (policy.async_commit says why that is safe; the setting is local to
the statement's own transaction), the last step's synchronously. On SQLite, and inside a caller's
transaction, the same three statements run in one transaction. The writes are the ORM path's, column
for column (runner._move_on / _move_past, lifecycle.finalize, failures.save_attempt, audit.record_many).
"""
from __future__ import annotations

from django.conf import settings
from django.db import connection, transaction
from django.utils import timezone

from workflows_app.models import AuditEvent, Execution, StepRun

S = Execution.Status


def _q(name: str) -> str:
    return connection.ops.quote_name(name)


def _insert(model, rows: list[dict]) -> tuple[str, list]:
    """INSERT of ``rows`` (attname -> value) into ``model``'s table, values prepared by their fields."""
    fields = [model._meta.get_field(name) for name in rows[0]]
    columns = ", ".join(_q(f.column) for f in fields)
    one = "(" + ", ".join(["%s"] * len(fields)) + ")"
    params = [f.get_db_prep_save(row[f.attname], connection) for row in rows for f in fields]
    return f"INSERT INTO {_q(model._meta.db_table)} ({columns}) VALUES {', '.join([one] * len(rows))}", params


def _audit_rows(events: list[AuditEvent], now) -> list[dict]:
    # `timestamp` is auto_now_add: the ORM stamps rows when they are written, so does this
    return [{"timestamp": now, "event": a.event, "workflow_id": a.workflow_id, "execution_id": a.execution_id,
             "step": a.step, "data": a.data} for a in events]


def _run_row(run: StepRun) -> dict:
    names = ("execution_id", "step_name", "step_type", "step_index", "attempt", "status", "is_compensation",
             "queue", "task_id", "started_at", "finished_at", "result", "error", "error_class", "traceback")
    return {name: getattr(run, name) for name in names}


def _write_run(run: StepRun) -> tuple[str, list]:
    """The attempt's row: inserted whole for a deferred attempt, else its outcome on the row its start wrote."""
    if run.pk is None:
        return _insert(StepRun, [_run_row(run)])
    fields = [StepRun._meta.get_field(name) for name in ("status", "finished_at", "result")]
    sets = ", ".join(f"{_q(f.column)} = %s" for f in fields)
    params = [f.get_db_prep_save(getattr(run, f.attname), connection) for f in fields]
    return f"UPDATE {_q(StepRun._meta.db_table)} SET {sets} WHERE {_q('id')} = %s", [*params, run.pk]


def _audit_insert(rows: list[dict], always: list[bool]) -> tuple[str, list]:
    """The audit rows in one INSERT, in order; a row whose ``always`` is false only if the execution
    moved (PostgreSQL: ``moved`` is the UPDATE's CTE)."""
    fields = [AuditEvent._meta.get_field(name) for name in rows[0]]
    names = ", ".join(_q(f.column) for f in fields)
    one = "(" + ", ".join(["%s"] * len(fields)) + ", {})"
    values = ", ".join(one.format("TRUE" if keep else "FALSE") for keep in always)
    params = [f.get_db_prep_save(row[f.attname], connection) for row in rows for f in fields]
    return (f"INSERT INTO {_q(AuditEvent._meta.db_table)} ({names}) SELECT {names} FROM (VALUES {values}) "
            f"AS t ({names}, always) WHERE t.always OR EXISTS (SELECT 1 FROM moved)"), params


def complete(loaded: Execution, run: StepRun, audit_events: list[AuditEvent], group_index: int, *,
             following: str = "", finished: AuditEvent | None = None) -> bool:
    """Write a sequential step's outcome: its StepRun (inserted for a deferred attempt, else updated), its
    audit events, and, only under the generation it ran with and while the execution is live, the
    merged context and the cursor moved on: to the next group (``following`` names its step,
    committed asynchronously on PostgreSQL) or, for the last step, the execution succeeded
    (``finished`` is its workflow_completed event, written only then; committed synchronously: a
    caller told `succeeded` reads a durable row). As runner._complete_step, a cancel or re-dispatch
    meanwhile records the step and moves nothing. Returns whether the execution moved."""
    now = timezone.now()
    fields = {"context": loaded.context, "cursor": group_index + 1, "heartbeat_at": now,
              "current_step": following, "status": S.RUNNING}
    if finished is not None:
        fields.update(status=S.SUCCEEDED, finished_at=now, error=None)
    sets = [f"{_q(name)} = %s" for name in fields]
    params = [Execution._meta.get_field(name).get_db_prep_save(value, connection) for name, value in fields.items()]
    sets.append(f"{_q('started_at')} = COALESCE({_q('started_at')}, %s)")
    params.append(Execution._meta.get_field("started_at").get_db_prep_save(run.started_at, connection))
    update = (f"UPDATE {_q(Execution._meta.db_table)} SET {', '.join(sets)} WHERE {_q('id')} = %s "
              f"AND {_q('dispatch_count')} = %s AND {_q('cursor')} = %s AND {_q('status')} IN (%s, %s)")
    params += [Execution._meta.pk.get_db_prep_value(loaded.pk, connection), loaded.dispatch_count, group_index,
               S.QUEUED.value, S.RUNNING.value]
    write_run, run_params = _write_run(run)
    events = [*audit_events, *([finished] if finished is not None else [])]
    always = [True] * len(audit_events) + [False] * (finished is not None)
    if connection.vendor == "postgresql" and not connection.in_atomic_block:
        asynchronous = settings.NEXUS_ASYNC_STEP_COMMIT and finished is None
        # set_config(..., true): local to this statement's own transaction; a CTE runs when the query reads it
        cfg = "cfg AS (SELECT set_config('synchronous_commit', 'off', true)), " if asynchronous else ""
        insert_audit, audit_params = _audit_insert(_audit_rows(events, now), always)
        sql = (f"WITH {cfg}moved AS ({update} RETURNING 1), run AS ({write_run} RETURNING {_q('id')}), "
               f"trail AS ({insert_audit}) SELECT run.id, EXISTS (SELECT 1 FROM moved) FROM run{', cfg' if cfg else ''}")
        with connection.cursor() as cursor:  # autocommit: the statement is its own transaction
            cursor.execute(sql, [*params, *run_params, *audit_params])
            run.pk, moved = cursor.fetchone()
    else:
        with transaction.atomic(), connection.cursor() as cursor:
            cursor.execute(update, params)
            moved = cursor.rowcount == 1
            if run.pk is not None:
                cursor.execute(write_run, run_params)
            elif connection.vendor == "postgresql":  # inside a caller's transaction
                cursor.execute(f"{write_run} RETURNING {_q('id')}", run_params)
                run.pk = cursor.fetchone()[0]
            else:
                cursor.execute(write_run, run_params)
                run.pk = cursor.lastrowid
            kept = [event for event, keep in zip(events, always, strict=True) if keep or moved]
            cursor.execute(*_insert(AuditEvent, _audit_rows(kept, now)))
    run._state.adding, run.durable, run.pending_audit = False, True, []
    return bool(moved)


def insert_execution(execution: Execution, queued: AuditEvent) -> None:
    """A new execution's row and its ``execution_queued`` event, committed (synchronously) before the
    caller sends its canvas: one statement on PostgreSQL, one transaction elsewhere."""
    row = {f.attname: f.pre_save(execution, True) for f in Execution._meta.concrete_fields}  # auto_now_add
    insert_row, row_params = _insert(Execution, [row])
    insert_audit, audit_params = _insert(AuditEvent, _audit_rows([queued], timezone.now()))
    if connection.vendor == "postgresql" and not connection.in_atomic_block:
        with connection.cursor() as cursor:  # autocommit: the statement is its own transaction
            cursor.execute(f"WITH e AS ({insert_row}) {insert_audit}", [*row_params, *audit_params])
    else:
        with transaction.atomic(), connection.cursor() as cursor:
            cursor.execute(insert_row, row_params)
            cursor.execute(insert_audit, audit_params)
    execution._state.adding, execution._state.db = False, connection.alias
