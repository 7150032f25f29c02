"""Redis SIGKILLed, its data deleted and restarted empty on the same port, with executions in
flight and events / queue messages accepted but not yet drained: everything reaches a final state
without manual help, nothing runs twice, and an event re-sent after the loss is still deduplicated.

Real processes only: a redis-server this test starts, celery worker subprocesses and a celery
beat pointed at it (REDIS_URL), ingestion through ``manage.py shell`` subprocesses (this test
process's own settings point at the suite's Redis, which is never touched)."""
from __future__ import annotations

import json
import time
import uuid
from collections import Counter
from pathlib import Path

import pytest
from django.db.models import Count

from tests.support.processes import (
    OwnRedis,
    ProcessGroup,
    celery_beat_command,
    celery_worker_command,
    django_shell,
    subprocess_env,
)
from tests.support.waiting import wait_for
from tests.workflows_app.helpers import create
from workflows_app import operations
from workflows_app.models import Execution, InboxMessage, StepRun

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.slow]
FINAL = ["succeeded", "failed", "cancelled", "compensated"]


def _env(redis_url: str) -> dict:
    # the maintenance jobs, on a short clock for the test (bounded waits, not speed)
    return subprocess_env(REDIS_URL=redis_url, NEXUS_RECONCILE_EVERY="2", NEXUS_RECONCILE_MARGIN_SECONDS="2",
                          NEXUS_QUEUE_SWEEP_SECONDS="1")


def _worker(env: dict, queues: str, log: Path, concurrency: int = 2) -> ProcessGroup:
    proc = ProcessGroup(celery_worker_command(queues, concurrency, f"dur-{uuid.uuid4().hex[:6]}"), env=env,
                        log=log).start()
    proc.wait_for_line("ready.", timeout=60)
    return proc


def _beat(env: dict, log: Path, *options: str) -> ProcessGroup:
    return ProcessGroup(celery_beat_command(*options), env=env, log=log).start()


def _shell(env: dict, code: str) -> dict:
    """Run Django code in a subprocess pointed at the test's Redis; its last stdout line is JSON."""
    return json.loads(django_shell(code, env, timeout=180).strip().splitlines()[-1])


INGEST = """
import json
from workflows_app import operations
a = [operations.workflow_execute(workflow_id="{a}")["execution_id"] for _ in range(20)]
ev = [operations.event_ingest(kind="event", payload={{"name": "{tag}"}}, event_id=f"evt-{{i}}") for i in range(10)]
msgs = [operations.queue_send(queue_name="{queue}", message={{"n": i}}) for i in range(5)]
print(json.dumps({{"a": a, "events": [e["deduplicated"] for e in ev], "messages": [m["deduplicated"] for m in msgs]}}))
"""

RESEND = """
import json
from workflows_app import operations
ev = operations.event_ingest(kind="event", payload={{"name": "{tag}"}}, event_id="evt-3")
msg = operations.queue_send(queue_name="{queue}", message={{"n": 2}})
print(json.dumps({{"event": ev["deduplicated"], "message": msg["deduplicated"]}}))
"""


def test_redis_restarted_empty_loses_nothing_accepted_and_runs_nothing_twice(tmp_path):
    tag = f"dur-{uuid.uuid4().hex[:6]}"
    # A slow step that holds its worker slot (a `wait` frees it: all 20 would wake and end together)
    in_flight = create(f"{tag}-a", [{"name": "slow", "type": "test_sleep", "params": {"sleep": 1.5}, "timeout": 4},
                                    {"name": "after", "type": "test_noop", "timeout": 4}])
    by_event = create(f"{tag}-b", [{"name": "s", "type": "test_noop", "timeout": 4}],
                      triggers=[{"type": "event", "name": tag, "cooldown": 0}])
    by_message = create(f"{tag}-c", [{"name": "s", "type": "test_noop", "timeout": 4}])
    queue = f"{tag}-q"
    operations.queue_create(name=queue, workflow_id=by_message)

    server = OwnRedis().start()
    env = _env(server.url)
    procs: list[ProcessGroup] = []
    try:
        # Before the loss nothing consumes `events` (where drains of named queues run too): the
        # events and messages accepted below are certainly in Redis only as undrained messages.
        procs.append(_worker(env, "workflows,maintenance", tmp_path / "worker-1.log"))
        sent = _shell(env, INGEST.format(a=in_flight, tag=tag, queue=queue))
        assert sent["events"] == [False] * 10 and sent["messages"] == [False] * 5
        assert InboxMessage.objects.filter(queue_name__in=["events", queue], state="pending").count() == 15
        wait_for(lambda: Execution.objects.filter(workflow_id=in_flight, status="succeeded").count() >= 2,
                 timeout=120, message="executions under way")
        running = Execution.objects.filter(workflow_id=in_flight).exclude(status__in=FINAL).count()
        assert running > 0, "every execution finished before the fault: nothing would be in flight"

        server.kill()  # SIGKILL, data deleted
        time.sleep(3)
        server.start()  # empty, same port
        lost_at = time.monotonic()
        procs.append(_worker(env, "events", tmp_path / "worker-2.log", concurrency=1))
        beat = _beat(env, tmp_path / "beat.log", "--pidfile", str(tmp_path / "beat.pid"),
                     "-s", str(tmp_path / "beat-schedule"))
        procs.append(beat)

        def all_final():
            a = Execution.objects.filter(workflow_id=in_flight)
            b = Execution.objects.filter(workflow_id=by_event)
            c = Execution.objects.filter(workflow_id=by_message)
            return (a.filter(status__in=FINAL).count() == 20 and b.count() == 10 and c.count() == 5
                    and not b.exclude(status__in=FINAL).exists() and not c.exclude(status__in=FINAL).exists())

        try:
            wait_for(all_final, timeout=240, interval=0.5, message="every execution final after the restart")
        except AssertionError:
            print(_unfinished_report([in_flight, by_event, by_message], procs, tmp_path))
            raise
        recovered = time.monotonic() - lost_at
        print(f"recovered {running} in-flight executions + 10 events + 5 messages in {recovered:.1f}s "
              f"after Redis came back; load {Path('/proc/loadavg').read_text().strip()}")

        # Nothing twice: one execution per event and per message, each step succeeded once.
        ids = Counter(e["id"] for e in Execution.objects.filter(workflow_id=by_event)
                      .values_list("trigger_event", flat=True))
        assert ids == Counter({f"evt-{i}": 1 for i in range(10)})
        bodies = Counter(e["n"] for e in Execution.objects.filter(workflow_id=by_message)
                         .values_list("input_data", flat=True))
        assert bodies == Counter({n: 1 for n in range(5)})
        assert set(Execution.objects.filter(workflow_id=in_flight).values_list("status", flat=True)) == {"succeeded"}
        twice = (StepRun.objects.filter(execution__workflow_id__in=[in_flight, by_event, by_message],
                                        status="succeeded")
                 .values("execution_id", "step_name").annotate(n=Count("id")).filter(n__gt=1))
        assert list(twice) == []
        wait_for(lambda: not InboxMessage.objects.filter(queue_name__in=["events", queue], state="pending").exists(),
                 timeout=60, message="every accepted message acknowledged")

        # The same event and the same message, re-sent after the loss: still deduplicated.
        again = _shell(env, RESEND.format(tag=tag, queue=queue))
        assert again == {"event": True, "message": True}
        time.sleep(3)  # a few sweeps and reconciles: nothing new may start
        assert Execution.objects.filter(workflow_id=by_event).count() == 10
        assert Execution.objects.filter(workflow_id=by_message).count() == 5
        assert beat.process.poll() is None, beat.text()[-2000:]
        survivor = procs[0]  # the worker that lived through the loss reconnected instead of exiting
        assert survivor.alive() and "Unrecoverable error" not in survivor.text(), survivor.text()[-3000:]
    finally:
        for proc in reversed(procs):
            proc.stop()
        server.stop()


def _unfinished_report(workflow_ids, procs, tmp_path) -> str:
    """What a timed-out recovery left behind: every unfinished execution with its cursor, dispatch
    generation, heartbeat, step runs and last audit events, and the tail of each process log."""
    from workflows_app.models import AuditEvent
    lines = []
    for execution in Execution.objects.filter(workflow_id__in=workflow_ids).exclude(status__in=FINAL):
        lines.append(f"{execution.id} {execution.status} " + " ".join(
            f"{f}={getattr(execution, f, None)!r}" for f in
            ("cursor", "current_step", "dispatch_count", "heartbeat_at", "started_at")))
        for run in StepRun.objects.filter(execution=execution).order_by("id"):
            lines.append(f"   step {run.step_name} #{run.attempt} {run.status} {run.started_at} {run.finished_at}")
        for event in AuditEvent.objects.filter(execution_id=execution.id).order_by("-id")[:8]:
            lines.append(f"   audit {event.timestamp} {event.event} {event.step} {str(event.data)[:200]}")
    for path in sorted(tmp_path.glob("*.log")):
        lines.append(f"--- {path.name} (tail)\n" + path.read_text(errors="replace")[-4000:])
    return "\n".join(lines)


RECEIVE = """
import json
from workflows_app import operations
got = operations.queue_receive(queue_name="{queue}", max_messages=10)["messages"]
operations.queue_ack(queue_name="{queue}", message_ids=[m["message_id"] for m in got])
print(json.dumps([m["body"] for m in got]))
"""


def test_a_worker_that_outlives_the_restart_refeeds_on_the_next_sweep(tmp_path):
    """No worker (re)starts after the loss: beat's queue sweep, run by the surviving worker, notices the
    new Redis epoch and feeds the accepted messages back."""
    queue = f"dur-{uuid.uuid4().hex[:6]}-pull"
    operations.queue_create(name=queue)
    server = OwnRedis().start()
    env = _env(server.url)
    procs: list[ProcessGroup] = []
    try:
        worker = _worker(env, "maintenance", tmp_path / "worker.log", concurrency=1)
        procs.append(worker)
        sent = _shell(env, f"""
import json
from workflows_app import operations
print(json.dumps([operations.queue_send(queue_name="{queue}", message={{"n": n}})["message_id"] for n in range(3)]))
""")
        before = set(InboxMessage.objects.filter(queue_name=queue).values_list("epoch", flat=True))
        assert len(before) == 1 and all(sent)

        server.kill()
        time.sleep(3)
        server.start()  # empty
        procs.append(_beat(env, tmp_path / "beat.log", "--pidfile", str(tmp_path / "beat.pid")))

        def refed():
            epochs = set(InboxMessage.objects.filter(queue_name=queue).values_list("epoch", flat=True))
            return epochs.isdisjoint(before) and "" not in epochs
        wait_for(refed, timeout=120, interval=0.5, message="the sweep fed the accepted messages again")
        assert "Redis lost 3 accepted message(s)" in worker.text()
        bodies = _shell(env, RECEIVE.format(queue=queue))
        assert sorted(b["n"] for b in bodies) == [0, 1, 2]
        assert set(InboxMessage.objects.filter(queue_name=queue).values_list("state", flat=True)) == {"acked"}
    finally:
        for proc in reversed(procs):
            proc.stop()
        server.stop()
