"""The saga: when a step fails for good, the completed steps with a `compensate` step type are
undone, most recent first, each once, by one chain of compensation messages ending in
`finish_compensation` (compensating.py runs them; a failed compensation fails the execution, and `retry`
resumes the compensations still due)."""
from __future__ import annotations

from celery import chain

from workflows_app.engine.messages import FINISH_COMPENSATION, RUN_COMPENSATION, message
from workflows_app.engine.policy import celery_priority
from workflows_app.models import Execution, StepRun


def compensations_pending(execution: Execution) -> list[str]:
    """Completed steps with `compensate`, most recent first, not yet compensated."""
    steps = {s["name"]: s for s in execution.version.definition["steps"]}
    done = list(StepRun.objects.filter(execution=execution, is_compensation=False, status=StepRun.Status.SUCCEEDED)
                .order_by("-finished_at", "-id").values_list("step_name", flat=True))
    compensated = set(StepRun.objects.filter(execution=execution, is_compensation=True,
                                             status=StepRun.Status.SUCCEEDED).values_list("step_name", flat=True))
    return [n for n in done if steps.get(n, {}).get("compensate") and n not in compensated]


def send_compensation(execution_id, generation: int) -> None:
    """Send the compensations still due, in saga order, then `finish_compensation`."""
    execution = Execution.objects.select_related("workflow").get(pk=execution_id)
    pending = compensations_pending(execution)
    options = {"queue": execution.workflow.queue, "priority": celery_priority(execution.priority)}
    parts = [message(RUN_COMPENSATION, str(execution_id), generation, name, **options) for name in pending]
    parts.append(message(FINISH_COMPENSATION, str(execution_id), generation, **options))
    chain(*parts).apply_async()
