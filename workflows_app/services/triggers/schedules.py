"""Schedules on django-celery-beat: every ``schedule`` trigger has a PeriodicTask
``workflow:<uuid>:trigger:<pos>`` with a CrontabSchedule in the trigger's IANA timezone, running
``nexus.events.fire_schedule`` with the trigger id. ``sync_schedules`` (connected to
``workflow_changed``) keeps them in step on create / update / pause / resume / archive / delete; a
running beat sees the change through django-celery-beat's change tracking, without a restart.

A ``market_schedule`` trigger (and a ``schedule`` with a ``calendar``) keeps a PeriodicTask too, its
crontab only a carrier (every minute, in the exchange's timezone): the beat (``NexusScheduler``)
replaces it with the calendar's firings (``workflows_app.market_calendar``), and ``fire_schedule``
refuses a time that is not one of them, so even a plain scheduler could not fire it off-calendar."""
from __future__ import annotations

import json

from django.db import transaction
from django.utils import timezone
from django_celery_beat.models import CrontabSchedule, PeriodicTask

from workflows_app import guards, market_calendar
from workflows_app.models import Trigger, Workflow
from workflows_app.services.triggers.index import bump_index_version

FIRE_SCHEDULE_TASK = "nexus.events.fire_schedule"
SCHEDULE_TYPES = ("schedule", "market_schedule")


def schedule_guard_key(trigger: Trigger, wall: str) -> str:
    """The durable record of a fired minute (``Guard`` scope ``schedule``): claimed by
    ``fire_schedule``, read by the beat's catch-up and by ``workflow_status``."""
    return guards.schedule_key(trigger.workflow_id, trigger.pk, wall)


def _crontab(params: dict) -> tuple[CrontabSchedule, str]:
    """The trigger's crontab (a per-minute carrier for a market schedule) and its description."""
    if params.get("exchange"):
        fields, zone = ["*"] * 5, market_calendar.tz(params["exchange"]).key
        label = f"{params['exchange']} {params['at']} ({zone})"
    else:
        fields, zone = params["cron"].split(), params.get("timezone") or "UTC"
        label = f"{params['cron']} ({zone})" + (f" on {params['calendar']} days" if params.get("calendar") else "")
    minute, hour, day_of_month, month_of_year, day_of_week = fields
    crontab, _ = CrontabSchedule.objects.get_or_create(
        minute=minute, hour=hour, day_of_month=day_of_month, month_of_year=month_of_year,
        day_of_week=day_of_week, timezone=zone)
    return crontab, label


def periodic_task_prefix(workflow_id) -> str:
    return f"workflow:{workflow_id}:trigger:"


def sync_schedules(workflow: Workflow, action: str = "updated") -> list[PeriodicTask]:
    """Make the workflow's PeriodicTasks match its schedule triggers (call inside its transaction)."""
    prefix = periodic_task_prefix(workflow.id)
    if action == "deleted":
        PeriodicTask.objects.filter(name__startswith=prefix).delete()
        return []
    active = workflow.status == Workflow.Status.ACTIVE
    tasks = []
    for trigger in workflow.triggers.filter(type__in=SCHEDULE_TYPES).order_by("position"):
        params = trigger.params or {}
        crontab, label = _crontab(params)
        enabled = active and trigger.enabled and params.get("enabled", True) is not False
        was = PeriodicTask.objects.filter(name=f"{prefix}{trigger.position}").values_list("enabled", flat=True).first()
        task, _ = PeriodicTask.objects.update_or_create(
            name=f"{prefix}{trigger.position}",
            defaults={"crontab": crontab, "interval": None, "solar": None, "clocked": None,
                      "task": FIRE_SCHEDULE_TASK, "args": json.dumps([trigger.pk]), "kwargs": "{}",
                      "queue": "events", "enabled": enabled, "one_off": False,
                      "description": f"{workflow.name}: {label}"[:200]},
        )
        if enabled and was is False:  # resumed: what fell due while paused is not missed (no catch-up)
            PeriodicTask.objects.filter(pk=task.pk).update(last_run_at=timezone.now())
        if trigger.periodic_task_id != task.pk:
            Trigger.objects.filter(pk=trigger.pk).update(periodic_task=task)
        tasks.append(task)
    PeriodicTask.objects.filter(name__startswith=prefix).exclude(pk__in=[t.pk for t in tasks]).delete()
    return tasks


def on_workflow_changed(sender, workflow: Workflow, action: str, **kwargs) -> None:
    sync_schedules(workflow, action)
    transaction.on_commit(bump_index_version)
