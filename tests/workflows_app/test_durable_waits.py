"""Durable waits: a `wait` suspends its execution (no worker holds it) and a timer resumes it.

Real workers and a real Redis. Time is driven, never slept: the timer is called with an explicit
`now`, or the wake-up time is moved (the two hours "pass"). Two timers racing resume each
execution once, and so do a timer and a person deciding an approval against its expiry.
"""
from __future__ import annotations

import json
import threading
from datetime import timedelta

import pytest
from django.db import connection
from django.utils import timezone

from tests.support.waiting import wait_for
from tests.workflows_app.helpers import create
from tests.workflows_app.recovery_support import run_client, start_executions
from workflows_app import engine, operations
from workflows_app.engine import wait_until_final
from workflows_app.errors import OperationError
from workflows_app.models import ApprovalRequest, AuditEvent, Execution

pytestmark = pytest.mark.django_db(transaction=True)


def _dispatches(execution_id, reason: str) -> int:
    return sum(1 for e in AuditEvent.objects.filter(execution_id=execution_id, event="execution_dispatched")
               if (e.data or {}).get("reason") == reason)


def _all_waiting(ids: list[str]) -> bool:
    return Execution.objects.filter(pk__in=ids, status="waiting").count() == len(ids)


def test_a_short_wait_ends_on_its_own_without_a_beat(celery_worker):
    """A short wait's delayed wake message resumes it (no beat runs here); the output keeps its shape."""
    soon = (timezone.now() + timedelta(seconds=1)).isoformat()
    wf = create("short-waits", [{"name": "pause", "type": "wait", "params": {"seconds": 0.5}},
                                {"name": "later", "type": "wait", "params": {"until": soon}},
                                {"name": "after", "type": "test_noop"}])
    execution = wait_until_final(operations.workflow_execute(workflow_id=wf)["execution_id"], 120)
    assert execution.status == "succeeded", execution.error
    assert execution.context["pause"]["waited"] == 0.5
    assert execution.context["later"]["until"] == soon and execution.context["later"]["waited"] <= 1
    assert _dispatches(execution.id, "wait_over") == 2


def test_the_reconciler_leaves_a_waiting_execution_alone_and_health_reports_overdue_waits(celery_worker):
    wf = create("long-wait", [{"name": "pause", "type": "wait", "params": {"seconds": 3600}}])
    execution_id = operations.workflow_execute(workflow_id=wf)["execution_id"]
    wait_for(lambda: _all_waiting([execution_id]), timeout=120, message="waiting")
    later = timezone.now() + timedelta(hours=30)  # long silent: a running execution would look lost
    assert engine.reconcile(now=later, margin=0) == []
    assert Execution.objects.get(pk=execution_id).status == "waiting"
    from workflows_app.engine.timers import timer_health

    assert timer_health()["ok"] and timer_health()["waiting"] == 1  # waiting, not yet due: healthy
    overdue = timer_health(now=later)  # due an hour ago and still waiting: the timer is not running
    assert not overdue["ok"] and overdue["overdue"] == 1 and "nexus-timers" in overdue["error"]
    assert operations.execution_cancel(execution_id=execution_id)["status"] == "cancelled"
    assert engine.resume_due(now=later) == []  # a cancelled wait is not resumed


def _race(target, *args) -> list:
    """Run `target(*args)` in two threads released together; both results."""
    barrier, results = threading.Barrier(2), [None, None]

    def one(index: int) -> None:
        try:
            barrier.wait(30)
            results[index] = target(*args)
        finally:
            connection.close()

    threads = [threading.Thread(target=one, args=(i,)) for i in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(120)
    return results


def test_two_timers_racing_resume_each_wait_once(celery_worker):
    n = 12
    wf = create("raced-waits", [{"name": "pause", "type": "wait", "params": {"seconds": 7200}},
                                {"name": "after", "type": "test_noop"}])
    ids = [operations.workflow_execute(workflow_id=wf)["execution_id"] for _ in range(n)]
    wait_for(lambda: _all_waiting(ids), timeout=180, message=f"{n} executions waiting")
    first, second = _race(engine.resume_due, timezone.now() + timedelta(hours=2, seconds=1))
    assert not set(first) & set(second), "an execution was resumed by both timers"
    assert sorted(first + second) == sorted(ids)
    for execution_id in ids:
        assert wait_until_final(execution_id, 120).status == "succeeded"
        assert _dispatches(execution_id, "wait_over") == 1


def _approve_each(ids: list[str]) -> list[str]:
    approved = []
    for execution_id in ids:
        try:
            operations.execution_approve(execution_id=execution_id)
            approved.append(execution_id)
        except OperationError as exc:
            assert exc.code == "CONFLICT", exc
    return approved


def test_a_decision_racing_the_expiry_settles_each_approval_once(celery_worker):
    n = 10
    wf = create("raced-approvals", [
        {"name": "confirm", "type": "approval", "params": {"expires_in": 60}, "on_reject": "note"},
        {"name": "place", "type": "test_noop"},
        {"name": "note", "type": "test_noop"}])
    ids = [operations.workflow_execute(workflow_id=wf)["execution_id"] for _ in range(n)]
    wait_for(lambda: _all_waiting(ids), timeout=180, message=f"{n} approvals waiting")
    results: dict = {}
    barrier = threading.Barrier(2)

    def timer():
        barrier.wait(30)
        results["expired"] = engine.resume_due(now=timezone.now() + timedelta(minutes=5))
        connection.close()

    thread = threading.Thread(target=timer)
    thread.start()
    barrier.wait(30)
    results["approved"] = _approve_each(ids)
    thread.join(120)
    assert sorted(results["approved"] + results["expired"]) == sorted(ids), results
    for execution_id in ids:
        execution = wait_until_final(execution_id, 120)
        request = ApprovalRequest.objects.get(execution=execution)
        assert execution.status == "succeeded", execution.error
        assert request.status == ("approved" if execution_id in results["approved"] else "expired")
        assert execution.context["confirm"]["decision"] == request.status
        assert ("place" in execution.context) == (request.status == "approved")


@pytest.mark.slow
def test_a_two_hour_wait_frees_its_worker_and_resumes_after_worker_beat_and_redis_restarts(
        own_redis, beats, worker_process, monkeypatch):
    monkeypatch.setenv("REDIS_URL", own_redis.url)  # the worker and beat subprocesses use our Redis
    monkeypatch.setenv("NEXUS_TIMER_EVERY", "1")
    wf = create("two-hours", [{"name": "nap", "type": "wait", "params": {"seconds": 7200}},
                              {"name": "after", "type": "test_noop"}])
    quick = create("meanwhile", [{"name": "s", "type": "test_noop"}])
    worker = worker_process(concurrency=1)  # one process, every queue (maintenance too)
    beat = beats(own_redis.url)
    execution_id = start_executions(own_redis.url, [(wf, 1, {})])[wf][0]
    wait_for(lambda: _all_waiting([execution_id]), timeout=180, message="the wait suspended")
    execution = Execution.objects.get(pk=execution_id)
    assert 7100 < (execution.wake_at - timezone.now()).total_seconds() <= 7200

    # The worker's only process is free: another execution runs to the end meanwhile ...
    other = start_executions(own_redis.url, [(quick, 1, {})])[quick][0]
    assert wait_until_final(other, 180).status == "succeeded"
    # ... and the worker holds no task of the wait (not running, reserved, or scheduled for later).
    held = _held_tasks(own_redis.url)
    assert held["answered"], held
    assert not [t for t in held["tasks"] if t["name"].startswith("nexus.engine.") or execution_id in t["args"]], held

    worker.kill()  # SIGKILL worker and beat, then lose Redis too: the wake-up time is in the database
    beat.kill()
    own_redis.kill()
    own_redis.start()
    worker_process(concurrency=1)
    beat = beats(own_redis.url)
    wait_for(lambda: beat.state() == "active", timeout=120, message="beat active again")
    assert Execution.objects.get(pk=execution_id).status == "waiting"

    # Two hours pass: the test moves the wake-up time into the past (the clock it drives).
    moved_at = timezone.now()
    Execution.objects.filter(pk=execution_id).update(wake_at=moved_at - timedelta(seconds=1))
    execution = wait_until_final(execution_id, 240)
    print(json.dumps({"resumed_after_due_s": round((execution.finished_at - moved_at).total_seconds(), 2),
                      "held_tasks_while_waiting": held["tasks"]}))
    assert execution.status == "succeeded", execution.error
    assert execution.context["nap"]["waited"] == 7200 and "after" in execution.context
    assert _dispatches(execution_id, "wait_over") == 1


def _held_tasks(redis_url: str) -> dict:
    """What every worker holds (celery inspect: active, reserved, scheduled), asked from a process on our Redis."""
    out = run_client(redis_url, (
        "import json\n"
        "from nexus_project.celery import app\n"
        "i = app.control.inspect(timeout=10)\n"
        "replies = {'active': i.active(), 'reserved': i.reserved(), 'scheduled': i.scheduled()}\n"
        "tasks = []\n"
        "for kind, per_worker in replies.items():\n"
        "    for worker, items in (per_worker or {}).items():\n"
        "        for item in items:\n"
        "            req = item.get('request', item)\n"
        "            if req.get('name') != 'nexus.maintenance.wake_timers':\n"
        "                tasks.append({'kind': kind, 'name': req.get('name') or '', 'args': json.dumps(req.get('args'))})\n"
        "print('HELD=' + json.dumps({'answered': bool(replies['active']), 'tasks': tasks}))\n"))
    return json.loads(out.rsplit("HELD=", 1)[1])


def test_a_wait_until_a_market_moment_follows_the_exchange_calendar():
    """`until` as a moment of the exchange's calendar: the first one after now, holidays and early
    closes applied (Thanksgiving 2026 is closed; the day after closes at 13:00 New York)."""
    from datetime import datetime
    from zoneinfo import ZoneInfo

    from pydantic import ValidationError

    from workflows_app.engine.timers import resolve_until
    from workflows_app.steps import WaitParams

    new_york = ZoneInfo("America/New_York")
    thanksgiving = datetime(2026, 11, 26, 10, 0, tzinfo=new_york)
    assert resolve_until("next_open", thanksgiving).astimezone(new_york) == datetime(2026, 11, 27, 9, 30,
                                                                                     tzinfo=new_york)
    assert resolve_until("close-10m", thanksgiving).astimezone(new_york) == datetime(2026, 11, 27, 12, 50,
                                                                                     tzinfo=new_york)
    assert resolve_until("2026-12-02T14:30:00Z") == datetime.fromisoformat("2026-12-02T14:30:00+00:00")
    assert WaitParams(until="next_close", exchange="XLON").exchange == "XLON"
    for bad, field in (({"until": "nextopen"}, "until"), ({"until": "next_open", "exchange": "NOPE"}, "exchange"),
                       ({"until": "2026-12-02T14:30:00"}, "until")):
        with pytest.raises(ValidationError) as error:
            WaitParams(**bad)
        assert error.value.errors()[0]["loc"][0] == field, error.value.errors()
