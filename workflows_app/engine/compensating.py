"""Running a saga's compensations: each compensation step's message, and the end of them all
(engine.saga sends them in reverse order; a failed compensation fails the execution, and `retry`
resumes the compensations)."""
from __future__ import annotations

import traceback

from django.db import transaction
from django.utils import timezone

from workflows_app import audit
from workflows_app.engine.failures import Failure, mark_failed, mark_retrying
from workflows_app.engine.lifecycle import FINAL_FIELDS, dispatch, finalize, give_up
from workflows_app.engine.outcomes import RetryStep, StaleMessage, StepFailed
from workflows_app.engine.policy import backoff_delay, retry_policy
from workflows_app.engine.runner import step_context
from workflows_app.engine.saga import compensations_pending
from workflows_app.errors import is_infrastructure
from workflows_app.models import Execution, StepRun
from workflows_app.registry import registry

S = Execution.Status


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
    output = _call_compensation(execution, step, run, comp_type, original, retries)
    with transaction.atomic():
        run.status, run.finished_at, run.result = StepRun.Status.SUCCEEDED, timezone.now(), output
        run.save(update_fields=["status", "finished_at", "result"])
        audit.record("compensation_completed", workflow_id=execution.workflow_id, execution_id=execution.id,
                     step=step_name, compensation=comp_type, result=output)
    return output


def _call_compensation(execution: Execution, step: dict, run: StepRun, comp_type: str, original: StepRun | None,
                       retries: int) -> dict:
    """The compensation's handler, given what the step returned; a failure retries, or fails the execution."""
    try:
        ctx = step_context(execution, step, run.attempt, params={}, compensating=original.result if original else {},
                            type_name=comp_type)
        output = registry.get_step_type(comp_type).handler(ctx)
    except Exception as exc:  # noqa: BLE001
        if is_infrastructure(exc):
            raise  # the platform failed, not the compensation: see infrastructure_fault
        info = registry.classify_error(exc)
        tb = traceback.format_exc()
        policy = retry_policy({"name": comp_type})
        if info.transient and retries < policy.max_retries:
            delay = backoff_delay(policy, retries)
            mark_retrying(execution, step["name"], run, info.error_class, exc, tb, delay)
            raise RetryStep(delay, exc) from exc
        with transaction.atomic():
            locked = Execution.objects.select_for_update().get(pk=execution.pk)
            mark_failed(run, info.error_class, exc, tb)
            payload = {"execution_id": str(execution.id), "step": step["name"], "compensation": comp_type}
            give_up(locked, Failure(step["name"], info.error_class, exc, tb, run.attempt, payload, comp_type),
                    compensating=True)
        raise StepFailed(str(exc)) from exc
    return output if isinstance(output, dict) else {"result": output}


def finish_compensation(execution_id, generation: int) -> None:
    with transaction.atomic():
        execution = Execution.objects.select_for_update().get(pk=execution_id)
        if execution.dispatch_count != generation or execution.status != S.COMPENSATING:
            return
        if compensations_pending(execution):
            dispatch(execution, reason="compensation_incomplete")
            return
        finalize(execution, S.COMPENSATED, execution.error)
        execution.save(update_fields=FINAL_FIELDS)
