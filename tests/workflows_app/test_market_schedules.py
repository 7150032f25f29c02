"""Schedules that know the exchange, through the real beat scheduler (NexusScheduler, its Redis lock
and django-celery-beat's database entries) on a controlled clock: holidays, early closes, DST,
catch-up after an outage, two beats at once; and what workflow_status says about them."""
from __future__ import annotations

import json
import uuid
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from unittest import mock
from zoneinfo import ZoneInfo

import pytest
from django_celery_beat import schedulers as dcb
from django_celery_beat.models import PeriodicTask

from workflows_app import beat, operations, queues
from workflows_app.errors import OperationError
from workflows_app.models import ProcessHeartbeat, Trigger, Workflow
from workflows_app.selectors import schedules as schedule_selectors
from workflows_app.services import events

pytestmark = pytest.mark.django_db(transaction=True)
NY = ZoneInfo("America/New_York")


def ny(*args) -> datetime:
    return datetime(*args, tzinfo=NY)


def _create(trigger: dict) -> Trigger:
    workflow_id = operations.workflow_create(name=f"mkt-{uuid.uuid4().hex[:8]}", triggers=[trigger],
                                             steps=[{"name": "s", "type": "test_noop"}])["workflow_id"]
    return Trigger.objects.get(workflow_id=workflow_id)


class Beats:
    """Real NexusSchedulers on one controlled clock; what they send is recorded (not delivered)."""

    def __init__(self, app, clock, sent):
        self.app, self.clock, self.sent = app, clock, sent

    def start(self) -> beat.NexusScheduler:
        return beat.NexusScheduler(app=self.app)

    def run(self, schedulers, until: datetime, step: timedelta = timedelta(minutes=15)) -> None:
        """Tick every `step` of controlled time. A real beat ticks every few seconds and reloads its
        entries every 5 minutes of real time (django-celery-beat's hour window for crontabs): each
        step stands for that much time passing, so each step reloads."""
        while self.clock["now"] <= until:
            for scheduler in schedulers:
                scheduler._last_full_sync = datetime.now() - timedelta(seconds=dcb.SCHEDULE_SYNC_MAX_INTERVAL + 1)
                scheduler.tick()
                scheduler.tick()
            self.clock["now"] += step


@pytest.fixture(autouse=True)
def _grace(settings):
    """The controlled clock moves in steps of up to 15 minutes: a firing is sent up to that late."""
    settings.NEXUS_SCHEDULE_GRACE = 20 * 60


@contextmanager
def controlled_beats(redis_test_client, start: datetime):
    from nexus_project.celery import app

    clock, sent = {"now": start.astimezone(UTC)}, []
    redis_test_client.delete(beat.LOCK_KEY)
    saved = app.conf.beat_schedule
    app.conf.beat_schedule = {}  # the workflows' tasks only, not the housekeeping jobs

    def record(self, entry, *args, **kwargs):  # the broker boundary: the message beat would send
        sent.append((clock["now"], entry.task, list(entry.args)))

    try:
        with mock.patch.object(dcb.ModelEntry, "_default_now", lambda self: clock["now"]), \
                mock.patch.object(dcb, "aware_now", lambda: clock["now"]), \
                mock.patch.object(dcb.DatabaseScheduler, "apply_async", record):
            yield Beats(app, clock, sent)
    finally:
        app.conf.beat_schedule = saved
        redis_test_client.delete(beat.LOCK_KEY)


def _since(at: datetime) -> None:
    PeriodicTask.objects.filter(name__startswith="workflow:").update(last_run_at=at)


def _scheduled(sent, trigger) -> list[datetime]:
    return [datetime.fromisoformat(args[1]) for _at, task, args in sent
            if task == "nexus.events.fire_schedule" and args[0] == trigger.pk]


def _ny(times) -> list[str]:
    return [t.astimezone(NY).strftime("%a %m-%d %H:%M") for t in times]


def test_thanksgiving_is_skipped_and_the_next_day_closes_early(redis_test_client):
    nine = _create({"type": "schedule", "cron": "0 9 * * 1-5", "timezone": "America/New_York", "calendar": "XNYS"})
    close = _create({"type": "market_schedule", "exchange": "XNYS", "at": "close-15m"})
    start = ny(2026, 11, 25, 8, 0)
    _since(start)
    with controlled_beats(redis_test_client, start) as beats:
        scheduler = beats.start()
        beats.run([scheduler], until=ny(2026, 11, 30, 16, 0))
        scheduler.close()
    assert _ny(_scheduled(beats.sent, nine)) == ["Wed 11-25 09:00", "Fri 11-27 09:00", "Mon 11-30 09:00"]
    assert _ny(_scheduled(beats.sent, close)) == ["Wed 11-25 15:45", "Fri 11-27 12:45", "Mon 11-30 15:45"]


def test_open_plus_five_across_a_week_with_a_holiday_and_the_dst_changes(redis_test_client):
    opening = _create({"type": "market_schedule", "exchange": "XNYS", "at": "open+5m"})
    for first, last, expected in (
            (ny(2026, 11, 23, 8, 0), ny(2026, 11, 30, 10, 0),  # Thanksgiving week
             ["Mon 11-23 09:35", "Tue 11-24 09:35", "Wed 11-25 09:35", "Fri 11-27 09:35", "Mon 11-30 09:35"]),
            (ny(2026, 3, 5, 12, 0), ny(2026, 3, 10, 12, 0),  # DST starts Sunday 8 March
             ["Fri 03-06 09:35", "Mon 03-09 09:35", "Tue 03-10 09:35"])):
        _since(first)
        with controlled_beats(redis_test_client, first) as beats:
            scheduler = beats.start()
            beats.run([scheduler], until=last)
            scheduler.close()
        assert _ny(_scheduled(beats.sent, opening)) == expected
    utc = [t.strftime("%d %H:%M") for t in _scheduled(beats.sent, opening)]
    assert utc == ["06 14:35", "09 13:35", "10 13:35"]  # the same wall time, an hour earlier in UTC


def test_a_calendar_cron_fires_once_at_the_right_wall_time_when_dst_ends(redis_test_client):
    queues.ensure_default_queues()
    nine = _create({"type": "schedule", "cron": "0 9 * * *", "timezone": "America/New_York", "calendar": "XNYS"})
    early = _create({"type": "schedule", "cron": "30 1 * * *", "timezone": "America/New_York"})  # the repeated hour
    start = ny(2026, 10, 29, 12, 0)
    _since(start)
    with controlled_beats(redis_test_client, start) as beats:
        scheduler = beats.start()
        beats.run([scheduler], until=ny(2026, 11, 3, 12, 0))
        scheduler.close()
    assert [t.strftime("%d %H:%M") for t in _scheduled(beats.sent, nine)] == ["30 13:00", "02 14:00", "03 14:00"]
    fired = [events.fire_schedule(early.pk, scheduled_for=t.isoformat()) for t in _scheduled(beats.sent, early)]
    fired.append(events.fire_schedule(early.pk, scheduled_for="2026-11-01T06:30:00+00:00"))  # 1:30 EST as well
    walls = [f["wall_clock"] for f in fired if f["fired"]]
    assert walls == ["2026-10-30T01:30", "2026-10-31T01:30", "2026-11-01T01:30", "2026-11-02T01:30",
                     "2026-11-03T01:30"]


def _outage(redis_test_client, settings, trigger, *, beats_after: int = 1) -> list[dict]:
    """Fire at 10:00 and 10:30 New York, the beat dies (last_run_at unsaved), comes back at 13:40 (3 h
    later), runs to 14:05: returns every fire_schedule reply of what the beats sent, in order."""
    queues.ensure_default_queues()
    settings.NEXUS_SCHEDULE_GRACE = 300  # the default: this clock moves a minute at a time
    start = ny(2026, 12, 1, 9, 55)
    _since(start)
    with controlled_beats(redis_test_client, start) as beats:
        first = beats.start()
        beats.run([first], until=ny(2026, 12, 1, 10, 35), step=timedelta(minutes=1))
        replies = [events.fire_schedule(trigger.pk, scheduled_for=a[1]) for a in _args(beats.sent, trigger)]
        assert [r["wall_clock"] for r in replies if r["fired"]] == ["2026-12-01T10:00", "2026-12-01T10:30"]
        redis_test_client.delete(beat.LOCK_KEY)  # killed: its lock expires, nothing was synced
        beats.sent.clear()
        beats.clock["now"] = ny(2026, 12, 1, 13, 40).astimezone(UTC)
        later = [beats.start() for _ in range(beats_after)]
        with mock.patch.object(beat, "acquire_or_refresh", return_value=True):  # all of them think they lead
            beats.run(later, until=ny(2026, 12, 1, 14, 5), step=timedelta(minutes=1))
        for scheduler in [*later, first]:
            scheduler.close()
    return [events.fire_schedule(trigger.pk, scheduled_for=a[1]) for a in _args(beats.sent, trigger)]


def _args(sent, trigger) -> list[list]:
    return [args for _at, task, args in sent if task == "nexus.events.fire_schedule" and args[0] == trigger.pk]


def _walls(replies) -> list[str]:
    return [r["wall_clock"][11:] for r in replies if r["fired"]]


@pytest.mark.parametrize(("policy", "window", "expected"), [
    ("skip", None, ["14:00"]),
    ("latest", 3600 * 4, ["13:30", "14:00"]),
    ("all", 3600 * 4, ["11:00", "11:30", "12:00", "12:30", "13:00", "13:30", "14:00"]),
    ("all", 3600, ["13:00", "13:30", "14:00"]),  # only within its window
])
def test_catch_up_after_a_three_hour_outage(redis_test_client, settings, policy, window, expected):
    params = {"type": "schedule", "cron": "0,30 * * * *", "timezone": "America/New_York", "catch_up": policy}
    if window:
        params["catch_up_window"] = window
    replies = _outage(redis_test_client, settings, _create(params))
    assert _walls(replies) == expected


def test_catch_up_window_is_bounded_by_the_operator_ceiling(redis_test_client, settings):
    settings.NEXUS_SCHEDULE_CATCH_UP_MAX = 1800
    trigger = _create({"type": "schedule", "cron": "0,30 * * * *", "timezone": "America/New_York",
                       "catch_up": "all", "catch_up_window": 4 * 3600})
    assert _walls(_outage(redis_test_client, settings, trigger)) == ["13:30", "14:00"]


def test_two_beats_at_once_never_fire_a_minute_twice(redis_test_client, settings):
    params = {"type": "schedule", "cron": "0,30 * * * *", "timezone": "America/New_York", "catch_up": "all",
              "catch_up_window": 4 * 3600}
    cron = _create(params)
    replies = _outage(redis_test_client, settings, cron, beats_after=2)
    assert len(replies) >= 2 * 7  # both beats sent every missed firing...
    assert _walls(replies) == ["11:00", "11:30", "12:00", "12:30", "13:00", "13:30", "14:00"]  # ...each fired once
    assert {r["reason"] for r in replies if not r["fired"]} == {"already fired at this wall-clock time"}


def test_fire_schedule_refuses_a_time_off_the_calendar(redis_test_client):
    queues.ensure_default_queues()
    trigger = _create({"type": "market_schedule", "exchange": "XNYS", "at": "close-15m"})
    refused = events.fire_schedule(trigger.pk, scheduled_for=ny(2026, 11, 26, 15, 45).isoformat())
    assert refused == {"fired": False, "reason": "XNYS holiday", "wall_clock": "2026-11-26T15:45"}
    refused = events.fire_schedule(trigger.pk, scheduled_for=ny(2026, 11, 27, 15, 45).isoformat())
    assert refused["reason"] == "not close-15m on 2026-11-27"
    assert events.fire_schedule(trigger.pk, scheduled_for=ny(2026, 11, 27, 12, 45).isoformat())["fired"]


def test_invalid_market_schedules_are_refused_with_the_field(redis_test_client):
    for bad, field in (({"type": "market_schedule", "exchange": "XNYZ", "at": "open"}, "triggers[0].exchange"),
                       ({"type": "market_schedule", "exchange": "XNYS", "at": "open+7h"}, "triggers[0].at"),
                       ({"type": "market_schedule", "exchange": "XNYS", "at": "07:00"}, "triggers[0].at"),
                       ({"type": "schedule", "cron": "0 9 * * *", "calendar": "MARS"}, "triggers[0].calendar"),
                       ({"type": "schedule", "cron": "0 9 * * *", "catch_up": "twice"}, "triggers[0].catch_up")):
        with pytest.raises(OperationError) as err:
            _create(bad)
        assert field in json.dumps(err.value.details), err.value.details
    assert not PeriodicTask.objects.filter(name__startswith="workflow:").exists()


def test_workflow_status_shows_the_next_five_and_why_not_today(redis_test_client):
    close = _create({"type": "market_schedule", "exchange": "XNYS", "at": "15:30"})
    workflow = close.workflow
    upcoming = schedule_selectors.upcoming(close, workflow, now=ny(2026, 11, 25, 16, 0))
    assert [datetime.fromisoformat(u).strftime("%a %d %H:%M") for u in upcoming] == [
        "Mon 30 15:30", "Tue 01 15:30", "Wed 02 15:30", "Thu 03 15:30", "Fri 04 15:30"]
    today = schedule_selectors.today
    assert today(close, workflow, now=ny(2026, 11, 26, 17, 0))["not_fired_because"] == "XNYS holiday"
    assert today(close, workflow, now=ny(2026, 11, 28, 17, 0))["not_fired_because"] == "weekend"
    assert today(close, workflow, now=ny(2026, 11, 27, 17, 0))["not_fired_because"] == (
        "early close at 13:00: 15:30 is outside the session")
    ProcessHeartbeat.objects.filter(role="beat").delete()
    missed = today(close, workflow, now=ny(2026, 11, 30, 17, 0))
    assert missed["not_fired_because"] == "beat down" and missed["missed"] == ["2026-11-30T15:30:00-05:00"]
    queues.ensure_default_queues()
    assert events.fire_schedule(close.pk, scheduled_for=ny(2026, 11, 30, 15, 30).isoformat())["fired"]
    done = today(close, workflow, now=ny(2026, 11, 30, 17, 0))
    assert done["fired"] == ["2026-11-30T15:30:00-05:00"] and done["missed"] == [] and done["not_fired_because"] is None
    assert done["counts"] == {"firings": 1, "fired": 1, "missed": 0}
    Workflow.objects.filter(pk=workflow.pk).update(status=Workflow.Status.PAUSED)
    workflow.refresh_from_db()
    assert today(close, workflow, now=ny(2026, 11, 30, 17, 0))["not_fired_because"] == "paused"

    status = operations.workflow_status(workflow_id=str(workflow.id))["triggers"][0]  # now: paused
    assert status["upcoming"] == [] and status["next_run_at"] is None and status["today"]["not_fired_because"] == "paused"
    operations.workflow_resume(workflow_id=str(workflow.id))
    status = operations.workflow_status(workflow_id=str(workflow.id))["triggers"][0]
    assert len(status["upcoming"]) == 5 and status["next_run_at"] == status["upcoming"][0]
    assert datetime.fromisoformat(status["next_run_at"]).astimezone(NY).strftime("%H:%M") == "15:30"
    from workflows_app.ui.data import dashboard_data  # the dashboard's data: the schedules panel

    panel = next(p for p in dashboard_data()["panels"] if p["name"] == "schedules")
    row = next(r for r in panel["rows"] if r[0] == workflow.name)
    assert row[1] == "XNYS 15:30" and row[2] == status["next_run_at"] and panel["metrics"]["schedules"] >= 1
