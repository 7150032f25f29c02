"""Schedule triggers on django-celery-beat: sync, timezones across DST, one beat only, firing."""
from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime, timedelta
from unittest import mock
from zoneinfo import ZoneInfo

import pytest
from django_celery_beat.models import PeriodicTask, PeriodicTasks
from django_celery_beat.schedulers import ModelEntry

from tests.support.waiting import wait_for
from workflows_app import beat, operations, queues
from workflows_app.errors import OperationError
from workflows_app.models import AuditEvent, Execution, Trigger
from workflows_app.services import events

pytestmark = pytest.mark.django_db(transaction=True)
NY = ZoneInfo("America/New_York")


def _create(triggers, name=None) -> str:
    return operations.workflow_create(name=name or f"sched-{uuid.uuid4().hex[:8]}", triggers=triggers,
                                      steps=[{"name": "s", "type": "test_noop"}])["workflow_id"]


def _tasks(workflow_id):
    return list(PeriodicTask.objects.filter(name__startswith=f"workflow:{workflow_id}:").order_by("name"))


def test_schedule_sync_on_create_update_pause_resume_delete(redis_test_client):
    workflow_id = _create([{"type": "schedule", "cron": "0 9 * * 1-5", "timezone": "America/New_York"},
                           {"type": "price_change", "symbol": "AAPL", "threshold": 0.02},
                           {"type": "schedule", "cron": "30 15 * * 1-5", "timezone": "America/New_York"}])
    tasks = _tasks(workflow_id)
    assert [t.name for t in tasks] == [f"workflow:{workflow_id}:trigger:0", f"workflow:{workflow_id}:trigger:2"]
    first = tasks[0]
    assert first.task == "nexus.events.fire_schedule" and first.enabled and first.queue == "events"
    assert (first.crontab.minute, first.crontab.hour, first.crontab.day_of_week) == ("0", "9", "1-5")
    assert str(first.crontab.timezone) == "America/New_York"
    trigger = Trigger.objects.get(workflow_id=workflow_id, position=0)
    assert json.loads(first.args) == [trigger.pk] and trigger.periodic_task_id == first.pk

    status = operations.workflow_status(workflow_id=workflow_id)
    summary = status["triggers"][0]
    assert summary["periodic_task"] == first.name and summary["last_fired_at"] is None
    next_run = datetime.fromisoformat(summary["next_run_at"])
    assert next_run.astimezone(NY).hour == 9 and next_run.astimezone(NY).minute == 0

    operations.workflow_update(workflow_id=workflow_id, updates={"triggers[0].cron": "15 10 * * *"})
    task = _tasks(workflow_id)[0]
    assert (task.crontab.minute, task.crontab.hour, task.crontab.day_of_week) == ("15", "10", "*")

    changed = PeriodicTasks.last_change()
    operations.workflow_pause(workflow_id=workflow_id)
    assert [t.enabled for t in _tasks(workflow_id)] == [False, False]
    # a running DatabaseScheduler compares this stamp on every tick: it reloads without a restart
    assert PeriodicTasks.last_change() > changed
    assert operations.workflow_status(workflow_id=workflow_id)["triggers"][0]["next_run_at"] is None
    operations.workflow_resume(workflow_id=workflow_id)
    assert [t.enabled for t in _tasks(workflow_id)] == [True, True]

    # dropping a schedule trigger drops its task
    current = operations.workflow_get(workflow_id=workflow_id)
    operations.workflow_update(workflow_id=workflow_id, updates={"triggers": [
        {k: v for k, v in current["triggers"][0].items()
         if k in ("type", "cron", "timezone")}]})
    assert [t.name for t in _tasks(workflow_id)] == [f"workflow:{workflow_id}:trigger:0"]

    operations.workflow_delete(workflow_id=workflow_id)
    assert _tasks(workflow_id) == []


def test_invalid_cron_or_timezone_is_refused_with_the_field(redis_test_client):
    for bad, field in (({"type": "schedule", "cron": "61 * * * *"}, "triggers[0].cron"),
                       ({"type": "schedule", "cron": "0 9 * * *", "timezone": "Mars/Base"}, "triggers[0].timezone")):
        with pytest.raises(OperationError) as err:
            _create([bad])
        fields = json.dumps(err.value.details)
        assert field in fields, err.value.details
    assert not PeriodicTask.objects.filter(name__startswith="workflow:").exists()


def _firings(task: PeriodicTask, start: datetime, end: datetime, step=timedelta(minutes=1)) -> list[datetime]:
    """Drive the beat entry's is_due on a controlled clock, as the scheduler's tick would."""
    entry = ModelEntry(task)
    entry.last_run_at = start
    clock = {"now": start}
    entry.schedule.nowfun = lambda: clock["now"].astimezone(entry.schedule.tz)
    fired = []
    now = start
    while now <= end:
        clock["now"] = now
        due, _next = entry.is_due()
        if due:
            fired.append(now)
            entry.last_run_at = now
        now += step
    return fired


def test_cron_in_new_york_fires_once_at_the_right_wall_clock_time_across_dst(redis_test_client):
    workflow_id = _create([{"type": "schedule", "cron": "0 9 * * 1-5", "timezone": "America/New_York"}])
    task = _tasks(workflow_id)[0]
    # DST starts in New York on Sunday 2026-03-08: 9:00 is 14:00 UTC before, 13:00 UTC after.
    fired = _firings(task, datetime(2026, 3, 5, 20, 0, tzinfo=UTC), datetime(2026, 3, 10, 20, 0, tzinfo=UTC))
    assert [f.astimezone(NY).strftime("%a %H:%M") for f in fired] == ["Fri 09:00", "Mon 09:00", "Tue 09:00"]
    assert [f.strftime("%d %H:%M") for f in fired] == ["06 14:00", "09 13:00", "10 13:00"]
    # DST ends on Sunday 2026-11-01 (1:00-2:00 happens twice): 9:00 is 13:00 UTC before, 14:00 UTC after.
    fired = _firings(task, datetime(2026, 10, 29, 20, 0, tzinfo=UTC), datetime(2026, 11, 3, 20, 0, tzinfo=UTC))
    assert [f.strftime("%d %H:%M") for f in fired] == ["30 13:00", "02 14:00", "03 14:00"]


def test_a_cron_in_the_repeated_hour_fires_once(redis_test_client):
    queues.ensure_default_queues()
    workflow_id = _create([{"type": "schedule", "cron": "30 1 * * *", "timezone": "America/New_York"}])
    task = _tasks(workflow_id)[0]
    trigger = Trigger.objects.get(workflow_id=workflow_id)
    start, end = datetime(2026, 10, 31, 12, 0, tzinfo=UTC), datetime(2026, 11, 1, 12, 0, tzinfo=UTC)
    # Whatever the beat entry decides in the repeated hour, the firing is once per wall-clock minute.
    fired = [events.fire_schedule(trigger.pk, now=at) for at in _firings(task, start, end)]
    fired += [events.fire_schedule(trigger.pk, now=datetime(2026, 11, 1, 6, 30, tzinfo=UTC))]  # 1:30 EST
    assert sum(1 for f in fired if f["fired"]) == 1
    assert next(f for f in fired if f["fired"])["wall_clock"] == "2026-11-01T01:30"


def test_fire_schedule_starts_an_execution_and_records_last_fired_at(celery_worker, redis_test_client):
    queues.ensure_default_queues()
    workflow_id = _create([{"type": "schedule", "cron": "*/5 * * * *"}])
    trigger = Trigger.objects.get(workflow_id=workflow_id)
    from workflows_app.event_tasks import fire_schedule

    fire_schedule.delay(trigger.pk)
    execution = wait_for(lambda: Execution.objects.filter(workflow_id=workflow_id).first())
    assert execution.trigger == "schedule" and execution.trigger_event["cron"] == "*/5 * * * *"
    trigger.refresh_from_db()
    assert trigger.last_fired_at is not None
    assert AuditEvent.objects.filter(event="trigger_fired", workflow_id=workflow_id).count() == 1
    status = operations.workflow_status(workflow_id=workflow_id)
    assert status["triggers"][0]["last_fired_at"] == trigger.last_fired_at.isoformat()
    # a paused workflow's schedule does not start anything
    operations.workflow_pause(workflow_id=workflow_id)
    fire_schedule.delay(trigger.pk)
    wait_for(lambda: queues.status("events")["total_messages"] == 0, message="events queue drained")
    assert Execution.objects.filter(workflow_id=workflow_id).count() == 1


def test_a_second_beat_stays_on_stand_by(redis_test_client):
    from nexus_project.celery import app

    redis_test_client.delete(beat.LOCK_KEY)
    with mock.patch("django_celery_beat.schedulers.DatabaseScheduler.tick", return_value=1.0) as real_tick:
        first = beat.NexusScheduler(app=app, lazy=True)
        second = beat.NexusScheduler(app=app, lazy=True)
        first.tick()
        second.tick()
        second.tick()
        first.tick()
        assert real_tick.call_count == 2  # only the first one ever ran the schedule
        assert first._was_leader is True and second._was_leader is False
        assert redis_test_client.get(beat.LOCK_KEY) == first.lock_token
        first.close()  # the first one stops: the second takes over on its next tick
        second.tick()
        assert second._was_leader is True and real_tick.call_count == 3
        second.close()


def test_the_beat_tick_fires_a_new_york_cron_once_at_nine_across_dst(redis_test_client):
    """The real scheduler (NexusScheduler = DatabaseScheduler + lock) ticking on a controlled clock."""
    from django_celery_beat import schedulers as dcb
    from django_celery_beat import tzcrontab

    from nexus_project.celery import app

    workflow_id = _create([{"type": "schedule", "cron": "0 9 * * 1-5", "timezone": "America/New_York"}])
    trigger = Trigger.objects.get(workflow_id=workflow_id)
    start = datetime(2026, 3, 9, 12, 50, tzinfo=UTC)  # Monday after DST began: 9:00 EDT = 13:00 UTC
    PeriodicTask.objects.filter(name__startswith="workflow:").update(last_run_at=start)
    clock = {"now": start}
    sent = []
    redis_test_client.delete(beat.LOCK_KEY)
    saved_schedule = app.conf.beat_schedule
    app.conf.beat_schedule = {}  # only the workflow's task, not the housekeeping jobs
    try:
        with mock.patch.object(tzcrontab.TzAwareCrontab, "nowfunc", lambda self: clock["now"].astimezone(self.tz)), \
                mock.patch.object(dcb.ModelEntry, "_default_now", lambda self: clock["now"]), \
                mock.patch.object(dcb, "aware_now", lambda: clock["now"]), \
                mock.patch.object(beat.NexusScheduler, "apply_async",
                                  lambda self, entry, *a, **k: sent.append((clock["now"], entry.task, entry.args))):
            scheduler = beat.NexusScheduler(app=app)
            while clock["now"] <= start + timedelta(hours=1, minutes=15):  # past 14:00 UTC (9:00 EST)
                for _ in range(3):
                    scheduler.tick()
                clock["now"] += timedelta(seconds=30)
            scheduler.close()
    finally:
        app.conf.beat_schedule = saved_schedule
    fired = [(at, task, args) for at, task, args in sent if task == "nexus.events.fire_schedule"]
    assert [(at.strftime("%H:%M"), list(args)) for at, _task, args in fired] == [("13:00", [trigger.pk])]
