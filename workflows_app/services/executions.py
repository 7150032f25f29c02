"""Running executions: start, dispatch as a Celery canvas, run a step, finish, compensate,
cancel, retry and reconcile. Tasks in workflows_app.tasks are thin wrappers over these.

Invariants that make redelivery safe:
- each dispatch bumps ``Execution.dispatch_count`` and its messages carry that generation; a
  message from an older generation is ignored (it was superseded by a reconciler re-dispatch);
- a step's success (StepRun, context merge, cursor advance, audit) commits in one transaction,
  so a redelivered step that already succeeded just returns its stored result;
- side effects outside the database use ``StepContext.idempotency_key`` (execution:step).
"""
from __future__ import annotations

import json
import logging
import random
import traceback
from dataclasses import dataclass

from celery import chain, group
from celery.exceptions import SoftTimeLimitExceeded
from django.conf import settings
from django.core.serializers.json import DjangoJSONEncoder
from django.db import connections, transaction
from django.utils import timezone

from workflows_app import expressions
from workflows_app.circuit import CircuitBreaker, redis_client
from workflows_app.definitions import execution_groups, may_execute, resolve_workflow_ref, step_type_name
from workflows_app.errors import OperationError, PermanentStepError, is_infrastructure
from workflows_app.models import Agent, DeadLetter, Execution, StepRun, Workflow
from workflows_app.registry import ErrorInfo, RetryPolicy, StepContext, registry
from workflows_app.services import audit

log = logging.getLogger(__name__)
S = Execution.Status
DONE_KEY = "nexus:execution-done:{}"


class StaleMessage(Exception):
    """The message belongs to an older dispatch or a finished execution: drop it."""


class StepFailed(Exception):
    """The step failed for good; the execution was failed or compensation started."""


@dataclass
class RetryStep(Exception):
    delay: float
    error: BaseException


def celery_priority(workflow_priority: int) -> int:
    """Workflow priority 0..10 (10 most urgent) -> Redis priority 0..9 (0 consumed first)."""
    return 9 - min(max(int(workflow_priority), 0), 9)


def backoff_delay(policy: RetryPolicy, retries_done: int) -> float:
    delay = min(policy.backoff * (2**retries_done), policy.backoff_max)
    if policy.jitter:
        delay = random.uniform(delay / 2, delay)  # "equal jitter": never zero, never above the cap
    return round(delay, 3)


def retry_policy(step: dict) -> RetryPolicy:
    step_type = registry.get_step_type(step_type_name(step))
    base = step_type.retry if step_type else RetryPolicy()
    override = step.get("retry") or {}
    return RetryPolicy(
        max_retries=override.get("max_retries", base.max_retries),
        backoff=override.get("backoff", base.backoff),
        backoff_max=override.get("backoff_max", base.backoff_max),
        jitter=override.get("jitter", base.jitter),
    )


def step_timeout(step: dict) -> int:
    step_type = registry.get_step_type(step_type_name(step))
    return int(step.get("timeout") or (step_type and step_type.timeout) or settings.NEXUS_STEP_DEFAULT_TIMEOUT)


def step_queue(workflow_queue: str, step: dict, agents: dict[str, str]) -> str:
    if step.get("agent") and step["agent"] in agents:
        return agents[step["agent"]]
    step_type = registry.get_step_type(step_type_name(step))
    if step_type and step_type.queue != "workflows":
        return step_type.queue
    return workflow_queue


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
    with transaction.atomic():
        execution = Execution.objects.create(
            workflow=workflow, version_id=workflow.current_version_id, trigger=trigger, trigger_event=trigger_event,
            input_data=input_data, context=context, test_mode=fixed_test_mode,
            priority=workflow.priority, parent=parent, parent_step=parent_step, owner=owner,
            dispatch_count=1, heartbeat_at=timezone.now(),
        )
        audit.record("execution_queued", workflow_id=workflow.id, execution_id=execution.id, trigger=trigger,
                     version=workflow.version, trigger_event=trigger_event, parent=str(parent.id) if parent else None)
        execution.version = workflow.current_version  # already loaded: no query when compiling
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


def send_canvas(execution, generation: int, start_group: int, workflow: Workflow | None = None) -> None:
    """Compile the version's steps from `start_group` into a canvas and send it.

    Single steps don't store a Celery result (StepRun is the record); members of a parallel
    group do, because the chord's join counts them through the result backend."""
    from workflows_app import tasks

    if not isinstance(execution, Execution):
        execution = Execution.objects.select_related("version", "workflow").get(pk=execution)
    execution_id = execution.id
    workflow = workflow or execution.workflow
    steps = execution.version.definition["steps"]
    groups = execution_groups(steps)
    agents = dict(Agent.objects.values_list("name", "queue")) if any(s.get("agent") for s in steps) else {}
    priority = celery_priority(execution.priority)
    parts = []
    for group_index in range(start_group, len(groups)):
        members = groups[group_index]
        signatures = []
        for step_index in members:
            step = steps[step_index]
            timeout = step_timeout(step)
            signatures.append(
                tasks.run_step.si(str(execution_id), generation, group_index, step_index).set(
                    queue=step_queue(workflow.queue, step, agents), priority=priority,
                    soft_time_limit=timeout, time_limit=timeout + 10,
                )
            )
        if len(signatures) == 1:
            parts.append(signatures[0].set(ignore_result=True))
            if step_type_name(steps[members[0]]) == "subprocess":
                break  # the child's completion resumes this execution
        else:
            parts.append(group(signatures))
            parts.append(tasks.join_group.si(str(execution_id), generation, group_index).set(
                queue=workflow.queue, priority=priority, ignore_result=True))
    if not parts:
        return
    (chain(*parts) if len(parts) > 1 else parts[0]).apply_async()


def send_compensation(execution_id, generation: int) -> None:
    from workflows_app import tasks

    execution = Execution.objects.select_related("workflow").get(pk=execution_id)
    pending = compensations_pending(execution)
    priority = celery_priority(execution.priority)
    parts = [tasks.run_compensation.si(str(execution_id), generation, name).set(
        queue=execution.workflow.queue, priority=priority) for name in pending]
    parts.append(tasks.finish_compensation.si(str(execution_id), generation).set(
        queue=execution.workflow.queue, priority=priority))
    chain(*parts).apply_async()


# --- running a step -----------------------------------------------------------------------------
def _load(execution_id, generation: int) -> Execution:
    try:
        execution = Execution.objects.select_related("version", "workflow").get(pk=execution_id)
    except Execution.DoesNotExist:
        raise StaleMessage("execution deleted") from None
    if execution.dispatch_count != generation or execution.status not in (S.QUEUED, S.RUNNING):
        raise StaleMessage(f"execution {execution_id} is {execution.status}, generation {execution.dispatch_count}")
    return execution


def _step_context(execution: Execution, step: dict, attempt: int, *, params=None, compensating=None,
                  type_name: str | None = None) -> StepContext:
    type_name = type_name or step_type_name(step)
    step_type = registry.get_step_type(type_name)
    raw_params = step.get("params", {}) if params is None else params
    exec_id, wf_id, name = execution.id, execution.workflow_id, step["name"]

    def audit_from_handler(event: str, /, **data):
        audit.record(event, workflow_id=wf_id, execution_id=exec_id, step=name, **data)

    return StepContext(
        execution_id=str(exec_id), workflow_id=str(wf_id), workflow_name=execution.workflow.name,
        step_name=name, step_type=type_name, params=step_type.params_model.model_validate(raw_params),
        context=dict(execution.context), input_data=dict(execution.input_data), test_mode=execution.test_mode,
        attempt=attempt, owner_id=execution.owner_id, compensating=compensating, audit=audit_from_handler,
        steps=execution.version.definition["steps"],
    )


def run_step(execution_id, generation: int, group_index: int, step_index: int, *, retries: int = 0,
             task_id: str = "", queue: str = "") -> dict:
    execution = _load(execution_id, generation)
    step = execution.version.definition["steps"][step_index]
    name = step["name"]
    earlier = list(StepRun.objects.filter(execution=execution, step_name=name, is_compensation=False)
                   .order_by("-id").values_list("status", "result"))
    for status, result in earlier:
        if status in (StepRun.Status.SUCCEEDED, StepRun.Status.SKIPPED):
            return result or {}  # redelivered after success: the stored result, nothing re-run
        if status == StepRun.Status.WAITING:
            return {}  # a subprocess step already started its child
    now = timezone.now()
    attempt = len(earlier) + 1
    type_name = step_type_name(step)
    with transaction.atomic():  # one commit for "the step started"
        started = execution.status == S.QUEUED and Execution.objects.filter(pk=execution.pk, status=S.QUEUED).update(
            status=S.RUNNING, started_at=now, current_step=name, heartbeat_at=now)
        if started:
            audit.record("workflow_started", workflow_id=execution.workflow_id, execution_id=execution.id,
                         trigger=execution.trigger, version=execution.version.number)
        else:
            Execution.objects.filter(pk=execution.pk).update(current_step=name, heartbeat_at=now)
        run = StepRun.objects.create(
            execution=execution, step_name=name, step_type=type_name, step_index=step_index, attempt=attempt,
            task_id=task_id or "", queue=queue[:100], started_at=now,
        )
        audit.record("step_started", workflow_id=execution.workflow_id, execution_id=execution.id, step=name,
                     attempt=attempt, type=type_name)

    if step.get("condition"):
        try:
            matched = bool(expressions.evaluate(step["condition"], execution.context))
        except expressions.ExpressionError as exc:
            _fail_step(execution, step, run, ErrorInfo("invalid_expression", False), exc, traceback.format_exc())
            raise StepFailed(str(exc)) from exc
        if not matched:
            _complete_step(execution, step, run, {"matched": False, "condition": step["condition"]},
                           group_index, skipped=True)
            return {"matched": False}

    if type_name == "subprocess":
        _start_child(execution, step, run)
        return {"child_started": True}

    try:
        output = registry.get_step_type(type_name).handler(_step_context(execution, step, attempt))
        if not isinstance(output, dict):
            output = {"result": output}
    except Exception as exc:  # noqa: BLE001 - every failure is classified, retried or dead-lettered
        if is_infrastructure(exc):
            raise  # the platform failed, not the step: see infrastructure_fault
        info = ErrorInfo("timeout", True) if isinstance(exc, SoftTimeLimitExceeded) else registry.classify_error(exc)
        tb = traceback.format_exc()
        _circuit_feedback(execution, success=False)
        policy = retry_policy(step)
        if info.transient and retries < policy.max_retries:
            delay = max(backoff_delay(policy, retries), info.retry_after or 0)
            _mark_retrying(execution, step, run, info, exc, tb, delay)
            raise RetryStep(delay, exc) from exc
        _fail_step(execution, step, run, info, exc, tb)
        raise StepFailed(str(exc)) from exc
    _complete_step(execution, step, run, output, group_index)
    return output


def _complete_step(loaded: Execution, step: dict, run: StepRun, output: dict, group_index: int, *,
                   skipped: bool = False) -> None:
    """Commit the step's result, the context merge, the cursor and the audit event together."""
    refused = output_problem(loaded, step, output)
    if refused is not None:  # nothing of it is stored: the step fails for good
        _fail_step(loaded, step, run, ErrorInfo(refused.error_class, False), refused, "")
        raise StepFailed(str(refused))
    groups = execution_groups(loaded.version.definition["steps"])
    parallel = len(groups[group_index]) > 1
    generation = loaded.dispatch_count
    with transaction.atomic():
        if parallel:  # siblings merge into the same context: serialise on the row
            execution = Execution.objects.select_for_update().select_related("version", "workflow").get(pk=loaded.pk)
        else:
            # The previous step committed before this one started, so the loaded context is
            # current; lock the row and re-read only what a cancel or re-dispatch changes.
            execution = loaded
            execution.status, execution.dispatch_count = (
                Execution.objects.select_for_update().values_list("status", "dispatch_count").get(pk=loaded.pk))
        name = step["name"]
        execution.context[name] = output
        if not skipped:
            execution.context.update(mergeable(step, output))
        run.status = StepRun.Status.SKIPPED if skipped else StepRun.Status.SUCCEEDED
        run.finished_at = timezone.now()
        run.result = output
        run.save(update_fields=["status", "finished_at", "result"])
        audit.record("step_skipped" if skipped else "step_completed", workflow_id=execution.workflow_id,
                     execution_id=execution.id, step=name, result=output,
                     duration=round(run.duration or 0, 6), attempt=run.attempt)
        if execution.is_final or execution.dispatch_count != generation:
            return  # cancelled or superseded while the step ran: record the step, move nothing
        if execution.status == S.QUEUED:
            execution.status = S.RUNNING
        if not parallel:
            _advance(execution, group_index, groups)
        execution.heartbeat_at = timezone.now()
        execution.save(update_fields=["context", "cursor", "heartbeat_at", "status", "finished_at",
                                      "current_step", "error"])


def join_group(execution_id, generation: int, group_index: int) -> None:
    with transaction.atomic():
        execution = Execution.objects.select_for_update().select_related("version", "workflow").get(pk=execution_id)
        if execution.dispatch_count != generation or execution.status != S.RUNNING:
            return
        groups = execution_groups(execution.version.definition["steps"])
        if execution.cursor != group_index:
            return
        _advance(execution, group_index, groups)
        execution.heartbeat_at = timezone.now()
        execution.save(update_fields=["cursor", "heartbeat_at", "status", "finished_at", "current_step", "error"])


def _advance(execution: Execution, group_index: int, groups: list[list[int]]) -> None:
    """Move the cursor past a finished group; finish the execution after the last one."""
    execution.cursor = group_index + 1
    if execution.cursor >= len(groups):
        _finalize(execution, S.SUCCEEDED)


def _finalize(execution: Execution, status: str, error: dict | None = None) -> None:
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
        _circuit_feedback(execution, success=True)
    exec_id = execution.id
    transaction.on_commit(lambda: _notify_done(exec_id, status))
    if execution.parent_id:
        execution.save(update_fields=["status", "finished_at", "current_step", "error"])
        _child_finished(execution)


def _notify_done(execution_id, status: str) -> None:
    try:
        client = redis_client()
        key = DONE_KEY.format(execution_id)
        client.pipeline().rpush(key, status).expire(key, 300).execute()
    except Exception:  # noqa: BLE001 - waiters fall back to polling the database
        log.warning("could not publish completion of %s", execution_id, exc_info=True)


def wait_until_final(execution_id, timeout: float) -> Execution:
    """Block up to `timeout` seconds for an execution to finish (Redis signal, DB as truth)."""
    key = DONE_KEY.format(execution_id)
    deadline = timezone.now().timestamp() + timeout
    execution = Execution.objects.get(pk=execution_id)
    while not execution.is_final:
        remaining = deadline - timezone.now().timestamp()
        if remaining <= 0:
            break
        try:
            redis_client().blpop([key], timeout=min(remaining, 1.0))
        except Exception:  # noqa: BLE001
            import time

            time.sleep(min(remaining, 0.2))
        execution = Execution.objects.get(pk=execution_id)
    return execution


def _mark_retrying(execution, step, run, info: ErrorInfo, exc, tb: str, delay: float) -> None:
    now = timezone.now()
    run.status, run.finished_at = StepRun.Status.RETRYING, now
    run.error, run.error_class, run.traceback = str(exc)[:5000], info.error_class, tb[-20000:]
    run.save(update_fields=["status", "finished_at", "error", "error_class", "traceback"])
    # The next sign of life is expected after the backoff: keep the reconciler away until then.
    Execution.objects.filter(pk=execution.pk).update(heartbeat_at=now + timezone.timedelta(seconds=delay))
    audit.record("step_retrying", workflow_id=execution.workflow_id, execution_id=execution.id, step=step["name"],
                 error=str(exc)[:1000], error_class=info.error_class, attempt=run.attempt, next_delay=delay)


def _fail_step(execution, step, run, info: ErrorInfo, exc, tb: str) -> None:
    with transaction.atomic():
        execution = Execution.objects.select_for_update().select_related("workflow").get(pk=execution.pk)
        now = timezone.now()
        run.status, run.finished_at = StepRun.Status.FAILED, now
        run.error, run.error_class, run.traceback = str(exc)[:5000], info.error_class, tb[-20000:]
        run.save(update_fields=["status", "finished_at", "error", "error_class", "traceback"])
        audit.record("step_failed", workflow_id=execution.workflow_id, execution_id=execution.id, step=step["name"],
                     error=str(exc)[:1000], error_class=info.error_class, attempt=run.attempt)
        letter = DeadLetter.objects.create(
            source="step", workflow_id=execution.workflow_id, execution=execution, step_name=step["name"],
            error_class=info.error_class, error=str(exc)[:5000], traceback=tb[-20000:], attempts=run.attempt,
            payload={"execution_id": str(execution.id), "step": step["name"], "params": step.get("params", {}),
                     "input_data": execution.input_data},
        )
        audit.record("dead_lettered", workflow_id=execution.workflow_id, execution_id=execution.id,
                     step=step["name"], dead_letter_id=str(letter.id), error_class=info.error_class)
        _fail_or_compensate(execution, {"step": step["name"], "error_class": info.error_class,
                                        "message": str(exc)[:1000], "dead_letter_id": str(letter.id)})


def _fail_or_compensate(execution: Execution, error: dict) -> None:
    if compensations_pending(execution):
        execution.status = S.COMPENSATING
        execution.error = error
        dispatch(execution, reason="compensate")
        audit.record("compensation_started", workflow_id=execution.workflow_id, execution_id=execution.id,
                     steps=compensations_pending(execution))
    else:
        _finalize(execution, S.FAILED, error)
        execution.save(update_fields=["status", "finished_at", "current_step", "error"])


# --- subprocesses -------------------------------------------------------------------------------
def _ancestry(execution: Execution, limit: int) -> list:
    """Workflow ids from this execution up its parent links (at most `limit` + 1 of them)."""
    chain, parent_id = [execution.workflow_id], execution.parent_id
    while parent_id and len(chain) <= limit:
        row = Execution.objects.filter(pk=parent_id).values_list("workflow_id", "parent_id").first()
        if row is None:
            break
        chain.append(row[0])
        parent_id = row[1]
    return chain


def _child_refusal(execution: Execution, step: dict, child_workflow) -> PermanentStepError | None:
    """Why this subprocess may not start: missing, not the owner's to run, too deep, or a cycle."""
    ref = step["workflow_id"]
    if child_workflow is None or child_workflow.status != Workflow.Status.ACTIVE:
        return PermanentStepError(f"subprocess workflow '{ref}' is missing or not active", "subprocess_unavailable")
    if not may_execute(execution.workflow.owner, child_workflow):
        return PermanentStepError(f"subprocess workflow '{ref}' is not this workflow's owner's to run",
                                  "permission_denied")
    max_depth = int(getattr(settings, "NEXUS_MAX_SUBPROCESS_DEPTH", 8))
    chain = _ancestry(execution, max_depth)
    if child_workflow.id in chain:
        return PermanentStepError(f"subprocess cycle: '{child_workflow.name}' is already running in this chain "
                                  f"({len(chain)} levels)", "subprocess_cycle")
    if len(chain) > max_depth:
        return PermanentStepError(f"subprocess nesting deeper than NEXUS_MAX_SUBPROCESS_DEPTH={max_depth}",
                                  "subprocess_depth")
    return None


def _start_child(execution: Execution, step: dict, run: StepRun) -> None:
    # Checked again at run time (the definition was checked when saved): names resolve within
    # the owner's workflows, and ownership, depth and cycles may have changed since.
    child_workflow = resolve_workflow_ref(step["workflow_id"], execution.workflow.owner)
    refused = _child_refusal(execution, step, child_workflow)
    if refused is not None:  # outside the block below: raising there would roll the failure back
        _fail_step(execution, step, run, ErrorInfo(refused.error_class, False), refused, "")
        raise StepFailed(str(refused))
    with transaction.atomic():
        run.status = StepRun.Status.WAITING
        run.save(update_fields=["status"])
        # The context's reserved keys were set by the engine (outputs cannot write them): the child
        # gets the parent's event and test mode, and no engine `_` keys.
        child_input = {k: v for k, v in execution.context.items() if not str(k).startswith("_")}
        if execution.test_mode:
            child_input["test_mode"] = True  # inherited from the execution, never from the context
        child = start_execution(child_workflow, child_input, trigger="subprocess", owner=execution.owner,
                                parent=execution, parent_step=step["name"], test_mode=execution.test_mode)
        run.result = {"child_execution_id": str(child.id), "workflow": child_workflow.name}
        run.save(update_fields=["result"])


def _child_finished(child: Execution) -> None:
    """Inside the child's final transaction: complete or fail the parent's waiting step."""
    parent = Execution.objects.select_for_update().select_related("version", "workflow").get(pk=child.parent_id)
    run = StepRun.objects.filter(execution=parent, step_name=child.parent_step, status=StepRun.Status.WAITING).first()
    if run is None or parent.status != S.RUNNING:
        return
    step = next(s for s in parent.version.definition["steps"] if s["name"] == child.parent_step)
    outputs = {k: v for k, v in child.context.items() if k not in child.input_data and not is_reserved(k)}
    output = {"child_execution_id": str(child.id), "status": child.status, "output": outputs}
    refused = output_problem(parent, step, output) if child.status == S.SUCCEEDED else None
    if child.status == S.SUCCEEDED and refused is None:
        groups = execution_groups(parent.version.definition["steps"])
        group_index = next(i for i, g in enumerate(groups) if run.step_index in g)
        parent.context[step["name"]] = output
        parent.context.update(outputs)
        run.status, run.finished_at, run.result = StepRun.Status.SUCCEEDED, timezone.now(), output
        run.save(update_fields=["status", "finished_at", "result"])
        audit.record("step_completed", workflow_id=parent.workflow_id, execution_id=parent.id, step=step["name"],
                     result={"child_execution_id": str(child.id), "status": child.status})
        _advance(parent, group_index, groups)
        if parent.is_final:
            parent.save(update_fields=["context", "cursor", "status", "finished_at", "current_step", "error"])
        else:
            parent.save(update_fields=["context", "cursor"])
            dispatch(parent, reason="subprocess_finished")
    elif refused is not None:
        _fail_step(parent, step, run, ErrorInfo(refused.error_class, False), refused, "")
    else:
        reason = child.error or {}
        detail = f": {reason.get('error_class')}: {reason.get('message')}" if reason.get("error_class") else ""
        exc = RuntimeError(f"child execution {child.id} ended {child.status}{detail}"[:1000])
        _fail_step(parent, step, run, ErrorInfo("subprocess_failed", False), exc, "")


# --- what a step may write into the context -----------------------------------------------------
# Keys that steer the engine: its own (`_circuits`, ...) and those the execution owns (test mode,
# owner and account are fixed at start; `event` is the trigger's). They are never merged into the
# context's top level from a step output (they stay under the step's name, e.g. a trade reporting
# its account); an output that tries to change the test mode or write an engine key fails the step
# (`reserved_key`). Only the engine's own step types write their `_` keys.
RESERVED_KEYS = frozenset({"test_mode", "owner", "account", "event"})
ENGINE_WRITES = {"circuit_breaker": frozenset({"_circuits"})}


def is_reserved(key) -> bool:
    return str(key).startswith("_") or key in RESERVED_KEYS


def _engine_value(execution: Execution, key: str):
    return execution.test_mode if key == "test_mode" else execution.context.get(key)


def output_problem(execution: Execution, step: dict, output: dict) -> PermanentStepError | None:
    """A reason to refuse a step's output: it would change the test mode or an engine key, or it is
    too large to store. Repeating the current value (a step reporting the test mode) is harmless."""
    allowed = ENGINE_WRITES.get(step_type_name(step), frozenset())
    for key, value in output.items():
        steering = key == "test_mode" or (str(key).startswith("_") and key not in allowed)
        if steering and value != _engine_value(execution, key):
            return PermanentStepError(f"step output may not set the reserved context key '{key}'", "reserved_key")
    limit = int(getattr(settings, "NEXUS_MAX_STEP_OUTPUT_BYTES", 256 * 1024))
    size = len(json.dumps(output, cls=DjangoJSONEncoder, default=str).encode())
    if size > limit:
        return PermanentStepError(f"step output is {size} bytes, over NEXUS_MAX_STEP_OUTPUT_BYTES={limit}",
                                  "output_too_large")
    return None


def mergeable(step: dict, output: dict) -> dict:
    """The part of an output merged into the context's top level (all of it stays under the step's name)."""
    allowed = ENGINE_WRITES.get(step_type_name(step), frozenset())
    return {k: v for k, v in output.items() if not is_reserved(k) or k in allowed}


# --- saga compensation --------------------------------------------------------------------------
def compensations_pending(execution: Execution) -> list[str]:
    """Completed steps with `compensate`, most recent first, not yet compensated."""
    steps = {s["name"]: s for s in execution.version.definition["steps"]}
    done = list(StepRun.objects.filter(execution=execution, is_compensation=False, status=StepRun.Status.SUCCEEDED)
                .order_by("-finished_at", "-id").values_list("step_name", flat=True))
    compensated = set(StepRun.objects.filter(execution=execution, is_compensation=True,
                                             status=StepRun.Status.SUCCEEDED).values_list("step_name", flat=True))
    return [n for n in done if steps.get(n, {}).get("compensate") and n not in compensated]


def run_compensation(execution_id, generation: int, step_name: str, *, retries: int = 0, task_id: str = "",
                     queue: str = "") -> dict:
    execution = Execution.objects.select_related("version", "workflow").get(pk=execution_id)
    if execution.dispatch_count != generation or execution.status != S.COMPENSATING:
        raise StaleMessage("not compensating")
    done = StepRun.objects.filter(execution=execution, step_name=step_name, is_compensation=True,
                                  status=StepRun.Status.SUCCEEDED).first()
    if done:
        return done.result or {}
    step = next(s for s in execution.version.definition["steps"] if s["name"] == step_name)
    original = StepRun.objects.filter(execution=execution, step_name=step_name, is_compensation=False,
                                      status=StepRun.Status.SUCCEEDED).order_by("-id").first()
    comp_type = step["compensate"]
    attempt = StepRun.objects.filter(execution=execution, step_name=step_name, is_compensation=True).count() + 1
    now = timezone.now()
    run = StepRun.objects.create(execution=execution, step_name=step_name, step_type=comp_type, is_compensation=True,
                                 step_index=original.step_index if original else 0, attempt=attempt,
                                 task_id=task_id, queue=queue[:100], started_at=now)
    Execution.objects.filter(pk=execution.pk).update(heartbeat_at=now, current_step=step_name)
    try:
        ctx = _step_context(execution, step, attempt, params={}, compensating=original.result if original else {},
                            type_name=comp_type)
        output = registry.get_step_type(comp_type).handler(ctx)
        output = output if isinstance(output, dict) else {"result": output}
    except Exception as exc:  # noqa: BLE001
        if is_infrastructure(exc):
            raise  # the platform failed, not the compensation: see infrastructure_fault
        info = registry.classify_error(exc)
        tb = traceback.format_exc()
        policy = retry_policy({"name": comp_type})
        if info.transient and retries < policy.max_retries:
            delay = backoff_delay(policy, retries)
            _mark_retrying(execution, step, run, info, exc, tb, delay)
            raise RetryStep(delay, exc) from exc
        with transaction.atomic():
            locked = Execution.objects.select_for_update().get(pk=execution.pk)
            run.status, run.finished_at, run.error, run.error_class, run.traceback = (
                StepRun.Status.FAILED, timezone.now(), str(exc)[:5000], info.error_class, tb[-20000:])
            run.save()
            letter = DeadLetter.objects.create(
                source="step", workflow_id=execution.workflow_id, execution=execution, step_name=step_name,
                error_class=info.error_class, error=str(exc)[:5000], traceback=tb[-20000:], attempts=attempt,
                payload={"execution_id": str(execution.id), "step": step_name, "compensation": comp_type})
            audit.record("compensation_failed", workflow_id=execution.workflow_id, execution_id=execution.id,
                         step=step_name, compensation=comp_type, error=str(exc)[:1000],
                         dead_letter_id=str(letter.id))
            _finalize(locked, S.FAILED, {"step": step_name, "error_class": "compensation_failed",
                                         "message": str(exc)[:1000], "dead_letter_id": str(letter.id)})
            locked.save(update_fields=["status", "finished_at", "current_step", "error"])
        raise StepFailed(str(exc)) from exc
    with transaction.atomic():
        run.status, run.finished_at, run.result = StepRun.Status.SUCCEEDED, timezone.now(), output
        run.save(update_fields=["status", "finished_at", "result"])
        audit.record("compensation_completed", workflow_id=execution.workflow_id, execution_id=execution.id,
                     step=step_name, compensation=comp_type, result=output)
    return output


def finish_compensation(execution_id, generation: int) -> None:
    with transaction.atomic():
        execution = Execution.objects.select_for_update().get(pk=execution_id)
        if execution.dispatch_count != generation or execution.status != S.COMPENSATING:
            return
        if compensations_pending(execution):
            dispatch(execution, reason="compensation_incomplete")
            return
        _finalize(execution, S.COMPENSATED, execution.error)
        execution.save(update_fields=["status", "finished_at", "current_step", "error"])


# --- infrastructure faults ----------------------------------------------------------------------
INFRASTRUCTURE = "infrastructure"


def infrastructure_policy() -> RetryPolicy:
    """Backoff for database/Redis outages on a step's path: generous, an outage outlives a step's own retries."""
    return RetryPolicy(
        max_retries=settings.NEXUS_INFRA_MAX_RETRIES,
        backoff=settings.NEXUS_INFRA_BACKOFF,
        backoff_max=settings.NEXUS_INFRA_BACKOFF_MAX,
        jitter=True,
    )


def reset_connections() -> None:
    """Close this thread's database connections so the next query opens a fresh one: a connection the
    server dropped (or that broke mid-transaction) must never be reused by the retry."""
    for conn in connections.all(initialized_only=True):
        if conn.in_atomic_block:
            continue  # an enclosing transaction owns it
        try:
            conn.close()
        except Exception:  # noqa: BLE001 - closing a dead connection may fail; drop it anyway
            conn.connection = None


def infrastructure_fault(execution_id, generation: int, exc: BaseException, *, infra_retries: int,
                         step: int | str | None = None) -> RetryStep:
    """A database or Redis error anywhere on a step's path (loading, start, handler, completion,
    finalisation, join, compensation): reset the connections and return the retry to schedule.

    Once the retries are spent, record it (audit + `infrastructure` dead letter, execution failed or
    compensated) and raise StepFailed. Retrying is safe: a step whose success committed returns its
    stored result, and handlers guard side effects with ctx.idempotency_key. If even the record
    cannot be written, the error propagates and the reconciler resumes the execution later."""
    tb = "".join(traceback.format_exception(exc))
    reset_connections()
    policy = infrastructure_policy()
    if infra_retries < policy.max_retries:
        delay = backoff_delay(policy, infra_retries)
        log.warning("infrastructure error in execution %s (step %s), retry %d in %.2fs: %r",
                    execution_id, step, infra_retries + 1, delay, exc)
        try:
            _note_infrastructure_retry(execution_id, generation, step, exc, tb, delay, infra_retries + 1)
        except Exception:  # noqa: BLE001 - still down: scheduling the retry matters, not its record
            log.warning("could not record the retry of execution %s", execution_id, exc_info=True)
            reset_connections()
        return RetryStep(delay, exc)
    log.error("giving up on execution %s (step %s) after %d infrastructure retries: %r",
              execution_id, step, infra_retries, exc)
    try:
        _give_up_infrastructure(execution_id, generation, step, exc, tb, infra_retries + 1)
    except Exception:
        reset_connections()
        log.critical("could not record the infrastructure failure of execution %s; the reconciler resumes it",
                     execution_id, exc_info=True)
        raise
    raise StepFailed(str(exc)) from exc


def _fault_step_name(execution: Execution, step: int | str | None) -> str:
    if isinstance(step, int):
        return execution.version.definition["steps"][step]["name"]
    return step or ""


def _note_infrastructure_retry(execution_id, generation, step, exc, tb: str, delay: float, attempt: int) -> None:
    execution = Execution.objects.select_related("version").filter(pk=execution_id).first()
    if execution is None or execution.dispatch_count != generation or execution.is_final:
        return
    name = _fault_step_name(execution, step)
    now = timezone.now()
    with transaction.atomic():
        if name:  # the attempt that was cut short
            StepRun.objects.filter(execution=execution, step_name=name, status=StepRun.Status.RUNNING,
                                   is_compensation=execution.status == S.COMPENSATING).update(
                status=StepRun.Status.RETRYING, finished_at=now, error=str(exc)[:5000],
                error_class=INFRASTRUCTURE, traceback=tb[-20000:])
        # The next sign of life is expected after the backoff: keep the reconciler away until then.
        Execution.objects.filter(pk=execution.pk).update(heartbeat_at=now + timezone.timedelta(seconds=delay))
        audit.record("step_retrying", workflow_id=execution.workflow_id, execution_id=execution.id, step=name,
                     error=str(exc)[:1000], error_class=INFRASTRUCTURE, attempt=attempt, next_delay=delay)


def _give_up_infrastructure(execution_id, generation, step, exc, tb: str, attempts: int) -> None:
    with transaction.atomic():
        execution = (Execution.objects.select_for_update().select_related("version", "workflow")
                     .filter(pk=execution_id).first())
        if execution is None or execution.is_final or execution.dispatch_count != generation:
            return  # finished or superseded meanwhile: nothing of this message's to fail
        name = _fault_step_name(execution, step)
        compensating = execution.status == S.COMPENSATING
        if name:
            StepRun.objects.filter(execution=execution, step_name=name, is_compensation=compensating,
                                   status__in=[StepRun.Status.RUNNING, StepRun.Status.RETRYING]).update(
                status=StepRun.Status.FAILED, finished_at=timezone.now(), error=str(exc)[:5000],
                error_class=INFRASTRUCTURE, traceback=tb[-20000:])
        audit.record("step_failed", workflow_id=execution.workflow_id, execution_id=execution.id, step=name,
                     error=str(exc)[:1000], error_class=INFRASTRUCTURE, attempt=attempts)
        letter = DeadLetter.objects.create(
            source="step", workflow_id=execution.workflow_id, execution=execution, step_name=name,
            error_class=INFRASTRUCTURE, error=str(exc)[:5000], traceback=tb[-20000:], attempts=attempts,
            payload={"execution_id": str(execution.id), "step": name, "compensating": compensating,
                     "input_data": execution.input_data},
        )
        audit.record("dead_lettered", workflow_id=execution.workflow_id, execution_id=execution.id, step=name,
                     dead_letter_id=str(letter.id), error_class=INFRASTRUCTURE)
        error = {"step": name, "error_class": INFRASTRUCTURE, "message": str(exc)[:1000],
                 "dead_letter_id": str(letter.id)}
        if compensating:  # `retry` resumes a compensation_failed execution's compensation
            _finalize(execution, S.FAILED, {**error, "error_class": "compensation_failed", "cause": INFRASTRUCTURE})
            execution.save(update_fields=["status", "finished_at", "current_step", "error"])
        else:
            _fail_or_compensate(execution, error)


# --- circuit breakers ---------------------------------------------------------------------------
def _circuit_feedback(execution: Execution, *, success: bool) -> None:
    """Report the outcome to every breaker this execution passed (see workflows_app.steps)."""
    for key, params in (execution.context.get("_circuits") or {}).items():
        breaker = CircuitBreaker(key, **params)
        state = breaker.record_success() if success else breaker.record_failure()
        audit.record("circuit_" + ("success" if success else "failure"), workflow_id=execution.workflow_id,
                     execution_id=execution.id, circuit=key, state=state)


# --- operator actions ---------------------------------------------------------------------------
def cancel(execution_id, *, reason: str = "cancelled by user") -> Execution:
    with transaction.atomic():
        execution = Execution.objects.select_for_update().get(pk=execution_id)
        if execution.is_final:
            raise OperationError("CONFLICT", f"execution is already {execution.status}", {"field": "execution_id"})
        _finalize(execution, S.CANCELLED, {"message": reason})
        execution.save(update_fields=["status", "finished_at", "current_step", "error"])
        for child in execution.children.exclude(status__in=Execution.FINAL):
            cancel(child.id, reason="parent cancelled")
    return execution


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


def reconcile(now=None, margin: int | None = None, waiting: dict | None = None) -> list[str]:
    """Re-dispatch unfinished executions with no progress for their step timeout plus a margin.
    `waiting` (services.broker): {(execution, generation): None while its message waits in a queue
    (late behind a backlog, not lost: left alone), else when a worker took it (the timeout counts
    from then)}."""
    waiting = waiting or {}
    now = now or timezone.now()
    margin = settings.NEXUS_RECONCILE_MARGIN_SECONDS if margin is None else margin
    floor = now - timezone.timedelta(seconds=margin)
    candidates = list(Execution.objects.filter(
        status__in=[S.QUEUED, S.RUNNING, S.COMPENSATING], heartbeat_at__lt=floor
    ).values_list("pk", "heartbeat_at", "dispatch_count")[:500 + len(waiting)])
    resumed = []
    for pk, seen_heartbeat, seen_generation in candidates:
        key = (str(pk), seen_generation)
        if key in waiting and waiting[key] is None:
            continue
        with transaction.atomic():
            execution = Execution.objects.select_for_update().select_related("version").filter(pk=pk).first()
            if execution is None or execution.is_final:
                continue
            if (execution.heartbeat_at, execution.dispatch_count) != (seen_heartbeat, seen_generation):
                continue  # progress or another reconciler since we looked: not lost
            steps = execution.version.definition["steps"]
            groups = execution_groups(steps)
            current = groups[min(execution.cursor, len(groups) - 1)]
            timeout = max(step_timeout(steps[i]) for i in current)
            if execution.heartbeat_at and execution.heartbeat_at > now - timezone.timedelta(seconds=timeout + margin):
                continue  # someone made progress meanwhile (or another reconciler got here first)
            if (waiting.get(key) or 0) > (now - timezone.timedelta(seconds=timeout + margin)).timestamp():
                continue  # a worker took it lately: it may be waiting there for a free process
            if StepRun.objects.filter(execution=execution, status=StepRun.Status.WAITING).exists():
                continue  # waiting for a child, which the reconciler looks after on its own
            dispatch(execution, reason="reconciled")
            resumed.append(str(pk))
    return resumed
