"""Where a worker's time goes on the step path: a Nexus worker (``-P solo``, one process) under
cProfile runs N 4-step no-op workflows one after another, as bench/engine_latency.py's (d) does.

Prints the worker's time per step message, split by what it was doing (the engine's own work, the
database, Django's ORM building SQL, Celery/kombu, the dispatch of the next message, JSON, ...),
from the profile's cumulative times of a few marker functions. Idle time (waiting for a message)
is left out: only time inside Celery's task tracer counts.

    python bench/profile_worker.py [--workflows 200] [--top 40] [--out var/worker.prof]
Database: DATABASE_URL or the default SQLite; Redis: REDIS_URL (db BENCH_REDIS_DB, default 14).
"""
from __future__ import annotations

import argparse
import os
import pstats
import signal
import subprocess
import sys
import time
import uuid

from _harness import ROOT, configure, load_average

# (label, (file fragment, function name)): cumulative time of these functions inside the tracer.
MARKERS = [
    ("task total (Celery tracer)", ("celery/app/trace.py", "trace_task")),
    ("engine.run_step", ("workflows_app/engine/runner.py", "run_step")),
    ("  load_step (load + earlier attempts)", ("workflows_app/engine/loading.py", "load_step")),
    ("  _start_may_wait", ("workflows_app/engine/runner.py", "_start_may_wait")),
    ("  step_context (params validation)", ("workflows_app/engine/runner.py", "step_context")),
    ("  _complete_step", ("workflows_app/engine/runner.py", "_complete_step")),
    ("  audit.batched flush", ("workflows_app/audit.py", "batched")),
    ("DB cursor execute (all)", ("django/db/backends/utils.py", "_execute")),
    ("DB commit", ("django/db/backends/base/base.py", "_commit")),
    ("SQL compile (ORM)", ("django/db/models/sql/compiler.py", "as_sql")),
    ("model __init__ / from_db", ("django/db/models/base.py", "from_db")),
    ("close_old_connections (per task)", ("django/db/__init__.py", "close_old_connections")),
    ("connection health check (SELECT 1)", ("django/db/backends/postgresql/base.py", "is_usable")),
    ("new database connections", ("django/db/backends/base/base.py", "connect")),
    ("next message: apply_async", ("celery/app/task.py", "apply_async")),
    ("store result / state", ("celery/backends/base.py", "store_result")),
    ("mark_as_started", ("celery/backends/base.py", "mark_as_started")),
    ("task events send", ("celery/events/dispatcher.py", "send")),
    ("json dumps", ("json/__init__.py", "dumps")),
    ("json loads", ("json/__init__.py", "loads")),
    ("logging", ("logging/__init__.py", "_log")),
    ("on_commit callbacks", ("django/db/backends/base/base.py", "run_and_clear_commit_hooks")),
]


def _worker(prof: str) -> subprocess.Popen:
    log = ROOT / "var" / "profile-worker.log"
    process = subprocess.Popen(
        [sys.executable, "-m", "cProfile", "-o", prof, "-m", "celery", "-A", "nexus_project", "worker", "-P", "solo",
         "-Q", "workflows", "--without-gossip", "--without-mingle", "-l", "WARNING", "-n", f"profile-{os.getpid()}@%h"],
        cwd=ROOT, stdout=log.open("w"), stderr=subprocess.STDOUT, start_new_session=True)
    time.sleep(1)
    return process


def _cumulative(stats: pstats.Stats, fragment: str, name: str) -> tuple[float, int]:
    total, calls = 0.0, 0
    for (path, _line, func), (_cc, nc, _tt, ct, _callers) in stats.stats.items():
        if func == name and path.endswith(fragment):
            total, calls = total + ct, calls + nc
    return total, calls


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--workflows", type=int, default=200)
    parser.add_argument("--top", type=int, default=40)
    parser.add_argument("--out", default=str(ROOT / "var" / "worker.prof"))
    args = parser.parse_args()
    print(f"load average at start: {load_average()}")
    configure()
    from workflows_app import operations
    from workflows_app.engine import wait_until_final

    wf = operations.workflow_create(name=f"bench-profile-{uuid.uuid4().hex[:8]}",
                                    steps=[{"name": f"s{i}", "type": "transform"} for i in range(4)])
    worker = _worker(args.out)
    try:
        for _ in range(args.workflows + 5):
            execution_id = operations.workflow_execute(workflow_id=wf["workflow_id"], input_data={})["execution_id"]
            status = wait_until_final(execution_id, 60).status
            assert status == "succeeded", status
    finally:
        os.killpg(worker.pid, signal.SIGTERM)
        worker.wait(60)
    print(f"load average at end:   {load_average()}")
    stats = pstats.Stats(args.out)
    total, tasks = _cumulative(stats, *MARKERS[0][1])
    print(f"{tasks} step messages, {1000 * total / max(tasks, 1):.2f} ms of the worker each (inside the tracer)")
    for label, (fragment, name) in MARKERS:
        spent, calls = _cumulative(stats, fragment, name)
        print(f"  {label:42} {1000 * spent / max(tasks, 1):7.2f} ms/step {100 * spent / total:5.1f} %  ({calls} calls)")
    stats.sort_stats("tottime").print_stats(args.top)


if __name__ == "__main__":
    main()
