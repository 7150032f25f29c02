"""Small helpers shared by engine tests."""
from __future__ import annotations

import json

from workflows_app import operations
from workflows_app.engine import wait_until_final
from workflows_app.models import AuditEvent, Execution, Workflow


def create(name: str, steps: list, **kwargs) -> str:
    return operations.workflow_create(name=name, steps=steps, **kwargs)["workflow_id"]


def run(workflow_id: str, input_data: dict | None = None, timeout: float = 120) -> Execution:
    """Start an execution and wait (bounded) until it is final."""
    reply = operations.workflow_execute(workflow_id=workflow_id, input_data=input_data or {})
    return wait_until_final(reply["execution_id"], timeout)


def events(execution: Execution) -> list[str]:
    return list(AuditEvent.objects.filter(execution=execution).order_by("timestamp", "id").values_list("event", flat=True))


def formset_data(workflow: Workflow, **changes) -> dict:
    """The change form's POST data for a workflow's current rows, with `changes` applied."""
    steps = list(workflow.steps.order_by("position"))
    triggers = list(workflow.triggers.order_by("position"))
    data = {
        "name": workflow.name, "description": workflow.description, "priority": workflow.priority,
        "queue": workflow.queue, "metadata": "{}", "owner": "",
        "steps-TOTAL_FORMS": len(steps), "steps-INITIAL_FORMS": len(steps), "steps-MIN_NUM_FORMS": 0,
        "steps-MAX_NUM_FORMS": 1000,
        "triggers-TOTAL_FORMS": len(triggers), "triggers-INITIAL_FORMS": len(triggers),
        "triggers-MIN_NUM_FORMS": 0, "triggers-MAX_NUM_FORMS": 1000,
        "versions-TOTAL_FORMS": 0, "versions-INITIAL_FORMS": 0, "versions-MIN_NUM_FORMS": 0,
        "versions-MAX_NUM_FORMS": 1000,
    }
    for i, step in enumerate(steps):
        data.update({f"steps-{i}-id": step.pk, f"steps-{i}-workflow": workflow.pk, f"steps-{i}-position": step.position,
                     f"steps-{i}-name": step.name, f"steps-{i}-type": step.type,
                     f"steps-{i}-params": json.dumps(step.params), f"steps-{i}-condition": step.condition,
                     f"steps-{i}-actions": json.dumps(step.actions), f"steps-{i}-group": step.group,
                     f"steps-{i}-retry": json.dumps(step.retry), f"steps-{i}-timeout": step.timeout or "",
                     f"steps-{i}-compensate": step.compensate, f"steps-{i}-agent": step.agent,
                     f"steps-{i}-subprocess_workflow": step.subprocess_workflow})
    for i, trig in enumerate(triggers):
        data.update({f"triggers-{i}-id": trig.pk, f"triggers-{i}-workflow": workflow.pk,
                     f"triggers-{i}-position": trig.position, f"triggers-{i}-type": trig.type,
                     f"triggers-{i}-params": json.dumps(trig.params)})
    data.update(changes)
    return data
