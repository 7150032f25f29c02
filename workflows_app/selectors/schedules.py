"""What a schedule trigger will do and did today, as ``workflow_status`` replies it: its next
firings (from ``market_calendar``, so holidays, early closes and DST are already applied) and, for
today in its timezone, which firings fired (the durable record of fired minutes) and why it did not
fire: paused, weekend or holiday, early close, outside the session, or beat down."""
from __future__ import annotations

from datetime import UTC, datetime, timedelta

from croniter import croniter
from django.conf import settings
from django.utils import timezone

from workflows_app import guards, market_calendar
from workflows_app.models import Guard, ProcessHeartbeat, Trigger, Workflow

SCHEDULE_TYPES = ("schedule", "market_schedule")
UPCOMING = 5
LISTED = 20  # today's firings listed at most (the latest; counts give the totals)


def is_active(trigger: Trigger, workflow: Workflow) -> bool:
    return workflow.status == Workflow.Status.ACTIVE and trigger.enabled and (trigger.params or {}).get("enabled", True)


def upcoming(trigger: Trigger, workflow: Workflow, now: datetime | None = None, count: int = UPCOMING) -> list[str]:
    if trigger.type not in SCHEDULE_TYPES or not is_active(trigger, workflow):
        return []
    now = now or timezone.now()
    zone = market_calendar.trigger_zone(trigger.params)
    return [at.astimezone(zone).isoformat() for at in market_calendar.next_firings(trigger.params, now, count)]


def beat_alive(now: datetime) -> bool:
    limit = now - timedelta(seconds=float(settings.NEXUS_HEARTBEAT_STALE_AFTER))
    return ProcessHeartbeat.objects.filter(role="beat", state="active", last_seen__gt=limit).exists()


def _planned_today(params: dict, start: datetime, end: datetime) -> tuple[list[datetime], str | None]:
    """The times the trigger would fire today without its calendar, and why the calendar drops them."""
    if params.get("exchange"):
        day = start.astimezone(market_calendar.tz(params["exchange"])).date()
        if market_calendar.session(params["exchange"], day) is None:
            return [], market_calendar.closed_reason(params["exchange"], day)
        if market_calendar.moment_on(params["exchange"], params["at"], day) is None:
            close = market_calendar.session(params["exchange"], day)[1].astimezone(market_calendar.tz(params["exchange"]))
            return [], f"early close at {close:%H:%M}: {params['at']} is outside the session"
        return [], None
    zone = market_calendar.trigger_zone(params)
    cron, planned = croniter(params["cron"], (start - timedelta(seconds=1)).astimezone(zone)), []
    while len(planned) < 1440:
        at = cron.get_next(datetime).astimezone(UTC)
        if at > end:
            break
        planned.append(at)
    reasons = {market_calendar.cron_allowed(params, at) for at in planned} - {None}
    return planned, ", ".join(sorted(reasons)) or None


def today(trigger: Trigger, workflow: Workflow, now: datetime | None = None) -> dict | None:
    """Today's firings (trigger's timezone): fired, still to come, and why it did not fire."""
    if trigger.type not in SCHEDULE_TYPES:
        return None
    params, now = trigger.params or {}, (now or timezone.now()).astimezone(UTC)
    zone = market_calendar.trigger_zone(params)
    local = now.astimezone(zone)
    start = local.replace(hour=0, minute=0, second=0, microsecond=0)
    end = start + timedelta(days=1) - timedelta(microseconds=1)
    firings = market_calendar.firings_between(params, start - timedelta(microseconds=1), end, limit=1440)
    fired_walls = _fired_walls(trigger, local.date().isoformat(), now)
    fired = [at for at in firings if market_calendar.wall_clock(params, at) in fired_walls]
    missed = [at for at in firings if at <= now and at not in fired]
    reason = None
    if not is_active(trigger, workflow):
        reason = "paused"
    elif not firings:
        planned, reason = _planned_today(params, start, end)
        reason = reason or ("no firing scheduled today" if not planned else None)
    elif missed:
        reason = "beat down" if not beat_alive(now) else "missed: beat was not running (or catch_up skipped it)"
    shown = {name: [at.astimezone(zone).isoformat() for at in times[-LISTED:]]
             for name, times in (("firings", firings), ("fired", fired), ("missed", missed))}
    return {"date": local.date().isoformat(), "timezone": zone.key, **shown,
            "counts": {"firings": len(firings), "fired": len(fired), "missed": len(missed)},
            "not_fired_because": reason}


def _fired_walls(trigger: Trigger, day: str, now: datetime) -> set[str]:
    """The wall-clock minutes of `day` the trigger fired at (its live ``schedule`` guards: one query)."""
    base = guards.schedule_key(trigger.workflow_id, trigger.pk, "")
    keys = Guard.objects.filter(scope="schedule", key__startswith=base + day, expires_at__gt=now).values_list(
        "key", flat=True)
    return {key[len(base):] for key in keys[:1440]}


def dashboard_panel(since=None, limit: int = 20) -> dict:
    """The dashboard's schedules panel: each active schedule's next firing and today's outcome."""
    now = timezone.now()
    rows, firing_today = [], 0
    triggers = Trigger.objects.filter(type__in=SCHEDULE_TYPES, workflow__status=Workflow.Status.ACTIVE).select_related(
        "workflow").order_by("workflow__name", "position")[:limit]
    for trigger in triggers:
        outlook = today(trigger, trigger.workflow, now) or {}
        nxt = upcoming(trigger, trigger.workflow, now, count=1)
        firing_today += bool(outlook.get("firings"))
        what = (f"{trigger.params.get('exchange')} {trigger.params.get('at')}" if trigger.type == "market_schedule"
                else f"{trigger.params.get('cron')} {trigger.params.get('calendar') or ''}".strip())
        rows.append([trigger.workflow.name, what, nxt[0] if nxt else "-", len(outlook.get("fired", [])),
                     outlook.get("not_fired_because") or "-"])
    return {"title": "Schedules", "metrics": {"schedules": len(rows), "firing_today": firing_today,
                                              "beat_alive": int(beat_alive(now))},
            "columns": ["workflow", "schedule", "next firing", "fired today", "not fired because"], "rows": rows}
