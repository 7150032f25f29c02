"""Re-running a finished execution from a chosen step, with the same or an edited input: a new
execution of the same version whose earlier steps carry the original's outputs (in its context, as
if they had just run; no StepRun of their own, so nothing claims a run that did not happen) and
which runs from the chosen step's group on. Test mode is never looser than the original's, the
owner (and so the account) stays the original's."""
from __future__ import annotations

from django.db import transaction
from django.utils import timezone

from workflows_app import audit
from workflows_app.definitions import execution_groups
from workflows_app.engine.canvas import send_canvas
from workflows_app.engine.outputs import mergeable
from workflows_app.errors import OperationError
from workflows_app.models import Execution, StepRun, Workflow


def _invalid(message: str, field: str) -> OperationError:
    return OperationError("INVALID_INPUT_DATA", message, {"field": field})


def _carried_outputs(original: Execution, carried: list[dict]) -> dict[str, tuple[dict, bool]]:
    """Each carried step's last forward result (and whether it was skipped); refuse a step that did not finish."""
    found: dict[str, tuple[dict, bool]] = {}
    for name, status, result in (StepRun.objects.filter(execution=original, is_compensation=False,
                                                        status__in=(StepRun.Status.SUCCEEDED, StepRun.Status.SKIPPED))
                                 .order_by("id").values_list("step_name", "status", "result")):
        found[name] = (result or {}, status == StepRun.Status.SKIPPED)
    for step in carried:
        if step["name"] not in found:
            raise _invalid(f"from_step: step '{step['name']}' before it did not finish in execution {original.id}; "
                           f"re-run from '{step['name']}' or earlier", "from_step")
    return found


def _context(original: Execution, input_data: dict, test_mode: bool, carried: list[dict], outputs: dict) -> dict:
    context = {k: v for k, v in input_data.items() if not str(k).startswith("_")}
    if test_mode or "test_mode" in context:
        context["test_mode"] = test_mode
    if original.trigger_event is not None:
        context["event"] = original.trigger_event
    if original.context.get("_circuits"):
        context["_circuits"] = original.context["_circuits"]  # breakers the carried steps passed
    for step in carried:
        output, skipped = outputs[step["name"]]
        context[step["name"]] = output
        if not skipped:
            context.update(mergeable(step, output))
    return context


def rerun(execution_id, *, from_step: str | None = None, input_data: dict | None = None) -> Execution:
    original = Execution.objects.select_related("version", "workflow").get(pk=execution_id)
    if not original.is_final:
        raise OperationError("CONFLICT", f"execution is {original.status}; re-run a finished one (or cancel it first)",
                             {"field": "execution_id"})
    if original.workflow.status != Workflow.Status.ACTIVE:
        raise OperationError("CONFLICT", f"workflow '{original.workflow.name}' is {original.workflow.status}",
                             {"field": "execution_id"})
    steps = original.version.definition["steps"]
    names = [s["name"] for s in steps]
    from_step = from_step or names[0]
    if from_step not in names:
        raise _invalid(f"from_step must be one of {names}", "from_step")
    groups = execution_groups(steps)
    start = next(i for i, g in enumerate(groups) if names.index(from_step) in g)
    carried = [steps[i] for g in groups[:start] for i in g]
    outputs = _carried_outputs(original, carried)
    data = dict(original.input_data if input_data is None else input_data)
    test_mode = original.test_mode or bool(data.get("test_mode", False))
    context = _context(original, data, test_mode, carried, outputs)
    with transaction.atomic():
        execution = Execution.objects.create(
            workflow=original.workflow, version=original.version, trigger="rerun", trigger_event=original.trigger_event,
            input_data=data, context=context, test_mode=test_mode, priority=original.priority,
            owner=original.owner, cursor=start, dispatch_count=1, heartbeat_at=timezone.now(),
            rerun_of=original, rerun_from_step=from_step,
        )
        audit.record("execution_queued", workflow_id=original.workflow_id, execution_id=execution.id, trigger="rerun",
                     version=original.version.number, rerun_of=str(original.id), from_step=from_step,
                     carried_steps=[s["name"] for s in carried])
        transaction.on_commit(lambda: send_canvas(execution, 1, start))
    return execution
