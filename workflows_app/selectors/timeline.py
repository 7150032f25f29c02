"""One execution as the operator's view shows it: every step attempt on a timeline, each step's own
input, output and error once (not the context, where step results also appear merged at the top
level), the workflow's graph with the path taken, and the child executions.

Bounded whatever the execution did: at most MAX_ATTEMPTS attempts and MAX_CHILDREN children, and
every output or error over PREVIEW_BYTES is cut to a preview with its full size."""
from __future__ import annotations

import json

from django.core.serializers.json import DjangoJSONEncoder

from workflows_app.definitions import execution_groups, step_type_name
from workflows_app.models import Execution, StepRun
from workflows_app.selectors.common import iso

MAX_ATTEMPTS = 500
MAX_CHILDREN = 50
PREVIEW_BYTES = 4096
ERROR_CHARS = 2000


def preview(value) -> dict:
    """``{"value": v, "bytes": n}`` when it fits; else ``{"preview": first bytes as text, "bytes": n,
    "truncated": True}`` (the page shows the size and the start, never the whole of a large output)."""
    if value is None:
        return {"value": None, "bytes": 0}
    text = json.dumps(value, cls=DjangoJSONEncoder, default=str, indent=1, sort_keys=True)
    size = len(text.encode())
    if size <= PREVIEW_BYTES:
        return {"value": value, "bytes": size}
    cut = text.encode()[:PREVIEW_BYTES].decode(errors="ignore")
    return {"preview": cut, "bytes": size, "truncated": True}


def _attempt(run: StepRun, children: dict) -> dict:
    child = (run.result or {}).get("child_execution_id") if isinstance(run.result, dict) else None
    child = child or children.get(run.step_name)
    return {
        "id": run.pk, "step": run.step_name, "type": run.step_type, "attempt": run.attempt, "status": run.status,
        "compensation": run.is_compensation, "queue": run.queue or None,
        "started_at": iso(run.started_at), "finished_at": iso(run.finished_at),
        "duration": round(run.duration, 6) if run.duration is not None else None,
        "output": preview(run.result), "error": (run.error or "")[:ERROR_CHARS] or None,
        "error_class": run.error_class or None, "child_execution_id": child,
    }


def _step_state(runs: list[dict]) -> str:
    """The step's state from its attempts (the last forward attempt decides)."""
    forward = [r for r in runs if not r["compensation"]]
    if not forward:
        return "pending"
    if any(r["status"] == "succeeded" for r in forward):
        state = "succeeded"
    else:
        state = forward[-1]["status"]
    if any(r["compensation"] and r["status"] == "succeeded" for r in runs):
        return "compensated"
    return state


def _carried(execution: Execution, steps: list[dict]) -> set[str]:
    """A re-run's steps before its from_step: their outputs came from the execution it re-ran."""
    if not execution.rerun_of_id or not execution.rerun_from_step:
        return set()
    names = [s["name"] for s in steps]
    groups = execution_groups(steps)
    start = next((i for i, g in enumerate(groups) if execution.rerun_from_step in [names[j] for j in g]), 0)
    return {names[j] for g in groups[:start] for j in g}


def _graph(execution: Execution, attempts: list[dict]) -> list[dict]:
    """The definition's running order (groups of steps), each step with its state and whether the
    execution went through it (the path taken: it ran and did not skip)."""
    steps = execution.version.definition.get("steps", [])
    carried = _carried(execution, steps)
    by_step: dict[str, list[dict]] = {}
    for a in attempts:
        by_step.setdefault(a["step"], []).append(a)
    groups = []
    for number, members in enumerate(execution_groups(steps)):
        nodes = []
        for index in members:
            step = steps[index]
            runs = by_step.get(step["name"], [])
            state = _step_state(runs)
            last = next((r for r in reversed(runs) if not r["compensation"]), None)
            if state == "pending" and step["name"] in carried:
                state = "carried"
                last = {"output": preview(execution.context.get(step["name"])), "error": None, "error_class": None,
                        "child_execution_id": None}
            nodes.append({
                "name": step["name"], "type": step_type_name(step), "index": index,
                "condition": step.get("condition"), "compensate": step.get("compensate"),
                "subprocess": step.get("workflow_id") if step_type_name(step) == "subprocess" else None,
                "actions": step.get("actions") or None, "state": state,
                "taken": state not in ("pending", "skipped"), "attempts": sum(not r["compensation"] for r in runs),
                "input": preview(step.get("params") or {}),
                "output": last["output"] if last else None, "error": last["error"] if last else None,
                "error_class": last["error_class"] if last else None,
                "child_execution_id": last["child_execution_id"] if last else None,
            })
        groups.append({"group": number, "parallel": len(members) > 1, "steps": nodes})
    return groups


def _execution_head(execution: Execution) -> dict:
    return {
        "execution_id": str(execution.id), "workflow_id": str(execution.workflow_id),
        "workflow_name": execution.workflow.name, "version": execution.version.number,
        "status": execution.status, "final": execution.is_final, "trigger": execution.trigger,
        "test_mode": execution.test_mode, "current_step": execution.current_step or None,
        "queued_at": iso(execution.queued_at), "started_at": iso(execution.started_at),
        "finished_at": iso(execution.finished_at), "duration": execution.duration,
        "error": execution.error, "input_data": preview(execution.input_data),
        "parent_execution_id": str(execution.parent_id) if execution.parent_id else None,
        "parent_step": execution.parent_step or None,
        "rerun_of": str(execution.rerun_of_id) if execution.rerun_of_id else None,
        "rerun_from_step": execution.rerun_from_step or None,
    }


def execution_timeline(execution: Execution) -> dict:
    """The operator's view of one execution (see the module's docstring for the bounds)."""
    child_rows = list(execution.children.select_related("workflow").order_by("queued_at")
                      .values_list("id", "parent_step", "status", "workflow__name", "queued_at", "finished_at")
                      [:MAX_CHILDREN])
    children = [{"execution_id": str(pk), "parent_step": step, "status": status, "workflow_name": name,
                 "queued_at": iso(queued), "finished_at": iso(finished)}
                for pk, step, status, name, queued, finished in child_rows]
    by_step = {c["parent_step"]: c["execution_id"] for c in children}
    total = execution.step_runs.count()
    runs = execution.step_runs.order_by("started_at", "id")[:MAX_ATTEMPTS]
    attempts = [_attempt(r, by_step) for r in runs]
    return {
        "execution": _execution_head(execution),
        "attempts": attempts, "attempts_total": total, "attempts_truncated": total > len(attempts),
        "graph": _graph(execution, attempts),
        "children": children,
    }
