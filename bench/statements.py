"""SQL statements and commits per engine step and per 4-step workflow, counted, not timed.

In-process, no worker: a 4-step no-op workflow (transform steps) whose canvas goes to a queue no
worker consumes is started with operations.workflow_execute, then each step is run by calling
``workflows_app.engine.run_step(execution_id, generation, group_index, step_index)`` directly, as
the worker's task would. Django's CaptureQueriesContext records every statement (SAVEPOINT /
RELEASE and SQLite's BEGIN/COMMIT shown apart, as 'tx control'); commits are counted by wrapping the connection's ``_commit``
(Django's atomic blocks commit there, not through a cursor), plus each write sent in autocommit. Inserts are broken down by table.

    python bench/statements.py [--workflows 3]
"""
from __future__ import annotations

import argparse
import re
import uuid
from collections import Counter
from contextlib import contextmanager

from _harness import configure, database_kind

UNCONSUMED_QUEUE = "bench-unconsumed"


@contextmanager
def counting():
    """Yield a dict filled on exit: statements, savepoints, commits, inserts by table, the SQL."""
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    found: dict = {}
    commits = [0]
    original = connection._commit

    def autocommitted(execute, sql, params, many, context):
        # a write outside a transaction (engine.step_writes on PostgreSQL) is its own commit
        if not connection.in_atomic_block and re.match(r"\s*(WITH|INSERT|UPDATE|DELETE)\b", sql, re.I):
            commits[0] += 1
        return execute(sql, params, many, context)

    def counted_commit(*args, **kwargs):
        commits[0] += 1
        return original(*args, **kwargs)

    connection._commit = counted_commit
    try:
        with CaptureQueriesContext(connection) as captured, connection.execute_wrapper(autocommitted):
            yield found
    finally:
        connection._commit = original
    sql = [q["sql"] for q in captured.captured_queries]
    # transaction control (SQLite's BEGIN IMMEDIATE / COMMIT go through a cursor, PostgreSQL's do not)
    savepoints = [s for s in sql if re.match(r"\s*(BEGIN|COMMIT|SAVEPOINT|RELEASE|ROLLBACK)\b", s, re.I)]
    inserts = Counter(table for s in sql for table in re.findall(r'INSERT INTO "?(\w+)"?', s, re.I))
    found.update(statements=len(sql) - len(savepoints), savepoints=len(savepoints), commits=commits[0],
                 inserts=dict(inserts), sql=sql)


def one_workflow(workflow_id: str) -> dict:
    from workflows_app import engine, operations
    from workflows_app.models import Execution

    with counting() as start:
        execution_id = operations.workflow_execute(workflow_id=workflow_id, input_data={})["execution_id"]
    generation = Execution.objects.get(pk=execution_id).dispatch_count
    steps = []
    for index in range(4):  # sequential steps: group i holds step i
        with counting() as step:
            engine.run_step(execution_id, generation, index, index)
        steps.append(step)
    status = Execution.objects.get(pk=execution_id).status
    assert status == "succeeded", status
    return {"start": start, "steps": steps}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--workflows", type=int, default=3, help="measured after one warm-up workflow")
    parser.add_argument("--sql", action="store_true", help="print the SQL of one intermediate step")
    args = parser.parse_args()
    configure()
    from workflows_app import operations

    wf = operations.workflow_create(name=f"bench-statements-{uuid.uuid4().hex[:8]}", queue=UNCONSUMED_QUEUE,
                                    steps=[{"name": f"s{i}", "type": "transform"} for i in range(4)])
    one_workflow(wf["workflow_id"])  # warm-up: caches (queue config, registry) filled
    runs = [one_workflow(wf["workflow_id"]) for _ in range(args.workflows)]
    last = runs[-1]
    print(f"database: {database_kind()}; 4-step no-op workflow, steps run in-process with engine.run_step; "
          f"{args.workflows} workflows measured (identical counts expected)")
    print(f"{'part':28} {'statements':>10} {'tx control':>10} {'commits':>8}   inserts")

    def row(label, c):
        print(f"{label:28} {c['statements']:>10} {c['savepoints']:>10} {c['commits']:>8}   "
              f"{', '.join(f'{t} {n}' for t, n in sorted(c['inserts'].items()))}")

    row("start (workflow_execute)", last["start"])
    for i, step in enumerate(last["steps"]):
        row(f"step {i + 1}" + (" (final)" if i == 3 else " (intermediate)"), step)
    parts = [last["start"], *last["steps"]]
    total = {k: sum(p[k] for p in parts) for k in ("statements", "savepoints", "commits")}
    inserts = sum((Counter(p["inserts"]) for p in parts), Counter())
    row("whole workflow (start+4)", {**total, "inserts": dict(inserts)})
    steps_only = {k: sum(p[k] for p in last["steps"]) for k in ("statements", "savepoints", "commits")}
    print(f"{'the 4 steps only':28} {steps_only['statements']:>10} {steps_only['savepoints']:>10} "
          f"{steps_only['commits']:>8}")
    varying = {(r["start"]["statements"], *(s["statements"] for s in r["steps"])) for r in runs}
    if len(varying) > 1:
        print(f"note: counts varied between workflows: {sorted(varying)}")
    print("issue 14 budget: an intermediate step <= 6 statements and 1 commit; a 4-step workflow <= 30 statements")
    if args.sql:
        for statement in last["steps"][1]["sql"]:
            print("   ", statement[:200])


if __name__ == "__main__":
    main()
