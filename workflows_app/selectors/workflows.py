"""Reads of workflows, their triggers, executions and audit trail, as the faces reply them."""
from __future__ import annotations

from datetime import datetime

from django.db.models import Count

from workflows_app.models import AuditEvent, Execution, StepRun, Trigger, Workflow
from workflows_app.selectors import schedules
from workflows_app.selectors.common import iso, sees_everything


# --- workflows ----------------------------------------------------------------------------------
def next_run_at(trigger: Trigger, workflow: Workflow, now: datetime | None = None) -> str | None:
    """The next real firing (holidays, early closes and DST applied), in the trigger's timezone."""
    return next(iter(schedules.upcoming(trigger, workflow, now, count=1)), None)


def trigger_summary(trigger: Trigger, workflow: Workflow) -> dict:
    summary = {
        "trigger_id": trigger.pk,
        "type": trigger.type,
        **trigger.params,
        "enabled": trigger.enabled and workflow.status == Workflow.Status.ACTIVE,
        "last_fired_at": iso(trigger.last_fired_at),
        "next_run_at": None,
        "periodic_task": trigger.periodic_task.name if trigger.periodic_task_id else None,
    }
    if trigger.type in schedules.SCHEDULE_TYPES:
        summary["upcoming"] = schedules.upcoming(trigger, workflow)
        summary["next_run_at"] = next(iter(summary["upcoming"]), None)
        summary["today"] = schedules.today(trigger, workflow)
    return summary


def workflow_summary(workflow: Workflow) -> dict:
    return {
        "workflow_id": str(workflow.id),
        "name": workflow.name,
        "description": workflow.description,
        "status": workflow.status,
        "priority": workflow.priority,
        "version": workflow.version,
        "queue": workflow.queue,
        "created_at": iso(workflow.created_at),
        "updated_at": iso(workflow.updated_at),
    }


def workflow_detail(workflow: Workflow) -> dict:
    definition = workflow.current_version.definition if workflow.current_version_id else {}
    counts = dict(workflow.executions.values_list("status").annotate(n=Count("id")).values_list("status", "n"))
    return {
        **workflow_summary(workflow),
        "metadata": workflow.metadata,
        "steps": definition.get("steps", []),
        "triggers": [trigger_summary(t, workflow) for t in workflow.triggers.select_related("periodic_task")],
        "executions": {"total": sum(counts.values()), "by_status": counts},
    }


# --- executions ---------------------------------------------------------------------------------
def step_run_summary(run: StepRun) -> dict:
    return {
        "step": run.step_name, "type": run.step_type, "attempt": run.attempt, "status": run.status,
        "queue": run.queue or None,
        "compensation": run.is_compensation, "started_at": iso(run.started_at), "finished_at": iso(run.finished_at),
        "duration": round(run.duration, 6) if run.duration is not None else None,
        "result": run.result, "error": run.error or None, "error_class": run.error_class or None,
    }


def _open_approval(execution: Execution) -> dict | None:
    """The approval this execution waits at (or last waited at): what, until when, who decided."""
    request = execution.approvals.order_by("-requested_at").first()
    if request is None:
        return None
    return {"approval_id": str(request.id), "step": request.step_name, "status": request.status,
            "summary": request.summary, "subject": request.subject, "expires_at": iso(request.expires_at),
            "decided_by": request.decided_by_label or None, "decided_at": iso(request.decided_at),
            "comment": request.comment or None}


def execution_detail(execution: Execution, *, include_steps: bool = True) -> dict:
    steps = execution.version.definition["steps"]
    runs = list(execution.step_runs.order_by("started_at", "id"))
    finished = {r.step_name for r in runs if not r.is_compensation and r.status in ("succeeded", "skipped")}
    names = [s["name"] for s in steps]
    completed = [n for n in names if n in finished]
    pending = [n for n in names if n not in finished]
    reply = {
        "execution_id": str(execution.id),
        "workflow_id": str(execution.workflow_id),
        "workflow_name": execution.workflow.name,
        "version": execution.version.number,
        "status": execution.status,
        "trigger": execution.trigger,
        "test_mode": execution.test_mode,
        "progress": round(len(completed) / len(names), 4) if names else 1.0,
        "current_step": execution.current_step or None,
        "completed_steps": completed,
        "pending_steps": pending,
        "queued_at": iso(execution.queued_at),
        "started_at": iso(execution.started_at),
        "finished_at": iso(execution.finished_at),
        "duration": execution.duration,
        "error": execution.error,
        "wake_at": iso(execution.wake_at),  # while waiting: when the timer resumes it
        "approval": _open_approval(execution),
        "parent_execution_id": str(execution.parent_id) if execution.parent_id else None,
        "child_execution_ids": [str(c) for c in execution.children.values_list("id", flat=True)],
    }
    if include_steps:
        reply["step_runs"] = [step_run_summary(r) for r in runs]
        reply["steps"] = {
            r.step_name: {"status": r.status, "result": r.result, "duration": r.duration}
            for r in runs if not r.is_compensation
        }
    return reply


# --- audit --------------------------------------------------------------------------------------
def audit_event(event: AuditEvent) -> dict:
    item = {"timestamp": iso(event.timestamp), "event": event.event}
    if event.step:
        item["step"] = event.step
    item.update({k: v for k, v in event.data.items() if k not in ("timestamp", "event")})
    if event.execution_id:
        item.setdefault("execution_id", str(event.execution_id))
    return item


def audit_events(*, workflow_id=None, execution_id=None, limit: int = 50, start_time: datetime | None = None,
                 offset: int = 0) -> dict:
    qs = AuditEvent.objects.all()
    if execution_id:
        qs = qs.filter(execution_id=execution_id)
    elif workflow_id:
        qs = qs.filter(workflow_id=workflow_id)
    if start_time:
        qs = qs.filter(timestamp__gte=start_time)
    total = qs.count()
    events = [audit_event(e) for e in qs.order_by("timestamp", "id")[offset:offset + limit]]
    return {"events": events, "count": len(events), "total": total}


def visible_workflows(user):
    qs = Workflow.objects.select_related("current_version").order_by("-created_at")
    return qs if sees_everything(user) else qs.filter(owner_id=user.id)
