"""The beat's view of schedule triggers: each one's PeriodicTask runs on its trigger's own firings
(``market_calendar.firings``: the cron in its timezone less the days its calendar skips, or a
market moment of each session) instead of the carrier crontab, and decides what to send when it
is due, missed firings included (``catch_up``).

Catch-up after downtime, per trigger: ``skip`` (default) sends only firings due within the grace
(``NEXUS_SCHEDULE_GRACE`` s, a beat tick running late), ``latest`` the most recent missed one,
``all`` each missed one - within ``catch_up_window`` seconds, bounded by the operator's
``NEXUS_SCHEDULE_CATCH_UP_MAX``, never before the task last ran (``sync_schedules`` moves that to
the moment a paused schedule is resumed: a pause is not a miss).
"Missed" is read from the durable record of fired minutes (the ``schedule`` guards): a firing
already claimed is never sent again, and ``fire_schedule`` claims each minute once whoever sends it,
so two beats running at once cannot fire a minute twice.
"""
from __future__ import annotations

from datetime import UTC, datetime, timedelta

from celery.schedules import BaseSchedule, schedstate
from django_celery_beat.schedulers import ModelEntry

from workflows_app import conf, guards, market_calendar
from workflows_app.models import Trigger
from workflows_app.services.triggers.schedules import FIRE_SCHEDULE_TASK, SCHEDULE_TYPES, schedule_guard_key

CHECK_MAX = 3600.0  # seconds: look again at least this often (a workflow change reloads sooner)
CATCH_UP_FIRINGS_MAX = 500  # firings one catch-up sends at most


class CalendarSchedule(BaseSchedule):
    """A celery schedule over a trigger's firings (aware UTC datetimes)."""

    def __init__(self, params: dict, nowfun=None, app=None):
        self.params = params
        super().__init__(nowfun=nowfun, app=app)

    def _next(self, after: datetime) -> datetime | None:
        return next(market_calendar.firings(self.params, after.astimezone(UTC)), None)

    def remaining_estimate(self, last_run_at: datetime) -> timedelta:
        upcoming = self._next(last_run_at)
        return (upcoming - self.now()) if upcoming else timedelta(seconds=CHECK_MAX)

    def is_due(self, last_run_at: datetime) -> schedstate:
        now = self.now()
        upcoming = self._next(last_run_at)
        if upcoming is None:
            return schedstate(False, CHECK_MAX)
        if upcoming <= now:
            following = self._next(now)
            wait = (following - now).total_seconds() if following else CHECK_MAX
            return schedstate(True, min(max(wait, 1.0), CHECK_MAX))
        return schedstate(False, min((upcoming - now).total_seconds(), CHECK_MAX))

    def __repr__(self) -> str:
        return f"<CalendarSchedule {self.params.get('exchange') or self.params.get('cron')}>"


class CalendarEntry(ModelEntry):
    """A PeriodicTask of a schedule trigger runs on the trigger's firings; other tasks as usual."""

    def __init__(self, model, app=None):
        super().__init__(model, app)
        self.trigger = None
        if model.task == FIRE_SCHEDULE_TASK and self.args:
            self.trigger = Trigger.objects.select_related("workflow").filter(
                pk=self.args[0], type__in=SCHEDULE_TYPES).first()
        if self.trigger is not None:
            self.schedule = CalendarSchedule(self.trigger.params or {}, nowfun=self._default_now, app=self.app)

    def firings_due(self, now: datetime) -> list[datetime]:
        """What to send now that the entry is due (empty: nothing)."""
        if self.trigger is None:
            return []
        return due_firings(self.trigger, self.last_run_at, now)


def window(params: dict) -> timedelta:
    grace = float(conf.get("NEXUS_SCHEDULE_GRACE"))
    if (params.get("catch_up") or "skip") == "skip":
        return timedelta(seconds=grace)
    asked = float(params.get("catch_up_window") or 3600)
    return timedelta(seconds=max(grace, min(asked, float(conf.get("NEXUS_SCHEDULE_CATCH_UP_MAX")))))


def due_firings(trigger: Trigger, last_run_at: datetime | None, now: datetime) -> list[datetime]:
    """The firings to send at `now` under the trigger's catch-up policy, oldest first."""
    params = trigger.params or {}
    now = now.astimezone(UTC)
    start = now - window(params)
    if last_run_at is not None:
        start = max(start, last_run_at.astimezone(UTC))
    unfired = [at for at in market_calendar.firings_between(params, start, now, limit=CATCH_UP_FIRINGS_MAX)
               if not guards.held("schedule", schedule_guard_key(trigger, market_calendar.wall_clock(params, at)))]
    if (params.get("catch_up") or "skip") == "latest":
        return unfired[-1:]
    return unfired
