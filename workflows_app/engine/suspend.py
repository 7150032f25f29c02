"""Suspended executions: a `wait` or `approval` step stops its execution in `waiting` instead of
holding a worker slot. The wake-up time is in the database (`Execution.wake_at`), so a wait
survives worker, beat and Redis restarts; the timer (engine.timers, a beat job) resumes what is due,
a decision (services.approvals) resumes an approval earlier.

Exactly once: every resume is one transaction that moves the row out of `waiting` with a
conditional UPDATE (status, generation and, for the timer, a due `wake_at`); whoever loses that
race (a second timer, a late nudge, a decision against the expiry) changes nothing. The resumed
execution is sent on under a new generation (lifecycle.dispatch), as the reconciler would.
"""
from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime

from django.db import transaction
from django.utils import timezone

from workflows_app import audit, conf
from workflows_app.definitions import execution_groups
from workflows_app.engine.lifecycle import FINAL_FIELDS, advance, dispatch, fail_or_compensate
from workflows_app.engine.messages import message
from workflows_app.engine.outcomes import StaleMessage
from workflows_app.engine.outputs import mergeable
from workflows_app.models import ApprovalRequest, Execution, StepRun

log = logging.getLogger(__name__)
S = Execution.Status
WAKE = "nexus.maintenance.wake"
APPROVED, REJECTED = "approved", "rejected"


@dataclass(frozen=True)
class Suspension:
    """What a suspending step type's handler returns instead of its output."""

    wake_at: datetime  # when the timer resumes it: a wait's end, an approval's expiry
    output: dict  # the step's output when the timer resumes it (a wait: {"waited": seconds})
    # An approval: {"summary": str, "subject": dict}; an ApprovalRequest is opened with the suspension.
    approval: dict | None = None
    # Called inside the suspending transaction with (execution, request): the approval's announcement.
    on_open: Callable[[Execution, ApprovalRequest], None] | None = None


def iso(value: datetime | None) -> str | None:
    return value.isoformat() if value else None


# --- stopping -----------------------------------------------------------------------------------
def suspend(loaded: Execution, step: dict, run: StepRun, suspension: Suspension) -> dict:
    """Commit "waiting" for this step: the execution's status and wake-up time, the step run, the
    approval request; the task then returns and the worker is free."""
    now, name = timezone.now(), step["name"]
    with transaction.atomic():
        status, generation = (Execution.objects.select_for_update().values_list("status", "dispatch_count")
                              .get(pk=loaded.pk))
        if status not in (S.QUEUED, S.RUNNING) or generation != loaded.dispatch_count:
            if status in Execution.FINAL:  # cancelled while the step started: close its run
                StepRun.objects.filter(pk=run.pk).update(status=StepRun.Status.FAILED, finished_at=now,
                                                         error=f"execution {status}", error_class="cancelled")
            raise StaleMessage(f"execution {loaded.pk} is {status}, generation {generation}")
        Execution.objects.filter(pk=loaded.pk).update(status=S.WAITING, wake_at=suspension.wake_at,
                                                      heartbeat_at=now, current_step=name)
        # What the timer resumes it with is kept with the run (the timer may be another process, later).
        run.status = StepRun.Status.WAITING
        run.result = {"wake_at": iso(suspension.wake_at), "on_wake": suspension.output}
        request = None
        if suspension.approval is not None:
            request = ApprovalRequest.objects.create(
                execution_id=loaded.pk, step_run=run, step_name=name, requested_at=now,
                expires_at=suspension.wake_at, summary=suspension.approval.get("summary", "")[:2000],
                subject=audit.summarise(suspension.approval.get("subject") or {}))
            run.result["approval_id"] = str(request.id)
        run.save(update_fields=["status", "result"])
        audit.record("execution_waiting", workflow_id=loaded.workflow_id, execution_id=loaded.pk, step=name,
                     wake_at=iso(suspension.wake_at), kind="approval" if request else "wait",
                     approval_id=str(request.id) if request else None)
        if request is not None and suspension.on_open is not None:
            suspension.on_open(loaded, request)
        _nudge_later(loaded.pk, suspension.wake_at, now)
    return {"waiting": True, **run.result}


def _nudge_later(execution_id, wake_at: datetime, now: datetime) -> None:
    """A short wait also gets a delayed wake message, so it ends on time rather than at the timer's
    next tick; the message is only a hint (lost with Redis, the timer still resumes it)."""
    delay = (wake_at - now).total_seconds()
    if delay > float(conf.get("NEXUS_WAIT_NUDGE_SECONDS")):
        return
    exec_id, when = str(execution_id), iso(wake_at)

    def send() -> None:
        try:
            message(WAKE, exec_id, when, countdown=max(delay, 0)).apply_async()
        except Exception:  # noqa: BLE001 - Redis down: the timer resumes it from the database
            log.warning("could not send the wake message of %s; the timer will resume it", exec_id, exc_info=True)

    transaction.on_commit(send)


# --- resuming -----------------------------------------------------------------------------------
def resume(execution_id, decision: str, output: dict, *, reason: str, due_by: datetime | None = None) -> bool:
    """Move a waiting execution on, exactly once: continue after the step (`approved`, or a wait's
    end), or take the rejection (the step's `on_reject` branch, else fail). `due_by`: only if its
    wake-up time has come by then (the timer). False if someone else resumed or ended it first."""
    with transaction.atomic():
        execution = (Execution.objects.select_for_update().select_related("version", "workflow")
                     .filter(pk=execution_id).first())
        if execution is None or execution.status != S.WAITING:
            return False
        won = Execution.objects.filter(pk=execution.pk, status=S.WAITING, dispatch_count=execution.dispatch_count)
        if due_by is not None:
            won = won.filter(wake_at__lte=due_by)
        if not won.update(status=S.RUNNING, wake_at=None, heartbeat_at=timezone.now()):
            return False  # not due, or another timer / decision got here first
        execution.status, execution.wake_at = S.RUNNING, None
        run = (StepRun.objects.filter(execution=execution, status=StepRun.Status.WAITING, is_compensation=False)
               .order_by("-id").first())
        if run is None:  # nothing recorded as waiting (should not happen): run on from the cursor
            dispatch(execution, reason=reason)
            return True
        step = next(s for s in execution.version.definition["steps"] if s["name"] == run.step_name)
        output = {**output, **({"approval_id": run.result["approval_id"]} if "approval_id" in (run.result or {})
                               else {})}
        if decision == REJECTED:
            _reject(execution, step, run, output, reason)
        else:
            _continue(execution, step, run, output, reason)
    return True


def _record_step(execution: Execution, step: dict, run: StepRun, output: dict) -> None:
    name = step["name"]
    execution.context[name] = output
    execution.context.update(mergeable(step, output))
    run.status, run.finished_at, run.result = StepRun.Status.SUCCEEDED, timezone.now(), output
    run.save(update_fields=["status", "finished_at", "result"])
    audit.record("step_completed", workflow_id=execution.workflow_id, execution_id=execution.id, step=name,
                 result=output, duration=round(run.duration or 0, 6), attempt=run.attempt)


def _group_of(groups: list[list[int]], step_index: int) -> int:
    return next(i for i, members in enumerate(groups) if step_index in members)


def _continue(execution: Execution, step: dict, run: StepRun, output: dict, reason: str) -> None:
    steps = execution.version.definition["steps"]
    groups = execution_groups(steps)
    _record_step(execution, step, run, output)
    advance(execution, _group_of(groups, run.step_index), groups)
    if execution.is_final:
        execution.save(update_fields=["context", "cursor", "wake_at", *FINAL_FIELDS])
    else:
        execution.save(update_fields=["context", "cursor", "wake_at", "status"])
        dispatch(execution, reason=reason)


def _reject(execution: Execution, step: dict, run: StepRun, output: dict, reason: str) -> None:
    """The `on_reject` step (a later one, checked when the definition was saved) runs next; the
    steps between are passed over. Without `on_reject` the execution fails (or compensates)."""
    steps = execution.version.definition["steps"]
    target = step.get("on_reject")
    if target:
        groups = execution_groups(steps)
        index = next(i for i, s in enumerate(steps) if s["name"] == target)
        _record_step(execution, step, run, output)
        execution.cursor = _group_of(groups, index)
        passed = [steps[i]["name"] for g in groups[_group_of(groups, run.step_index) + 1:execution.cursor] for i in g]
        audit.record("branch_taken", workflow_id=execution.workflow_id, execution_id=execution.id, step=step["name"],
                     on_reject=target, passed_over=passed)
        execution.save(update_fields=["context", "cursor", "wake_at", "status"])
        dispatch(execution, reason=reason)
        return
    message_text = f"approval '{step['name']}' {output.get('decision', REJECTED)}"
    if output.get("comment"):
        message_text += f": {output['comment']}"
    run.status, run.finished_at, run.result = StepRun.Status.FAILED, timezone.now(), output
    run.error, run.error_class = message_text[:5000], "approval_rejected"
    run.save(update_fields=["status", "finished_at", "result", "error", "error_class"])
    audit.record("step_failed", workflow_id=execution.workflow_id, execution_id=execution.id, step=step["name"],
                 error=message_text[:1000], error_class="approval_rejected", attempt=run.attempt)
    execution.save(update_fields=["context", "wake_at", "status"])
    fail_or_compensate(execution, {"step": step["name"], "error_class": "approval_rejected",
                                   "message": message_text[:1000]})
