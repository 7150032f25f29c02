"""Writes to workflow definitions: create, update (a new immutable version), pause/resume,
delete, agent assignment. Each keeps the Step/Trigger rows and the current version in step,
in one transaction, and tells the trigger machinery (schedules) through the signal below."""
from __future__ import annotations

from django.db import IntegrityError, transaction
from django.dispatch import Signal

from workflows_app import audit, definitions
from workflows_app.errors import OperationError
from workflows_app.models import Agent, Step, Trigger, Workflow, WorkflowVersion

# Sent (inside the transaction) after a workflow's definition or status changed; receivers
# re-sync derived state such as celery-beat schedules. kwargs: workflow, action.
workflow_changed = Signal()


def definition_of(workflow: Workflow) -> dict:
    return dict(workflow.current_version.definition) if workflow.current_version_id else {}


def _write_rows(workflow: Workflow, definition: dict) -> None:
    """Replace the editable Step/Trigger rows by the definition's (triggers keep their history)."""
    workflow.steps.all().delete()
    Step.objects.bulk_create(
        Step(
            workflow=workflow,
            position=i,
            name=s["name"],
            type=s.get("type", ""),
            params=s.get("params", {}),
            condition=s.get("condition", ""),
            actions=s.get("actions", []),
            group=s.get("group") or ("parallel" if s.get("parallel") else ""),
            retry=s.get("retry", {}),
            timeout=s.get("timeout"),
            compensate=s.get("compensate", ""),
            agent=s.get("agent", ""),
            subprocess_workflow=s.get("workflow_id", ""),
        )
        for i, s in enumerate(definition["steps"])
    )
    existing = list(workflow.triggers.order_by("position"))
    wanted = definition["triggers"]
    for i, trig in enumerate(wanted):
        params = {k: v for k, v in trig.items() if k != "type"}
        row = existing[i] if i < len(existing) and existing[i].type == trig["type"] else None
        if row is None:
            row = Trigger(workflow=workflow, position=i, type=trig["type"])
        row.position, row.params = i, params
        row.symbol = str(params.get("symbol") or "").upper()
        row.cooldown_seconds = int(params.get("cooldown", row.cooldown_seconds or 300))
        row.save()
        if i < len(existing) and existing[i] is not row:
            existing[i].delete()
    for stale in existing[len(wanted):]:
        stale.delete()


def _new_version(workflow: Workflow, definition: dict, changed: list[str], user=None) -> WorkflowVersion:
    number = workflow.version + 1
    version = WorkflowVersion.objects.create(
        workflow=workflow, number=number, definition=definition, changed_paths=changed, created_by=user
    )
    workflow.current_version = version
    return version


def create_workflow(raw_definition: dict, *, owner=None) -> Workflow:
    definition = definitions.validate_definition(raw_definition, owner=owner)
    try:
        with transaction.atomic():
            workflow = Workflow.objects.create(
                name=definition["name"],
                description=definition["description"],
                priority=definition["priority"],
                queue=definition["queue"],
                metadata=definition["metadata"],
                owner=owner,
            )
            _new_version(workflow, definition, ["*"], owner)
            workflow.save(update_fields=["current_version"])
            _write_rows(workflow, definition)
            audit.record("workflow_created", workflow_id=workflow.id, version=1, name=workflow.name)
            workflow_changed.send(sender=Workflow, workflow=workflow, action="created")
    except IntegrityError:  # names are unique per owner: only the caller's own names conflict
        raise OperationError(
            "CONFLICT", f"you already have a workflow named '{definition['name']}'", {"field": "name"}
        ) from None
    return workflow


def _check_version(workflow: Workflow, expected_version: int | None) -> None:
    if expected_version is not None and workflow.version != expected_version:
        raise OperationError(
            "CONFLICT", f"workflow is at version {workflow.version}, not {expected_version}: re-read it and retry",
            {"field": "expected_version", "current_version": workflow.version})


def replace_definition(workflow_id, new_raw: dict, changed: list[str], *, user=None,
                       expected_version: int | None = None) -> Workflow:
    """Validate and store a whole new definition as the next version (atomic, under the row lock)."""
    with transaction.atomic():
        workflow = Workflow.objects.select_for_update().get(pk=workflow_id)
        _check_version(workflow, expected_version)
        definition = definitions.validate_definition(new_raw, workflow_id=str(workflow.id), owner=workflow.owner)
        if definition["name"] != workflow.name and Workflow.objects.filter(
                name=definition["name"], owner_id=workflow.owner_id).exists():
            raise OperationError("CONFLICT", f"you already have a workflow named '{definition['name']}'",
                                 {"field": "name"})
        version = _new_version(workflow, definition, changed, user)
        workflow.name = definition["name"]
        workflow.description = definition["description"]
        workflow.priority = definition["priority"]
        workflow.queue = definition["queue"]
        workflow.metadata = definition["metadata"]
        workflow.save()
        _write_rows(workflow, definition)
        audit.record("workflow_updated", workflow_id=workflow.id, version=version.number, changed=changed)
        workflow_changed.send(sender=Workflow, workflow=workflow, action="updated")
    return workflow


def update_by_paths(workflow_id, updates: dict, *, user=None,
                    expected_version: int | None = None) -> tuple[Workflow, list[str]]:
    """Read, apply the paths and write under one row lock: concurrent updates serialise, none is lost."""
    with transaction.atomic():
        workflow = Workflow.objects.select_for_update().get(pk=workflow_id)
        _check_version(workflow, expected_version)
        new_raw, changed = definitions.apply_updates(definition_of(workflow), updates)
        return replace_definition(workflow_id, new_raw, changed, user=user), changed


def definition_from_rows(workflow: Workflow) -> dict:
    """Rebuild a definition from the editable rows (used by the admin after inline edits)."""
    steps = []
    for row in workflow.steps.order_by("position"):
        step = {"name": row.name, "params": row.params or {}}
        for key, value in (
            ("type", row.type), ("condition", row.condition), ("actions", row.actions), ("group", row.group),
            ("retry", row.retry), ("timeout", row.timeout), ("compensate", row.compensate),
            ("agent", row.agent), ("workflow_id", row.subprocess_workflow),
        ):
            if value:
                step[key] = value
        steps.append(step)
    triggers = [{"type": t.type, **(t.params or {})} for t in workflow.triggers.order_by("position")]
    return {
        "name": workflow.name, "description": workflow.description, "priority": workflow.priority,
        "queue": workflow.queue, "metadata": workflow.metadata, "steps": steps, "triggers": triggers,
    }


def set_status(workflow_id, status: str, *, user=None) -> Workflow:
    with transaction.atomic():
        workflow = Workflow.objects.select_for_update().get(pk=workflow_id)
        if workflow.status == status:
            return workflow
        if workflow.status == Workflow.Status.ARCHIVED:
            raise OperationError("CONFLICT", "an archived workflow cannot change status", {"field": "status"})
        workflow.status = status
        workflow.save(update_fields=["status", "updated_at"])
        event = {"paused": "workflow_paused", "active": "workflow_resumed", "archived": "workflow_archived"}[status]
        audit.record(event, workflow_id=workflow.id)
        workflow_changed.send(sender=Workflow, workflow=workflow, action=status)
    return workflow


def set_owner(workflow_id, owner, *, user=None) -> Workflow:
    """Give a workflow to another user (or to nobody); audited. Its executions keep the owner they started with."""
    with transaction.atomic():
        workflow = Workflow.objects.select_for_update().get(pk=workflow_id)
        previous = workflow.owner_id
        if previous == getattr(owner, "pk", None):
            return workflow
        workflow.owner = owner
        workflow.save(update_fields=["owner", "updated_at"])
        audit.record("workflow_owner_changed", workflow_id=workflow.id, previous_owner_id=previous,
                     owner_id=getattr(owner, "pk", None), by=getattr(user, "pk", None))
    return workflow


def delete_workflow(workflow_id) -> None:
    with transaction.atomic():
        workflow = Workflow.objects.select_for_update().get(pk=workflow_id)
        audit.record("workflow_deleted", workflow_id=None, name=workflow.name, id=str(workflow.id))
        workflow_changed.send(sender=Workflow, workflow=workflow, action="deleted")
        workflow.current_version = None
        workflow.save(update_fields=["current_version"])
        workflow.executions.all().delete()
        workflow.versions.all().delete()
        workflow.delete()


def assign_agent(workflow_id, step_name: str, agent_type: str, *, user=None) -> tuple[Workflow, Agent]:
    """Route a step to an agent of `agent_type` (created on first use, with its own queue)."""
    if not isinstance(agent_type, str) or not agent_type.strip() or len(agent_type) > 50:
        raise OperationError("INVALID_INPUT_DATA", "agent_type must be a non-empty string", {"field": "agent_type"})
    agent = Agent.objects.filter(type=agent_type).order_by("created_at").first()
    if agent is None:
        agent = Agent.objects.create(name=f"{agent_type}-agent", type=agent_type, queue=f"agent.{agent_type}")
    workflow = Workflow.objects.select_related("current_version").get(pk=workflow_id)
    if not any(s["name"] == step_name for s in definition_of(workflow).get("steps", [])):
        raise OperationError("INVALID_INPUT_DATA", f"workflow has no step '{step_name}'", {"field": "task_id"})
    workflow, _ = update_by_paths(workflow_id, {f"steps[{step_name}].agent": agent.name}, user=user)
    audit.record("agent_assigned", workflow_id=workflow.id, step=step_name, agent=agent.name, queue=agent.queue)
    return workflow, agent
