"""Compiling a version's steps into a Celery canvas: sequential groups chain, a parallel group is a
chord into `join_group`, and the canvas stops after a `subprocess`, `wait` or `approval` step (the
child's end, the timer or a decision resumes it). Messages carry the dispatch's generation; StepRun
is the record of what ran.
"""
from __future__ import annotations

from celery import chain, group

from workflows_app.definitions import execution_groups, step_type_name
from workflows_app.engine.messages import JOIN_GROUP, RUN_STEP, message
from workflows_app.engine.policy import HARD_LIMIT_SLACK, celery_priority, step_queue, step_timeout
from workflows_app.models import Agent, Execution, Workflow

# Step types after which the canvas stops: the execution waits (a child's end, a timer or a
# decision resumes it under a new dispatch).
WAITING_TYPES = frozenset({"subprocess", "wait", "approval"})


def send_canvas(execution, generation: int, start_group: int, workflow: Workflow | None = None) -> None:
    """Compile the version's steps from `start_group` into a canvas and send it.

    Single steps don't store a Celery result (StepRun is the record); members of a parallel
    group do, because the chord's join counts them through the result backend."""
    if not isinstance(execution, Execution):
        execution = Execution.objects.select_related("version", "workflow").get(pk=execution)
    execution_id = str(execution.id)
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
            signatures.append(message(
                RUN_STEP, execution_id, generation, group_index, step_index,
                queue=step_queue(workflow.queue, step, agents), priority=priority,
                soft_time_limit=timeout, time_limit=timeout + HARD_LIMIT_SLACK,
            ))
        if len(signatures) == 1:
            parts.append(signatures[0].set(ignore_result=True))
            if step_type_name(steps[members[0]]) in WAITING_TYPES:
                break  # the child's completion, the timer or a decision resumes this execution
        else:
            parts.append(group(signatures))
            parts.append(message(JOIN_GROUP, execution_id, generation, group_index,
                                 queue=workflow.queue, priority=priority, ignore_result=True))
    if not parts:
        return
    (chain(*parts) if len(parts) > 1 else parts[0]).apply_async()
