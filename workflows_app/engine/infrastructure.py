"""Infrastructure faults: a database or Redis error anywhere on a step's path (loading, start,
handler, completion, finalisation, join, compensation) is the platform failing, not the step.

The task resets its connections and retries under its own backoff (NEXUS_INFRA_*), apart from the
step's retries; once those are spent it records an `infrastructure` dead letter and fails (or, when
compensating, fails as compensation_failed) the execution.
"""
from __future__ import annotations

import logging
import traceback

from django.db import connections, transaction
from django.utils import timezone

from workflows_app.engine.failures import (
    Failure,
    postpone_heartbeat,
    save_attempt,
    stored_error,
    stored_traceback,
)
from workflows_app.engine.lifecycle import give_up
from workflows_app.engine.outcomes import RetryStep, StepFailed
from workflows_app.engine.policy import backoff_delay, infrastructure_policy
from workflows_app.models import Execution, StepRun

log = logging.getLogger(__name__)
S = Execution.Status
INFRASTRUCTURE = "infrastructure"


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
    """Reset the connections and return the retry to schedule.

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
            _note_retry(execution_id, generation, step, exc, tb, delay, infra_retries + 1)
        except Exception:  # noqa: BLE001 - still down: scheduling the retry matters, not its record
            log.warning("could not record the retry of execution %s", execution_id, exc_info=True)
            reset_connections()
        return RetryStep(delay, exc)
    log.error("giving up on execution %s (step %s) after %d infrastructure retries: %r",
              execution_id, step, infra_retries, exc)
    try:
        _give_up(execution_id, generation, step, exc, tb, infra_retries + 1)
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


def _record_deferred(exc: BaseException, status: str, tb: str, now) -> bool:
    """The runner attaches an attempt it had not written yet (runner.start_grace) to the fault."""
    run = exc.__dict__.pop("nexus_attempt", None)
    if run is None:
        return False
    run.status, run.finished_at, run.result = status, now, None
    run.error, run.error_class, run.traceback = stored_error(exc), INFRASTRUCTURE, stored_traceback(tb)
    save_attempt(run, [])
    return True


def _note_retry(execution_id, generation, step, exc, tb: str, delay: float, attempt: int) -> None:
    execution = Execution.objects.select_related("version").filter(pk=execution_id).first()
    if execution is None or execution.dispatch_count != generation or execution.is_final:
        return
    name = _fault_step_name(execution, step)
    now = timezone.now()
    with transaction.atomic():
        # the attempt that was cut short (a quick step's, not written before the fault: written now, whole)
        if not _record_deferred(exc, StepRun.Status.RETRYING, tb, now) and name:
            StepRun.objects.filter(execution=execution, step_name=name, status=StepRun.Status.RUNNING,
                                   is_compensation=execution.status == S.COMPENSATING).update(
                status=StepRun.Status.RETRYING, finished_at=now, error=stored_error(exc),
                error_class=INFRASTRUCTURE, traceback=stored_traceback(tb))
        postpone_heartbeat(execution, name, INFRASTRUCTURE, exc, attempt, delay, now)


def _give_up(execution_id, generation, step, exc, tb: str, attempts: int) -> None:
    with transaction.atomic():
        execution = (Execution.objects.select_for_update().select_related("version", "workflow")
                     .filter(pk=execution_id).first())
        if execution is None or execution.is_final or execution.dispatch_count != generation:
            return  # finished or superseded meanwhile: nothing of this message's to fail
        name = _fault_step_name(execution, step)
        compensating = execution.status == S.COMPENSATING
        if not _record_deferred(exc, StepRun.Status.FAILED, tb, timezone.now()) and name:
            StepRun.objects.filter(execution=execution, step_name=name, is_compensation=compensating,
                                   status__in=[StepRun.Status.RUNNING, StepRun.Status.RETRYING]).update(
                status=StepRun.Status.FAILED, finished_at=timezone.now(), error=stored_error(exc),
                error_class=INFRASTRUCTURE, traceback=stored_traceback(tb))
        payload = {"execution_id": str(execution.id), "step": name, "compensating": compensating,
                   "input_data": execution.input_data}
        # `retry` resumes a compensation_failed execution's compensation.
        give_up(execution, Failure(name, INFRASTRUCTURE, exc, tb, attempts, payload), compensating=compensating)
