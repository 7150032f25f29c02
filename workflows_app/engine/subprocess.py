"""Child workflows: a `subprocess` step starts a child execution and waits (StepRun `waiting`); the
child's end resumes the parent (lifecycle.finalize). Checked again when the step runs (the
definition was checked when saved): names resolve within the owner's workflows, and ownership,
nesting depth (NEXUS_MAX_SUBPROCESS_DEPTH) and cycles may have changed since.
"""
from __future__ import annotations

from django.conf import settings
from django.db import transaction

from workflows_app.definitions import may_execute, resolve_workflow_ref
from workflows_app.engine.lifecycle import fail_step, start_execution
from workflows_app.engine.outcomes import StepFailed
from workflows_app.errors import PermanentStepError
from workflows_app.models import Execution, StepRun, Workflow


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


def start_child(execution: Execution, step: dict, run: StepRun) -> None:
    child_workflow = resolve_workflow_ref(step["workflow_id"], execution.workflow.owner)
    refused = _child_refusal(execution, step, child_workflow)
    if refused is not None:  # outside the block below: raising there would roll the failure back
        fail_step(execution, step, run, refused.error_class, refused, "")
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
