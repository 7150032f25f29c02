"""Firing a trigger: audited with its event, ``last_fired_at`` updated, an execution started with
the event in its input. What decides whether a firing happens is durable (``workflows_app.guards``,
claimed in the firing's own transaction)."""
from __future__ import annotations

from django.db import transaction
from django.utils import timezone

from workflows_app import audit, guards
from workflows_app.engine import start_execution
from workflows_app.models import Trigger, Workflow

FIRED_TTL = 7 * 24 * 3600  # how long "fired for this event" is remembered (longer than any dedup window)


def fire(trigger_id: int, event: dict, *, cooldown: int = 0, client=None):
    """Start the trigger's workflow with the event: at most once per (trigger, event) - a redelivered
    or replayed batch does not start a second execution - and at most once per cooldown across
    workers. Both guards are database rows claimed in the transaction that starts the execution:
    a firing that fails releases them, a firing that commits holds them whatever Redis forgets."""
    owner = (event.get("trigger") or {}).get("workflow_id") or ""
    with transaction.atomic():
        trigger = Trigger.objects.select_related("workflow", "workflow__current_version").filter(
            pk=trigger_id).first()
        if trigger is None or not trigger.enabled:
            return None
        workflow = trigger.workflow
        if workflow.status != Workflow.Status.ACTIVE:
            return None
        owner = owner or str(workflow.id)
        if event.get("id") and not guards.claim("trigger-fired", f"{owner}:{trigger_id}:{event['id']}", FIRED_TTL):
            return None
        if cooldown and not guards.claim("trigger-cooldown", f"{owner}:{trigger_id}", cooldown,
                                         value=str(event.get("id") or "")):
            transaction.set_rollback(True)  # not fired: this event may fire it after the cooldown
            return None
        fired_at = timezone.now()
        Trigger.objects.filter(pk=trigger.pk).update(last_fired_at=fired_at)
        input_data = {"event": event, "trigger": trigger.type}
        symbols = event.get("symbols") or ([event["symbol"]] if event.get("symbol") else None)
        if symbols:
            input_data["symbols"] = list(symbols)
        execution = start_execution(workflow, input_data, trigger=trigger.type, trigger_event=event)
        audit.record("trigger_fired", workflow_id=workflow.id, execution_id=execution.id, trigger=trigger.type,
                     trigger_position=trigger.position, trigger_id=trigger.pk, event=event,
                     fired_at=fired_at.isoformat())
    return execution
