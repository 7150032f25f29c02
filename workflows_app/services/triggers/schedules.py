"""Schedules on django-celery-beat: every ``schedule`` trigger has a PeriodicTask
``workflow:<uuid>:trigger:<pos>`` with a CrontabSchedule in the trigger's IANA timezone, running
``nexus.events.fire_schedule`` with the trigger id. ``sync_schedules`` (connected to
``workflow_changed``) keeps them in step on create / update / pause / resume / archive / delete; a
running beat sees the change through django-celery-beat's change tracking, without a restart."""
from __future__ import annotations

import json

from django.db import transaction
from django_celery_beat.models import CrontabSchedule, PeriodicTask

from workflows_app.models import Trigger, Workflow
from workflows_app.services.triggers.index import bump_index_version

FIRE_SCHEDULE_TASK = "nexus.events.fire_schedule"


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
    for trigger in workflow.triggers.filter(type="schedule").order_by("position"):
        params = trigger.params or {}
        minute, hour, day_of_month, month_of_year, day_of_week = params["cron"].split()
        crontab, _ = CrontabSchedule.objects.get_or_create(
            minute=minute, hour=hour, day_of_month=day_of_month, month_of_year=month_of_year,
            day_of_week=day_of_week, timezone=params.get("timezone") or "UTC",
        )
        enabled = active and trigger.enabled and params.get("enabled", True) is not False
        task, _ = PeriodicTask.objects.update_or_create(
            name=f"{prefix}{trigger.position}",
            defaults={"crontab": crontab, "interval": None, "solar": None, "clocked": None,
                      "task": FIRE_SCHEDULE_TASK, "args": json.dumps([trigger.pk]), "kwargs": "{}",
                      "queue": "events", "enabled": enabled, "one_off": False,
                      "description": f"{workflow.name}: {params['cron']} ({params.get('timezone') or 'UTC'})"},
        )
        if trigger.periodic_task_id != task.pk:
            Trigger.objects.filter(pk=trigger.pk).update(periodic_task=task)
        tasks.append(task)
    PeriodicTask.objects.filter(name__startswith=prefix).exclude(pk__in=[t.pk for t in tasks]).delete()
    return tasks


def on_workflow_changed(sender, workflow: Workflow, action: str, **kwargs) -> None:
    sync_schedules(workflow, action)
    transaction.on_commit(bump_index_version)
