"""Execution operations (cancel, retry, approve, reject), the audit trail and the measured metrics."""
from __future__ import annotations

from django.utils import timezone
from pydantic import Field

from workflows_app import engine, selectors
from workflows_app.errors import OperationError
from workflows_app.operations.access import execution_for, workflow_for
from workflows_app.operations.catalogue import catalogue
from workflows_app.operations.fields import Args, Int, Object, Timestamp, execution_ref, workflow_ref
from workflows_app.operations.links import execution_url, with_execution_url
from workflows_app.services import approvals


class ExecutionArgs(Args):
    execution_id: str = execution_ref()


@catalogue.operation(ExecutionArgs, description="Cancel an unfinished execution.")
def execution_cancel(args: ExecutionArgs, user) -> dict:
    execution = engine.cancel(execution_for(args.execution_id, user).id)
    return with_execution_url({"success": True, "execution_id": str(execution.id), "status": execution.status})


@catalogue.operation(ExecutionArgs, description="Retry a failed execution from its failed step.")
def execution_retry(args: ExecutionArgs, user) -> dict:
    execution = engine.retry(execution_for(args.execution_id, user).id)
    return with_execution_url({"success": True, "execution_id": str(execution.id), "status": execution.status,
                               "from_step": execution.current_step or None})


class ExecutionRerunArgs(Args):
    execution_id: str = execution_ref()
    from_step: str = Field(None, max_length=100, description="The step to run again from (default: the first); "
                                                           "the steps before it keep this execution's outputs.")
    input_data: Object = Field(None, description="The new execution's input (default: this execution's).")


@catalogue.operation(ExecutionRerunArgs, description="Re-run a finished execution from a chosen step, with the same "
                                                     "or an edited input, as a new execution of the same version.")
def execution_rerun(args: ExecutionRerunArgs, user) -> dict:
    original = execution_for(args.execution_id, user)
    engine_keys = sorted(k for k in (args.input_data or {}) if str(k).startswith("_"))
    if engine_keys:
        raise OperationError("INVALID_INPUT_DATA", f"input key '{engine_keys[0]}' is reserved for the engine",
                             {"field": f"input_data.{engine_keys[0]}"})
    if "test_mode" in (args.input_data or {}) and not isinstance(args.input_data["test_mode"], bool):
        raise OperationError("INVALID_INPUT_DATA", "input_data.test_mode must be true or false",
                             {"field": "input_data.test_mode"})
    execution = engine.rerun(original.id, from_step=args.from_step, input_data=args.input_data)
    return with_execution_url({"success": True, "execution_id": str(execution.id), "status": execution.status,
                               "rerun_of": str(original.id), "from_step": execution.rerun_from_step,
                               "test_mode": execution.test_mode, "workflow_id": str(execution.workflow_id)})


@catalogue.operation(ExecutionArgs, description="One execution for the operator's view: each step attempt with its "
                                                "timings, input, output (large ones cut, with their size) and error; "
                                                "the workflow's graph with the path taken; child executions.")
def execution_timeline(args: ExecutionArgs, user) -> dict:
    timeline = selectors.execution_timeline(execution_for(args.execution_id, user))
    head = timeline["execution"]
    head["execution_url"] = execution_url(head["execution_id"])
    for child in timeline["children"]:
        child["execution_url"] = execution_url(child["execution_id"])
    for key in ("parent_execution_id", "rerun_of"):
        if head[key]:
            head[key.replace("_id", "") + "_url"] = execution_url(head[key])
    return {"success": True, "execution_id": head["execution_id"], "execution_url": head["execution_url"], **timeline}


class DecisionArgs(Args):
    execution_id: str = execution_ref()
    comment: str = Field("", max_length=1000, description="Why (kept with the decision in the audit trail).")


@catalogue.operation(DecisionArgs, description="Approve the approval step an execution waits at: it continues. "
                                               "The workflow's owner or staff; once only.")
def execution_approve(args: DecisionArgs, user) -> dict:
    return approvals.decide(execution_for(args.execution_id, user), engine.APPROVED, user, args.comment)


@catalogue.operation(DecisionArgs, description="Reject the approval step an execution waits at: it takes the "
                                               "step's on_reject branch, or fails. The workflow's owner or staff; "
                                               "once only.")
def execution_reject(args: DecisionArgs, user) -> dict:
    return approvals.decide(execution_for(args.execution_id, user), engine.REJECTED, user, args.comment)


class AuditTrailArgs(Args):
    workflow_id: str = workflow_ref(required=False)
    execution_id: str = execution_ref(required=False)
    limit: Int = Field(50, ge=1, le=1000)
    offset: Int = Field(0, ge=0, le=10**9)
    start_time: Timestamp = None


@catalogue.operation(AuditTrailArgs, description="The audit trail of a workflow or an execution.")
def workflow_audit_trail(args: AuditTrailArgs, user) -> dict:
    page = {"limit": args.limit, "start_time": args.start_time, "offset": args.offset}
    reply = {"success": True}
    if args.execution_id:
        execution = execution_for(args.execution_id, user)
        reply.update(execution_id=str(execution.id), workflow_id=str(execution.workflow_id),
                     execution_url=execution_url(execution.id))
        reply.update(selectors.audit_events(execution_id=execution.id, **page))
    elif args.workflow_id:
        workflow = workflow_for(args.workflow_id, user)
        reply.update(workflow_id=str(workflow.id))
        reply.update(selectors.audit_events(workflow_id=workflow.id, **page))
    else:
        raise OperationError("INVALID_INPUT_DATA", "give workflow_id or execution_id", {"field": "workflow_id"})
    return reply


class MetricsArgs(Args):
    workflow_id: str = workflow_ref(required=False)
    window: str = Field("24h", max_length=20, description="e.g. 15m, 24h, 7d")


@catalogue.operation(MetricsArgs, description="Measured metrics: executions, success rate, durations, p50/p99, "
                                              "steps, costs.")
def workflow_metrics(args: MetricsArgs, user) -> dict:
    since = timezone.now() - selectors.parse_window(args.window)
    workflow = workflow_for(args.workflow_id, user) if args.workflow_id else None
    executions_qs, runs_qs = selectors.metrics_scope(workflow, user)
    reply = {"success": True, "window": args.window or "24h", "since": selectors.iso(since)}
    if workflow is not None:
        reply.update(workflow_id=str(workflow.id), workflow_name=workflow.name)
    figures = selectors.execution_metrics(executions_qs, since)
    reply.update(figures)
    reply["executions_last_window"] = figures["executions"]
    reply["steps_performance"] = selectors.steps_performance(runs_qs, since)
    reply["system"] = selectors.system_figures(since)
    reply["cost_breakdown"] = selectors.cost_breakdown(figures["executions"],
                                                       reply["system"].get("messages_processed") or 0,
                                                       selectors.agent_minutes(runs_qs, since))
    return reply
