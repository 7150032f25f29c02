"""Recording failed attempts: a retry to come (with its backoff), or the one dead-letter path.

Steps, compensations and infrastructure faults under either all end in `dead_letter`; what the
execution does next (compensate or fail) is lifecycle.give_up.
"""
from __future__ import annotations

from dataclasses import dataclass, field

from django.db import transaction
from django.utils import timezone

from workflows_app import audit
from workflows_app.models import DeadLetter, Execution, StepRun


def stored_error(exc: BaseException) -> str:
    return str(exc)[:5000]


def stored_traceback(tb: str) -> str:
    return tb[-20000:]


def summary(exc: BaseException) -> str:
    """The error as audit events and the execution's error show it."""
    return str(exc)[:1000]


@dataclass(frozen=True)
class Failure:
    """An attempt that will not be retried, as its dead letter records it."""

    step: str  # the step's name ("" when the fault came before any step)
    error_class: str
    exc: BaseException
    tb: str
    attempts: int
    payload: dict = field(default_factory=dict)  # what a redrive needs
    compensation: str = ""  # the compensation's step type, when a compensation failed


def save_attempt(run: StepRun, fields: list[str]) -> None:
    """Save an attempt's outcome. A quick step's attempt is written only with its outcome (see
    runner.run_step): then its row is inserted whole, after the audit events of its start."""
    if run.pk is not None:
        run.save(update_fields=fields)
        return
    audit.record_many(getattr(run, "pending_audit", []))
    run.pending_audit = []
    run.save(force_insert=True)


def postpone_heartbeat(execution: Execution, step_name: str, error_class: str, exc: BaseException,
                       attempt: int, delay: float, now) -> None:
    """A retry comes after `delay`: record it, and expect the next sign of life only then."""
    # Keeps the reconciler away until the backoff is over.
    Execution.objects.filter(pk=execution.pk).update(heartbeat_at=now + timezone.timedelta(seconds=delay))
    audit.record("step_retrying", workflow_id=execution.workflow_id, execution_id=execution.id, step=step_name,
                 error=summary(exc), error_class=error_class, attempt=attempt, next_delay=delay)


def mark_retrying(execution: Execution, step_name: str, run: StepRun, error_class: str, exc: BaseException,
                  tb: str, delay: float) -> None:
    now = timezone.now()
    run.status, run.finished_at = StepRun.Status.RETRYING, now
    run.error, run.error_class, run.traceback = stored_error(exc), error_class, stored_traceback(tb)
    with transaction.atomic(), audit.batched():
        save_attempt(run, ["status", "finished_at", "error", "error_class", "traceback"])
        postpone_heartbeat(execution, step_name, error_class, exc, run.attempt, delay, now)


def mark_failed(run: StepRun, error_class: str, exc: BaseException, tb: str) -> None:
    run.status, run.finished_at = StepRun.Status.FAILED, timezone.now()
    run.error, run.error_class, run.traceback = stored_error(exc), error_class, stored_traceback(tb)
    save_attempt(run, ["status", "finished_at", "error", "error_class", "traceback"])


def dead_letter(execution: Execution, failure: Failure) -> dict:
    """The one dead-letter path: the letter and its audit events; returns the execution's error,
    which points at the letter. Call inside the transaction that fails the attempt."""
    ids = {"workflow_id": execution.workflow_id, "execution_id": execution.id, "step": failure.step}
    if not failure.compensation:
        audit.record("step_failed", **ids, error=summary(failure.exc), error_class=failure.error_class,
                     attempt=failure.attempts)
    letter = DeadLetter.objects.create(
        source="step", workflow_id=execution.workflow_id, execution=execution, step_name=failure.step,
        error_class=failure.error_class, error=stored_error(failure.exc), traceback=stored_traceback(failure.tb),
        attempts=failure.attempts, payload=failure.payload,
    )
    if failure.compensation:
        audit.record("compensation_failed", **ids, compensation=failure.compensation, error=summary(failure.exc),
                     dead_letter_id=str(letter.id))
    else:
        audit.record("dead_lettered", **ids, dead_letter_id=str(letter.id), error_class=failure.error_class)
    return {"step": failure.step, "error_class": failure.error_class, "message": summary(failure.exc),
            "dead_letter_id": str(letter.id)}
