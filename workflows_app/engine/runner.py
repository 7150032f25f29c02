"""Running one message of a canvas: a step (load, start the attempt, condition, handler, complete)
and a parallel group's join (a saga's compensations: engine/compensating.py).

Invariants that make redelivery safe:
- each dispatch bumps ``Execution.dispatch_count`` and its messages carry that generation; a
  message from an older generation is ignored (it was superseded by a reconciler re-dispatch);
- a step's success (StepRun, context merge, cursor advance, audit) commits in one transaction,
  so a redelivered step that already succeeded just returns its stored result;
- side effects outside the database use ``StepContext.idempotency_key`` (execution:step).
"""
from __future__ import annotations

import traceback

from celery.exceptions import SoftTimeLimitExceeded
from django.conf import settings
from django.db import transaction
from django.utils import timezone

from workflows_app import audit, expressions
from workflows_app.definitions import execution_groups, step_type_name
from workflows_app.engine import step_writes
from workflows_app.engine.failures import mark_retrying, save_attempt
from workflows_app.engine.lifecycle import (
    FINAL_FIELDS,
    advance,
    circuit_feedback,
    fail_step,
)
from workflows_app.engine.loading import load_step
from workflows_app.engine.outcomes import RetryStep, StaleMessage, StepFailed
from workflows_app.engine.outputs import mergeable, output_problem
from workflows_app.engine.policy import HARD_LIMIT_SLACK, async_commit, backoff_delay, retry_policy
from workflows_app.engine.subprocess import start_child
from workflows_app.engine.suspend import Suspension, suspend
from workflows_app.engine.waiting import notify_done
from workflows_app.errors import is_infrastructure
from workflows_app.models import Execution, StepRun
from workflows_app.registry import ErrorInfo, StepContext, registry

S = Execution.Status
CLOCK_SLACK = 5  # seconds of disagreement allowed between a worker's clock and the reconciler's


def step_context(execution: Execution, step: dict, attempt: int, *, params=None, compensating=None,
                  type_name: str | None = None, run: StepRun | None = None) -> StepContext:
    type_name = type_name or step_type_name(step)
    step_type = registry.get_step_type(type_name)
    raw_params = step.get("params", {}) if params is None else params
    exec_id, wf_id, name = execution.id, execution.workflow_id, step["name"]

    def audit_from_handler(event: str, /, **data):
        if run is not None and run.pk is None:
            _persist_start(run)  # the trail shows the step started before what its handler did
        audit.record(event, workflow_id=wf_id, execution_id=exec_id, step=name, **data)

    return StepContext(
        execution_id=str(exec_id), workflow_id=str(wf_id), workflow_name=execution.workflow.name,
        step_name=name, step_type=type_name, params=step_type.params_model.model_validate(raw_params),
        context=dict(execution.context), input_data=dict(execution.input_data), test_mode=execution.test_mode,
        attempt=attempt, owner_id=execution.owner_id, compensating=compensating, audit=audit_from_handler,
        steps=execution.version.definition["steps"],
    )


# --- a step -------------------------------------------------------------------------------------
def run_step(execution_id, generation: int, group_index: int, step_index: int, *, retries: int = 0,
             task_id: str = "", queue: str = "") -> dict:
    execution = load_step(execution_id, generation, step_index)
    step = execution.version.definition["steps"][step_index]
    if execution.prior_status in (StepRun.Status.SUCCEEDED, StepRun.Status.SKIPPED):
        # redelivered after success: the stored result, nothing re-run
        result = (StepRun.objects.filter(execution=execution, step_index=step_index, is_compensation=False,
                                         status=execution.prior_status).order_by("-id")
                  .values_list("result", flat=True).first()) or {}
        _adopt_result(execution, step, result, group_index, skipped=execution.prior_status == StepRun.Status.SKIPPED)
        return result
    if execution.prior_status == StepRun.Status.WAITING:
        return {}  # a subprocess step already started its child
    if execution.cursor < group_index:
        # The previous group's completion is not in the database (an asynchronous commit lost in a
        # database crash, see policy.async_commit): never run past it; the reconciler resumes from the cursor.
        raise StaleMessage(f"execution {execution_id} is at group {execution.cursor}, not {group_index}")
    attempt = execution.prior_attempts + 1
    type_name = step_type_name(step)
    if _start_may_wait(execution, group_index, type_name):
        run = _deferred_attempt(execution, step, step_index, attempt, type_name, task_id, queue)
    else:
        run = _start_attempt(execution, step, step_index, attempt, type_name, task_id, queue)
    try:
        return _attempt(execution, step, run, type_name, group_index, retries)
    except Exception as exc:
        if is_infrastructure(exc) and not run.durable:
            # Nothing of a deferred attempt was committed: infrastructure_fault records it whole.
            run.pk, run._state.adding = None, True
            exc.nexus_attempt = run
        raise


def _attempt(execution: Execution, step: dict, run: StepRun, type_name: str, group_index: int, retries: int) -> dict:
    if step.get("condition") and not _condition_holds(execution, step, run):
        _complete_step(execution, step, run, {"matched": False, "condition": step["condition"]},
                       group_index, skipped=True)
        return {"matched": False}
    if type_name == "subprocess":
        start_child(execution, step, run)
        return {"child_started": True}
    output = _call_handler(execution, step, run, type_name, retries)
    if isinstance(output, Suspension):  # a wait or an approval: the execution waits, the worker is free
        return suspend(execution, step, run, output)
    _complete_step(execution, step, run, output, group_index)
    return output


def start_grace() -> float:
    """Seconds after the execution's heartbeat (committed with the previous step, or at the start or
    a retry's postponement) within which a step may start without committing its start first.

    The reconciler re-dispatches a step only when the heartbeat is older than the step's timeout plus
    NEXUS_RECONCILE_MARGIN_SECONDS (and no worker took its message lately). A step started within the
    grace is killed by its hard time limit (timeout + HARD_LIMIT_SLACK after it started) before that,
    so the database alone still tells that it may be running. Later than the grace, the start is
    committed first (the heartbeat moves to it), as it always was; 0 turns the deferral off."""
    margin = settings.NEXUS_RECONCILE_MARGIN_SECONDS
    return max(0.0, min(float(settings.NEXUS_STEP_START_GRACE_SECONDS), margin - HARD_LIMIT_SLACK - CLOCK_SLACK))


def _start_may_wait(execution: Execution, group_index: int, type_name: str) -> bool:
    """A quick step (its own time is small next to a commit's) that is sequential (no siblings writing
    the row) and starts within the grace of the last committed heartbeat. A slow step's start is
    committed first: its running row shows in workflow_status while it runs."""
    groups = execution_groups(execution.version.definition["steps"])
    step_type = registry.get_step_type(type_name)
    if len(groups[group_index]) > 1 or not (step_type and step_type.quick) or execution.heartbeat_at is None:
        return False
    return (timezone.now() - execution.heartbeat_at).total_seconds() <= start_grace()


def _deferred_attempt(execution: Execution, step: dict, step_index: int, attempt: int, type_name: str,
                      task_id: str, queue: str) -> StepRun:
    """The attempt, not yet written: its row and start events go in with its outcome's transaction."""
    now, ids = timezone.now(), {"workflow_id": execution.workflow_id, "execution_id": execution.id}
    run = StepRun(execution=execution, step_name=step["name"], step_type=type_name, step_index=step_index,
                  attempt=attempt, task_id=task_id or "", queue=queue[:100], started_at=now)
    run.durable, run.pending_audit = False, []
    if execution.status == S.QUEUED:
        run.pending_audit.append(audit.build("workflow_started", **ids, trigger=execution.trigger,
                                             version=execution.version.number))
    run.pending_audit.append(audit.build("step_started", **ids, step=step["name"], attempt=attempt, type=type_name))
    return run


def _persist_start(run: StepRun) -> None:
    """Commit a deferred attempt's start now (its handler is about to write to the trail)."""
    with transaction.atomic():
        save_attempt(run, [])
    run.durable = True


def _start_attempt(execution: Execution, step: dict, step_index: int, attempt: int, type_name: str,
                   task_id: str, queue: str) -> StepRun:
    """One commit for "the step started": the execution running, its StepRun, the audit event."""
    now, name = timezone.now(), step["name"]
    # Only under the generation this message was sent with: a reconciler that re-dispatched since
    # the load holds (or held) the row lock and bumped it, and the step must not also run here.
    live = Execution.objects.filter(pk=execution.pk, dispatch_count=execution.dispatch_count,
                                    status__in=(S.QUEUED, S.RUNNING))
    with transaction.atomic(), audit.batched():
        started = execution.status == S.QUEUED and live.filter(status=S.QUEUED).update(
            status=S.RUNNING, started_at=now, current_step=name, heartbeat_at=now)
        if started:
            execution.status, execution.started_at = S.RUNNING, now
            audit.record("workflow_started", workflow_id=execution.workflow_id, execution_id=execution.id,
                         trigger=execution.trigger, version=execution.version.number)
        elif not live.update(current_step=name, heartbeat_at=now):
            raise StaleMessage(f"execution {execution.pk} was re-dispatched or ended before its step started")
        run = StepRun.objects.create(
            execution=execution, step_name=name, step_type=type_name, step_index=step_index, attempt=attempt,
            task_id=task_id or "", queue=queue[:100], started_at=now,
        )
        audit.record("step_started", workflow_id=execution.workflow_id, execution_id=execution.id, step=name,
                     attempt=attempt, type=type_name)
    run.durable = True
    return run


def _condition_holds(execution: Execution, step: dict, run: StepRun) -> bool:
    try:
        return bool(expressions.evaluate(step["condition"], execution.context))
    except expressions.ExpressionError as exc:
        fail_step(execution, step, run, "invalid_expression", exc, traceback.format_exc())
        raise StepFailed(str(exc)) from exc


def _call_handler(execution: Execution, step: dict, run: StepRun, type_name: str, retries: int) -> dict:
    """The step type's handler; a failure is classified, then retried (RetryStep) or failed (StepFailed)."""
    try:
        output = registry.get_step_type(type_name).handler(step_context(execution, step, run.attempt, run=run))
    except Exception as exc:  # noqa: BLE001 - every failure is classified, retried or dead-lettered
        if is_infrastructure(exc):
            raise  # the platform failed, not the step: see infrastructure_fault
        info = ErrorInfo("timeout", True) if isinstance(exc, SoftTimeLimitExceeded) else registry.classify_error(exc)
        tb = traceback.format_exc()
        circuit_feedback(execution, success=False)
        policy = retry_policy(step)
        if info.transient and retries < policy.max_retries:
            delay = max(backoff_delay(policy, retries), info.retry_after or 0)
            mark_retrying(execution, step["name"], run, info.error_class, exc, tb, delay)
            raise RetryStep(delay, exc) from exc
        fail_step(execution, step, run, info.error_class, exc, tb)
        raise StepFailed(str(exc)) from exc
    return output if isinstance(output, dict | Suspension) else {"result": output}


def _complete_step(loaded: Execution, step: dict, run: StepRun, output: dict, group_index: int, *,
                   skipped: bool = False) -> None:
    """Commit the step's result, the context merge, the cursor and the audit events together."""
    refused = output_problem(loaded, step, output)
    if refused is not None:  # nothing of it is stored: the step fails for good
        fail_step(loaded, step, run, refused.error_class, refused, "")
        raise StepFailed(str(refused))
    groups = execution_groups(loaded.version.definition["steps"])
    parallel = len(groups[group_index]) > 1
    run.status = StepRun.Status.SKIPPED if skipped else StepRun.Status.SUCCEEDED
    run.finished_at = timezone.now()
    run.result = output
    if not parallel and _plain_sequential(loaded):
        _complete_in_one_write(loaded, step, run, output, group_index, groups, skipped)
        return
    with transaction.atomic(), audit.batched():
        if not parallel and group_index + 1 < len(groups):
            async_commit()
            _merge(loaded, step, output, skipped)
            _move_on(loaded, run, group_index, groups)  # the row lock first, as every writer takes it
            _record_step(loaded, step, run, output, skipped)
            return
        if parallel:  # siblings merge into the same context: serialise on the row
            execution = Execution.objects.select_for_update().select_related("version", "workflow").get(pk=loaded.pk)
        else:
            # The previous step committed before this one started, so the loaded context is
            # current; lock the row and re-read only what a cancel or re-dispatch changes.
            execution = loaded
            execution.status, execution.dispatch_count = (
                Execution.objects.select_for_update().values_list("status", "dispatch_count").get(pk=loaded.pk))
        _merge(execution, step, output, skipped)
        _record_step(execution, step, run, output, skipped)
        if execution.is_final or execution.dispatch_count != loaded.dispatch_count:
            return  # cancelled or superseded while the step ran: record the step, move nothing
        if execution.started_at is None:  # a quick single step's start, deferred (see start_grace)
            execution.started_at = run.started_at
        _move_past(execution, group_index, groups, parallel)


def _plain_sequential(loaded: Execution) -> bool:
    """Nothing but the step's own writes to do at its end: no parent to resume and no circuit breaker
    to report to when the execution finishes (finalize)."""
    return loaded.parent_id is None and not loaded.context.get("_circuits")


def _complete_in_one_write(loaded: Execution, step: dict, run: StepRun, output: dict, group_index: int,
                           groups: list, skipped: bool) -> None:
    """The hot path (engine.step_writes): the attempt's row, its audit rows and the move on (or,
    after the last step, the execution's success) in one write."""
    _merge(loaded, step, output, skipped)
    events = [*getattr(run, "pending_audit", []), _completion_event(loaded, step, run, output, skipped)]
    if group_index + 1 < len(groups):
        following = loaded.version.definition["steps"][groups[group_index + 1][0]]["name"]
        step_writes.complete(loaded, run, events, group_index, following=following)
        return
    now = timezone.now()
    duration = round((now - (loaded.started_at or run.started_at)).total_seconds(), 6)
    finished = audit.build("workflow_completed", workflow_id=loaded.workflow_id, execution_id=loaded.id,
                           status=S.SUCCEEDED, duration=duration, error=None)
    if step_writes.complete(loaded, run, events, group_index, finished=finished):
        notify_done(loaded.id, S.SUCCEEDED)


def _merge(execution: Execution, step: dict, output: dict, skipped: bool) -> None:
    execution.context[step["name"]] = output
    if not skipped:
        execution.context.update(mergeable(step, output))


def _record_step(execution: Execution, step: dict, run: StepRun, output: dict, skipped: bool) -> None:
    """Inside the step's transaction: its StepRun and audit event."""
    save_attempt(run, ["status", "finished_at", "result"])
    audit.record_many([_completion_event(execution, step, run, output, skipped)])


def _completion_event(execution: Execution, step: dict, run: StepRun, output: dict, skipped: bool):
    return audit.build("step_skipped" if skipped else "step_completed", workflow_id=execution.workflow_id,
                       execution_id=execution.id, step=step["name"], result=output,
                       duration=round(run.duration or 0, 6), attempt=run.attempt)


def _move_on(loaded: Execution, run: StepRun, group_index: int, groups: list) -> None:
    """A sequential step that is not the last: one conditional UPDATE saves the context and moves
    the cursor, only under the generation the step ran with and while the execution is live (a
    cancel or a re-dispatch meanwhile: the step is recorded, nothing moves). Its heartbeat is the
    next step's "dispatched" evidence (see start_grace)."""
    following = loaded.version.definition["steps"][groups[group_index + 1][0]]["name"]
    fields = {"context": loaded.context, "cursor": group_index + 1, "heartbeat_at": timezone.now(),
              "current_step": following, "status": S.RUNNING}
    if loaded.started_at is None:
        fields["started_at"] = run.started_at
    Execution.objects.filter(pk=loaded.pk, dispatch_count=loaded.dispatch_count, cursor=group_index,
                             status__in=(S.QUEUED, S.RUNNING)).update(**fields)


def _move_past(execution: Execution, group_index: int, groups: list, parallel: bool) -> None:
    """Inside the step's transaction: save the merged context and, for a sequential step, move the
    cursor on (a parallel group's join does that once every member is in)."""
    if execution.status == S.QUEUED:
        execution.status = S.RUNNING
    if not parallel:
        advance(execution, group_index, groups)
    execution.heartbeat_at = timezone.now()
    execution.save(update_fields=["context", "cursor", "heartbeat_at", "started_at", *FINAL_FIELDS])


def _adopt_result(loaded: Execution, step: dict, output: dict, group_index: int, *, skipped: bool) -> None:
    """A step that succeeded while its execution was re-dispatched recorded its StepRun but moved
    nothing (see _complete_step). The new generation's message takes that stored result forward
    instead of leaving the cursor behind it for good (each re-dispatch would find the success and
    return again). Nothing to do when the result was applied (the cursor is past the group)."""
    if loaded.cursor > group_index:
        return
    groups = execution_groups(loaded.version.definition["steps"])
    parallel = len(groups[group_index]) > 1
    with transaction.atomic():
        execution = Execution.objects.select_for_update().select_related("version", "workflow").get(pk=loaded.pk)
        if execution.is_final or execution.dispatch_count != loaded.dispatch_count or execution.cursor > group_index:
            return
        name = step["name"]
        execution.context[name] = output
        if not skipped:
            execution.context.update(mergeable(step, output))
        audit.record("step_result_adopted", workflow_id=execution.workflow_id, execution_id=execution.id, step=name,
                     generation=execution.dispatch_count)
        _move_past(execution, group_index, groups, parallel)


def join_group(execution_id, generation: int, group_index: int) -> None:
    with transaction.atomic():
        execution = Execution.objects.select_for_update().select_related("version", "workflow").get(pk=execution_id)
        if execution.dispatch_count != generation or execution.status != S.RUNNING:
            return
        groups = execution_groups(execution.version.definition["steps"])
        if execution.cursor != group_index:
            return
        advance(execution, group_index, groups)
        execution.heartbeat_at = timezone.now()
        execution.save(update_fields=["cursor", "heartbeat_at", *FINAL_FIELDS])
