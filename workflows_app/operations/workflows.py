"""Workflow operations: create, execute, read, list, change, pause, resume, delete."""
from __future__ import annotations

import re
from typing import Any, Literal

from django.conf import settings
from pydantic import AliasChoices, Field, field_validator

from workflows_app import audit, definitions, engine, filters, selectors
from workflows_app.errors import OperationError
from workflows_app.models import Execution, StepRun, Workflow
from workflows_app.operations.access import execution_for, owner, workflow_for
from workflows_app.operations.catalogue import Permission, catalogue
from workflows_app.operations.executions import workflow_metrics
from workflows_app.operations.fields import (
    STEPS_SCHEMA,
    TRIGGERS_SCHEMA,
    UPDATES_SCHEMA,
    Args,
    Flag,
    Int,
    Object,
    Timestamp,
    dynamic,
    execution_ref,
    refuse,
    workflow_ref,
)
from workflows_app.operations.links import execution_url
from workflows_app.services import triggers as trigger_service
from workflows_app.services import workflows

_DEFINITION = definitions.DefinitionSpec.model_fields


def _published(name: str) -> dict:
    """The definition's own constraints on a field, published for the faces; the definition checks
    them (a violation is an INVALID_DEFINITION naming the field with the definition's other errors)."""
    schema = definitions.DefinitionSpec.model_json_schema()["properties"][name]
    return {k: v for k, v in schema.items() if k not in ("title", "default")}


class WorkflowCreateArgs(Args):
    name: str = Field(..., json_schema_extra={"maxLength": 200})
    steps: list[dict[str, Any]] = dynamic(STEPS_SCHEMA, default=...,
                                          json_schema_extra={"minItems": 1, "maxItems": definitions.MAX_STEPS})
    description: str = Field("", json_schema_extra=_published("description"))
    triggers: list[dict[str, Any]] = dynamic(TRIGGERS_SCHEMA, default_factory=list,
                                             json_schema_extra={"maxItems": definitions.MAX_TRIGGERS})
    priority: Any = Field(5, json_schema_extra={"type": "integer", "minimum": 0, "maximum": 10})
    metadata: Object = Field(default_factory=dict)
    queue: str = Field("workflows", json_schema_extra=_published("queue"))


@catalogue.operation(WorkflowCreateArgs, description="Create a workflow from steps and triggers; the whole "
                                                     "definition is validated.")
def workflow_create(args: WorkflowCreateArgs, user) -> dict:
    raw = {**args.model_dump(), "description": args.description or "", "queue": args.queue or "workflows"}
    workflow = workflows.create_workflow(raw, owner=owner(user))
    definition = workflow.current_version.definition
    return {"success": True, **selectors.workflow_summary(workflow), "features": definitions.features(definition),
            "steps": len(definition["steps"]), "triggers": len(definition["triggers"])}


class WorkflowExecuteArgs(Args):
    workflow_id: str = workflow_ref()
    input_data: Object = Field(default_factory=dict, description='The execution\'s input, e.g. '
                               '{"symbols": ["AAPL"], "test_mode": true}.')
    trigger: str = Field("manual", json_schema_extra={"pattern": "^[a-z_]{1,50}$", "maxLength": 50},
                         description="The trigger name recorded on the execution.")
    timeout: Int = Field(None, ge=1, le=600,
                                description="With async=false: seconds to wait for the final status.")
    # `async` is a Python keyword: Python callers may spell it `async_`.
    run_async: Flag = Field(True, alias="async", validation_alias=AliasChoices("async", "async_"), description="false: wait (bounded) for the final status and "
                                                             "each step's result. Default true.")

    @field_validator("trigger", mode="before")
    @classmethod
    def _trigger_name(cls, value):
        if not isinstance(value, str) or not re.fullmatch(r"[a-z_]{1,50}", value):
            raise refuse("must be a trigger type name")
        return value


@catalogue.operation(WorkflowExecuteArgs, description="Start an execution. With async=false, wait (bounded) and "
                                                      "return each step's result.")
def workflow_execute(args: WorkflowExecuteArgs, user) -> dict:
    workflow = workflow_for(args.workflow_id, user)
    data = args.input_data
    engine_keys = sorted(k for k in data if str(k).startswith("_"))
    if engine_keys:
        raise OperationError("INVALID_INPUT_DATA", f"input key '{engine_keys[0]}' is reserved for the engine",
                             {"field": f"input_data.{engine_keys[0]}"})
    if "test_mode" in data and not isinstance(data["test_mode"], bool):
        raise OperationError("INVALID_INPUT_DATA", "input_data.test_mode must be true or false",
                             {"field": "input_data.test_mode"})
    wait = settings.NEXUS_SYNC_WAIT_SECONDS if args.timeout is None else float(args.timeout)
    execution = engine.start_execution(workflow, data, trigger=args.trigger, owner=owner(user))
    reply = {"success": True, "execution_id": str(execution.id), "workflow_id": str(workflow.id),
             "workflow_name": workflow.name, "status": execution.status, "version": workflow.version,
             "started_at": selectors.iso(execution.queued_at), "async": args.run_async,
             "execution_url": execution_url(execution.id)}
    if args.run_async:
        return reply
    execution = engine.wait_until_final(execution.id, wait)
    if not execution.is_final:
        raise OperationError("EXECUTION_TIMEOUT", f"execution still {execution.status} after {wait:g}s; it keeps running",
                             {"execution_id": str(execution.id), "status": execution.status})
    detail = selectors.execution_detail(execution)
    steps = {name: {**run, "result": audit.summarise(run["result"])} for name, run in detail["steps"].items()}
    return {**reply, "status": execution.status, "finished_at": detail["finished_at"], "duration": detail["duration"],
            "error": detail["error"], "steps": steps, "completed_steps": detail["completed_steps"]}


class WorkflowStatusArgs(Args):
    workflow_id: str = workflow_ref(required=False)
    execution_id: str = execution_ref(required=False)
    include_metrics: Flag = False


@catalogue.operation(WorkflowStatusArgs, description="Status of a workflow (with its triggers) or of an execution "
                                                     "(with its step runs).")
def workflow_status(args: WorkflowStatusArgs, user) -> dict:
    if args.execution_id:
        execution = execution_for(args.execution_id, user)
        reply = {"success": True, "type": "execution", **selectors.execution_detail(execution),
                 "execution_url": execution_url(execution.id)}
        if args.include_metrics:
            reply["metrics"] = {"steps_performance": selectors.steps_performance(
                StepRun.objects.filter(execution=execution), execution.queued_at)}
        return reply
    if not args.workflow_id:
        raise OperationError("INVALID_INPUT_DATA", "give workflow_id or execution_id", {"field": "workflow_id"})
    workflow = workflow_for(args.workflow_id, user)
    reply = {"success": True, "type": "workflow", **selectors.workflow_detail(workflow)}
    # Why a trigger did (not) fire: its last measured value against its threshold, cooldown left.
    states = trigger_service.trigger_states(list(workflow.triggers.all()))
    for trigger in reply["triggers"]:
        if trigger["trigger_id"] in states:
            trigger["state"] = states[trigger["trigger_id"]]
    if args.include_metrics:
        reply["metrics"] = workflow_metrics(workflow_id=str(workflow.id), user=user)
        reply["metrics"].pop("success", None)
    return reply


class WorkflowListArgs(Args):
    limit: Int = Field(10, ge=1, le=500)
    offset: Int = Field(0, ge=0, le=10**9)
    status: Literal[tuple(Workflow.Status.values)] = None
    name: str = Field(None, max_length=200, description="Part of the name (case-insensitive).")
    priority_min: Int = Field(None, ge=0, le=10)
    priority_max: Int = Field(None, ge=0, le=10)
    created_after: Timestamp = None
    created_before: Timestamp = None


@catalogue.operation(WorkflowListArgs, description="List workflows.")
def workflow_list(args: WorkflowListArgs, user) -> dict:
    qs = filters.apply(filters.WorkflowFilter, selectors.visible_workflows(user), args.model_dump(
        include={"status", "name", "priority_min", "priority_max", "created_after", "created_before"}))
    total = qs.count()
    items = [selectors.workflow_summary(w) for w in qs[args.offset:args.offset + args.limit]]
    return {"success": True, "workflows": items, "count": len(items), "total": total, "limit": args.limit,
            "offset": args.offset}


class WorkflowArgs(Args):
    workflow_id: str = workflow_ref()


class WorkflowVersionsArgs(Args):
    workflow_id: str = workflow_ref()
    limit: Int = Field(20, ge=1, le=100)


@catalogue.operation(WorkflowVersionsArgs, description="A workflow's versions, newest first (each immutable).")
def workflow_versions(args: WorkflowVersionsArgs, user) -> dict:
    workflow = workflow_for(args.workflow_id, user)
    rows = [{"version": v.number, "created_at": selectors.iso(v.created_at), "steps": len(v.definition["steps"])}
            for v in workflow.versions.order_by("-number")[:args.limit]]
    return {"success": True, "workflow_id": str(workflow.id), "versions": rows, "count": len(rows)}


@catalogue.operation(WorkflowArgs, description="A workflow's full current definition.")
def workflow_get(args: WorkflowArgs, user) -> dict:
    return {"success": True, **selectors.workflow_detail(workflow_for(args.workflow_id, user))}


class WorkflowUpdateArgs(Args):
    workflow_id: str = workflow_ref()
    updates: Object = dynamic(UPDATES_SCHEMA, default_factory=dict, json_schema_extra={"minProperties": 1},
                              description='Path -> new value, e.g. {"steps[2].params.threshold": 0.9, '
                                          '"steps[generate_signals].params.threshold": 0.9, "priority": 7}.')
    expected_version: Int = Field(None, ge=1, le=10**9, description="Apply only if the workflow is still at "
                                                                           "this version (else CONFLICT).")


@catalogue.operation(WorkflowUpdateArgs, description="Change a workflow by paths (e.g. steps[2].params.threshold); "
                                                     "creates a new version.")
def workflow_update(args: WorkflowUpdateArgs, user) -> dict:
    """Updates serialise on the workflow row; with `expected_version` a stale caller gets CONFLICT."""
    workflow = workflow_for(args.workflow_id, user)
    workflow, changed = workflows.update_by_paths(workflow.id, args.updates, user=owner(user),
                                                  expected_version=args.expected_version)
    return {"success": True, "workflow_id": str(workflow.id), "name": workflow.name, "version": workflow.version,
            "previous_version": workflow.version - 1, "changed": changed,
            "updated_at": selectors.iso(workflow.updated_at)}


class WorkflowSetOwnerArgs(Args):
    workflow_id: str = workflow_ref()
    owner_id: Any = Field(None, description="A user's id, or null for no owner.")


@catalogue.operation(WorkflowSetOwnerArgs, permission=Permission.STAFF, denied="change a workflow's owner",
                     tool=False, description="Give a workflow to another user (the admin's owner field).")
def workflow_set_owner(args: WorkflowSetOwnerArgs, user) -> dict:
    workflow = workflow_for(args.workflow_id, user)
    new_owner = None if args.owner_id in (None, "") else selectors.user_by_id(args.owner_id)
    if args.owner_id not in (None, "") and new_owner is None:
        raise OperationError("INVALID_INPUT_DATA", f"no user {args.owner_id}", {"field": "owner_id"})
    workflow = workflows.set_owner(workflow.id, new_owner, user=owner(user))
    return {"success": True, "workflow_id": str(workflow.id), "name": workflow.name,
            "owner_id": workflow.owner_id, "updated_at": selectors.iso(workflow.updated_at)}


@catalogue.operation(WorkflowArgs, description="Pause a workflow: its triggers stop firing.")
def workflow_pause(args: WorkflowArgs, user) -> dict:
    workflow = workflows.set_status(workflow_for(args.workflow_id, user).id, Workflow.Status.PAUSED)
    return {"success": True, "workflow_id": str(workflow.id), "status": workflow.status}


@catalogue.operation(WorkflowArgs, description="Resume a paused workflow.")
def workflow_resume(args: WorkflowArgs, user) -> dict:
    workflow = workflows.set_status(workflow_for(args.workflow_id, user).id, Workflow.Status.ACTIVE)
    return {"success": True, "workflow_id": str(workflow.id), "status": workflow.status}


@catalogue.operation(WorkflowArgs, description="Delete a workflow without unfinished executions.")
def workflow_delete(args: WorkflowArgs, user) -> dict:
    workflow = workflow_for(args.workflow_id, user)
    if workflow.executions.exclude(status__in=Execution.FINAL).exists():
        raise OperationError("CONFLICT", "workflow has unfinished executions; cancel them first", {"field": "workflow_id"})
    workflows.delete_workflow(workflow.id)
    return {"success": True, "workflow_id": str(workflow.id), "deleted": True}
