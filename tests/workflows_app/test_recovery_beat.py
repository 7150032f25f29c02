"""Beat outlives its faults: a Redis SIGKILLed under it, and the active beat of two SIGKILLed.

Real processes only: a redis-server this module starts (and kills) on a port of its own, real
`celery beat` subprocesses on the test database, a real worker subprocess for the schedule test.
"""
from __future__ import annotations

import json
import time
from collections import Counter

import pytest

from tests.support.waiting import wait_for
from workflows_app.models import Execution

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.slow]


def test_beat_outlives_a_redis_outage_and_takes_the_lock_back(own_redis, beats, client):
    from workflows_app import beat as beat_module

    r = own_redis.client()
    beat = beats(own_redis.url)
    wait_for(lambda: beat.state() == "active", timeout=90, message=f"beat active ({beat.log})")
    assert r.get(beat_module.LOCK_KEY)

    own_redis.kill()  # Redis gone, beat's lock and queued messages with it
    wait_for(lambda: beat.state() == "degraded", timeout=60, message="beat reports it cannot reach Redis")
    assert beat.alive(), beat.log.read_text()[-3000:]
    reply = client.get("/health/")
    body = reply.json()
    assert reply.status_code == 503 and "beat" in body["down"], body
    assert "cannot reach Redis" in body["beat"]["error"], body["beat"]
    down_since = beat.heartbeat().last_seen
    wait_for(lambda: beat.heartbeat().last_seen > down_since, timeout=60, message="beat keeps retrying")
    assert beat.alive()

    own_redis.start()  # back, empty, on the same port
    back_at = time.time()
    wait_for(lambda: beat.state() == "active", timeout=90, message="beat active again")
    active_after = time.time() - back_at
    token = wait_for(lambda: r.get(beat_module.LOCK_KEY), timeout=30, message="lock taken back")
    assert beat.alive()
    # ticking again: the reconciler (every 2 s here) is sent to the new, empty Redis
    wait_for(lambda: any(r.llen(k) for k in r.keys("maintenance*") if r.type(k) == "list"), timeout=60,
             message="housekeeping messages sent after Redis came back")
    assert r.get(beat_module.LOCK_KEY) == token  # still ours: one beat, one lock
    log = beat.log.read_text()
    assert "cannot reach Redis" in log and "Redis answers again" in log
    assert "beat raised exception" not in log
    print(json.dumps({"beat_active_again_after_redis_back_s": round(active_after, 1)}))


def test_stand_by_beat_takes_over_and_no_schedule_minute_fires_twice(own_redis, beats, worker_process,
                                                                   monkeypatch):
    from workflows_app import beat as beat_module
    from workflows_app import operations

    monkeypatch.setenv("REDIS_URL", own_redis.url)  # the worker subprocess consumes from our Redis
    worker_process(queues="events,workflows", concurrency=2)
    created = operations.workflow_create(
        name=f"every-minute-{time.monotonic_ns()}", steps=[{"name": "s", "type": "test_noop"}],
        triggers=[{"type": "schedule", "cron": "* * * * *"}])
    workflow_id = created["workflow_id"]
    r = own_redis.client()
    first = beats(own_redis.url)
    wait_for(lambda: first.state() == "active", timeout=90, message="first beat active")
    second = beats(own_redis.url)
    wait_for(lambda: second.state() == "standby", timeout=90, message="second beat on stand-by")

    def executions() -> list[Execution]:
        return list(Execution.objects.filter(workflow_id=workflow_id))

    wait_for(lambda: executions(), timeout=150, interval=0.2, message="the first beat fired the schedule")
    first.kill()  # right after it fired: it may not have saved last_run_at, so the other beat sees the minute due
    killed_at = time.time()
    wait_for(lambda: second.state() == "active", timeout=90, message="stand-by beat took over")
    taken_over_at = time.time()
    assert r.get(beat_module.LOCK_KEY)
    wait_for(lambda: len(executions()) >= 2, timeout=150, interval=0.5, message="the second beat fired a later minute")
    time.sleep(3)  # anything the takeover sent late has been consumed by now (events queue is fast)
    wait_for(lambda: not any(r.llen(k) for k in r.keys("events*") if r.type(k) == "list"), timeout=60,
             message="events queue drained")

    minutes = Counter(_wall_clock(e) for e in executions())
    assert minutes and all(count == 1 for count in minutes.values()), minutes
    print(json.dumps({"takeover_seconds": round(taken_over_at - killed_at, 1), "minutes": dict(minutes)}))


def _wall_clock(execution: Execution) -> str:
    """The schedule minute an execution was started for (from its event), else its start minute."""
    found = _find(execution.input_data, "wall_clock")
    return found or execution.queued_at.strftime("%Y-%m-%dT%H:%M")


def _find(value, key):
    if isinstance(value, dict):
        if isinstance(value.get(key), str):
            return value[key]
        for item in value.values():
            found = _find(item, key)
            if found:
                return found
    return None


def test_every_housekeeping_entry_expires_after_about_its_period():
    """Beat's interval jobs (reconciler, sweeps, dead letters, pollers, broker sync) carry an expiry of
    about one period, so messages a backlog held up are dropped instead of piling up."""
    from django_celery_beat.models import PeriodicTask

    from nexus_project.celery import app
    from workflows_app import beat

    scheduler = beat.NexusScheduler(app=app)  # syncs the code's entries into django-celery-beat's table
    try:
        entries = {name: beat._period(entry["schedule"]) for name, entry in app.conf.beat_schedule.items()}
        rows = {t.name: t for t in PeriodicTask.objects.filter(name__in=list(entries))}
        assert {"nexus-reconcile", "nexus-queue-sweep", "nexus-dead-letters", "nexus-poll-market",
                "nexus-poll-news", "nexus-trading-process-open-orders"} <= set(rows)
        for name, period in entries.items():
            if period:
                assert rows[name].expire_seconds == int(max(5, period)), name
                assert scheduler.schedule[name].options["expires"] == int(max(5, period)), name
    finally:
        scheduler.close()
