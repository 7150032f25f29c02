"""An execution's transitions: start, (re)dispatch, advance, finish, fail or compensate, and a
child's end resuming its parent; the operator's cancel and retry.

A child's end is handled here, next to `finalize`, because finishing recurses up the parent chain
(finalize → resume the parent → advance → finalize, or → give_up → finalize) inside one transaction.
"""
from __future__ import annotations

from django.db import transaction
from django.utils import timezone

from workflows_app import audit
from workflows_app.circuit import CircuitBreaker
from workflows_app.definitions import execution_groups
from workflows_app.engine import step_writes
from workflows_app.engine.canvas import send_canvas
from workflows_app.engine.failures import Failure, dead_letter, mark_failed
from workflows_app.engine.outputs import child_outputs, output_problem
from workflows_app.engine.saga import compensations_pending, send_compensation
from workflows_app.engine.waiting import notify_done
from workflows_app.errors import OperationError
from workflows_app.models import ApprovalRequest, Execution, StepRun, Workflow

S = Execution.Status
FINAL_FIELDS = ["status", "finished_at", "current_step", "error"]


# --- start and dispatch -------------------------------------------------------------------------
def start_execution(
    workflow: Workflow, input_data: dict, *, trigger: str = "manual", trigger_event: dict | None = None,
    owner=None, parent: Execution | None = None, parent_step: str = "", test_mode: bool | None = None,
) -> Execution:
    """Test mode and owner are the execution's, fixed here: test mode from the input or the caller,
    and a child's never looser than its parent's; the owner defaults to the workflow's (triggers,
    beat and the CLI start executions on the owner's behalf)."""
    if workflow.status != Workflow.Status.ACTIVE:
        raise OperationError("CONFLICT", f"workflow '{workflow.name}' is {workflow.status}", {"field": "workflow_id"})
    if owner is None:
        owner = workflow.owner
    fixed_test_mode = bool(input_data.get("test_mode", False)) or bool(test_mode) or bool(parent and parent.test_mode)
    # The engine's own keys (`_circuits`, ...) never come from outside (a queue message, an event).
    context = {k: v for k, v in input_data.items() if not str(k).startswith("_")}
    if fixed_test_mode or "test_mode" in context:
        context["test_mode"] = fixed_test_mode  # what expressions see agrees with the execution
    if trigger_event is not None:
        context["event"] = trigger_event
    execution = Execution(
        workflow=workflow, version_id=workflow.current_version_id, trigger=trigger, trigger_event=trigger_event,
        input_data=input_data, context=context, test_mode=fixed_test_mode,
        priority=workflow.priority, parent=parent, parent_step=parent_step, owner=owner,
        dispatch_count=1, heartbeat_at=timezone.now(),
    )
    queued = audit.build("execution_queued", workflow_id=workflow.id, execution_id=execution.id, trigger=trigger,
                         version=workflow.version, trigger_event=trigger_event, parent=str(parent.id) if parent else None)
    execution.version = workflow.current_version  # already loaded: no query when compiling
    step_writes.insert_execution(execution, queued)
    # now if the rows are committed, else after the caller's transaction (a parent's step, a trigger) commits
    transaction.on_commit(lambda: send_canvas(execution, 1, 0, workflow=workflow))
    return execution


def dispatch(execution: Execution, *, reason: str) -> int:
    """(Re)send an execution from its cursor under a new generation. Call inside a transaction
    holding the execution row lock."""
    execution.dispatch_count += 1
    execution.heartbeat_at = timezone.now()
    execution.save(update_fields=["dispatch_count", "heartbeat_at", "status", "error", "finished_at"])
    generation, cursor, exec_id = execution.dispatch_count, execution.cursor, execution.id
    audit.record("execution_dispatched", workflow_id=execution.workflow_id, execution_id=exec_id,
                 reason=reason, generation=generation, cursor=cursor)
    if execution.status == S.COMPENSATING:
        transaction.on_commit(lambda: send_compensation(exec_id, generation))
    else:
        transaction.on_commit(lambda: send_canvas(exec_id, generation, cursor))
    return generation


# --- moving on and finishing --------------------------------------------------------------------
def advance(execution: Execution, group_index: int, groups: list[list[int]]) -> None:
    """Move the cursor past a finished group; finish the execution after the last one."""
    execution.cursor = group_index + 1
    if execution.cursor >= len(groups):
        finalize(execution, S.SUCCEEDED)


def finalize(execution: Execution, status: str, error: dict | None = None) -> None:
    """Set a final status (caller saves the row), audit it, notify waiters and the parent."""
    execution.status = status
    execution.finished_at = timezone.now()
    execution.current_step = ""
    execution.error = error
    event = {S.SUCCEEDED: "workflow_completed", S.FAILED: "workflow_failed",
             S.COMPENSATED: "workflow_compensated", S.CANCELLED: "workflow_cancelled"}[status]
    started = execution.started_at or execution.queued_at
    audit.record(event, workflow_id=execution.workflow_id, execution_id=execution.id, status=status,
                 duration=round((execution.finished_at - started).total_seconds(), 6), error=error)
    if status == S.SUCCEEDED:
        circuit_feedback(execution, success=True)
    exec_id = execution.id
    transaction.on_commit(lambda: notify_done(exec_id, status))
    if execution.parent_id:
        execution.save(update_fields=FINAL_FIELDS)
        _resume_parent(execution)


def circuit_feedback(execution: Execution, *, success: bool) -> None:
    """Report the outcome to every breaker this execution passed (see workflows_app.steps)."""
    for key, params in (execution.context.get("_circuits") or {}).items():
        breaker = CircuitBreaker(key, **params)
        state = breaker.record_success() if success else breaker.record_failure()
        audit.record("circuit_" + ("success" if success else "failure"), workflow_id=execution.workflow_id,
                     execution_id=execution.id, circuit=key, state=state)


# --- failing ------------------------------------------------------------------------------------
def fail_step(execution: Execution, step: dict, run: StepRun, error_class: str, exc: BaseException, tb: str) -> None:
    """A step failed for good: its attempt, its dead letter, then compensate or fail."""
    with transaction.atomic():
        execution = Execution.objects.select_for_update().select_related("workflow").get(pk=execution.pk)
        mark_failed(run, error_class, exc, tb)
        payload = {"execution_id": str(execution.id), "step": step["name"], "params": step.get("params", {}),
                   "input_data": execution.input_data}
        give_up(execution, Failure(step["name"], error_class, exc, tb, run.attempt, payload), compensating=False)


def give_up(execution: Execution, failure: Failure, *, compensating: bool) -> None:
    """After a failure that is not retried: the dead letter, then compensate or fail. A failure while
    compensating fails the execution as `compensation_failed` (`retry` resumes its compensations).
    Call inside a transaction holding the execution row lock."""
    error = dead_letter(execution, failure)
    if not compensating:
        fail_or_compensate(execution, error)
        return
    # A compensation's own failure, or the platform failing under one (then recorded as the cause).
    cause = {} if failure.compensation else {"cause": failure.error_class}
    finalize(execution, S.FAILED, {**error, "error_class": "compensation_failed", **cause})
    execution.save(update_fields=FINAL_FIELDS)


def fail_or_compensate(execution: Execution, error: dict) -> None:
    if compensations_pending(execution):
        execution.status = S.COMPENSATING
        execution.error = error
        dispatch(execution, reason="compensate")
        audit.record("compensation_started", workflow_id=execution.workflow_id, execution_id=execution.id,
                     steps=compensations_pending(execution))
    else:
        finalize(execution, S.FAILED, error)
        execution.save(update_fields=FINAL_FIELDS)


# --- a child's end ------------------------------------------------------------------------------
def _resume_parent(child: Execution) -> None:
    """Inside the child's final transaction: complete or fail the parent's waiting step."""
    parent = Execution.objects.select_for_update().select_related("version", "workflow").get(pk=child.parent_id)
    run = StepRun.objects.filter(execution=parent, step_name=child.parent_step, status=StepRun.Status.WAITING).first()
    if run is None or parent.status != S.RUNNING:
        return
    step = next(s for s in parent.version.definition["steps"] if s["name"] == child.parent_step)
    outputs = child_outputs(child)
    output = {"child_execution_id": str(child.id), "status": child.status, "output": outputs}
    refused = output_problem(parent, step, output) if child.status == S.SUCCEEDED else None
    if child.status == S.SUCCEEDED and refused is None:
        _complete_waiting_step(parent, step, run, output, outputs)
    elif refused is not None:
        fail_step(parent, step, run, refused.error_class, refused, "")
    else:
        reason = child.error or {}
        detail = f": {reason.get('error_class')}: {reason.get('message')}" if reason.get("error_class") else ""
        exc = RuntimeError(f"child execution {child.id} ended {child.status}{detail}"[:1000])
        fail_step(parent, step, run, "subprocess_failed", exc, "")


def _complete_waiting_step(parent: Execution, step: dict, run: StepRun, output: dict, outputs: dict) -> None:
    groups = execution_groups(parent.version.definition["steps"])
    group_index = next(i for i, g in enumerate(groups) if run.step_index in g)
    parent.context[step["name"]] = output
    parent.context.update(outputs)
    run.status, run.finished_at, run.result = StepRun.Status.SUCCEEDED, timezone.now(), output
    run.save(update_fields=["status", "finished_at", "result"])
    audit.record("step_completed", workflow_id=parent.workflow_id, execution_id=parent.id, step=step["name"],
                 result={"child_execution_id": output["child_execution_id"], "status": output["status"]})
    advance(parent, group_index, groups)
    if parent.is_final:
        parent.save(update_fields=["context", "cursor", *FINAL_FIELDS])
    else:
        parent.save(update_fields=["context", "cursor"])
        dispatch(parent, reason="subprocess_finished")


# --- operator actions ---------------------------------------------------------------------------
def cancel(execution_id, *, reason: str = "cancelled by user") -> Execution:
    with transaction.atomic():
        execution = Execution.objects.select_for_update().get(pk=execution_id)
        if execution.is_final:
            raise OperationError("CONFLICT", f"execution is already {execution.status}", {"field": "execution_id"})
        finalize(execution, S.CANCELLED, {"message": reason})
        execution.wake_at = None  # a waiting execution: the timer has nothing left to resume
        execution.save(update_fields=[*FINAL_FIELDS, "wake_at"])
        _close_waits(execution, reason)
        for child in execution.children.exclude(status__in=Execution.FINAL):
            cancel(child.id, reason="parent cancelled")
    return execution


def _close_waits(execution: Execution, reason: str) -> None:
    """A cancelled execution's waiting step ends, and its open approval can no longer be decided."""
    now = timezone.now()
    StepRun.objects.filter(execution=execution, status=StepRun.Status.WAITING).update(
        status=StepRun.Status.FAILED, finished_at=now, error=reason[:5000], error_class="cancelled")
    ApprovalRequest.objects.filter(execution=execution, status=ApprovalRequest.Status.PENDING).update(
        status=ApprovalRequest.Status.CANCELLED, decided_at=now, comment=reason[:1000])


def retry(execution_id, *, reason: str = "retry") -> Execution:
    """Run a failed execution again from the step that failed; earlier steps keep their results."""
    with transaction.atomic():
        execution = Execution.objects.select_for_update().get(pk=execution_id)
        if execution.status != S.FAILED:
            raise OperationError("CONFLICT", f"only a failed execution can be retried (it is {execution.status})",
                                 {"field": "execution_id"})
        if execution.error and execution.error.get("error_class") == "compensation_failed":
            execution.status = S.COMPENSATING
        else:
            execution.status = S.RUNNING
        execution.finished_at = None
        failed = execution.error
        execution.error = None
        StepRun.objects.filter(execution=execution, status=StepRun.Status.WAITING).update(status=StepRun.Status.FAILED)
        audit.record("execution_retried", workflow_id=execution.workflow_id, execution_id=execution.id,
                     reason=reason, from_step=(failed or {}).get("step"))
        dispatch(execution, reason=reason)
    return execution
