"""Whole-definition validation: ``validate_definition`` returns the normalised definition or raises
``OperationError("INVALID_DEFINITION", ..., {"errors": [{"field", "message"}, ...]})`` listing every
problem it found, each naming its field (``steps[2].params.threshold``)."""
from __future__ import annotations

from typing import Any

from pydantic import ValidationError

from workflows_app import expressions
from workflows_app.definitions.references import resolve_for, subprocess_cycle
from workflows_app.definitions.specs import DefinitionSpec, StepSpec, execution_groups, step_type_name
from workflows_app.errors import OperationError
from workflows_app.models import Agent
from workflows_app.registry import registry

WAITING_TYPES = ("subprocess", "wait", "approval")  # the canvas stops after them (engine.canvas)


def _loc(prefix: str, loc: tuple) -> str:
    out = prefix
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out


def _pydantic_errors(prefix: str, exc: ValidationError) -> list[dict]:
    return [{"field": _loc(prefix, err["loc"]), "message": err["msg"]} for err in exc.errors()]


def _check_groups(steps: list[dict], errors: list[dict]) -> None:
    seen_closed: set[str] = set()
    previous = None
    for index, step in enumerate(steps):
        group = step.get("group")
        if group and group != previous and group in seen_closed:
            errors.append({"field": f"steps[{index}].group", "message": f"group '{group}' must be consecutive"})
        if previous and previous != group:
            seen_closed.add(previous)
        previous = group
    for group in execution_groups(steps):
        if len(group) > 1:
            for index in group:
                if steps[index].get("compensate") or step_type_name(steps[index]) in WAITING_TYPES:
                    errors.append({"field": f"steps[{index}]", "message": "a parallel step cannot be a subprocess, "
                                                                         "wait or approval, or have compensate"})
    _check_branches(steps, errors)


def _check_branches(steps: list[dict], errors: list[dict]) -> None:
    """An approval's `on_reject` names a later step (a jump forward: no loops)."""
    names = [s["name"] for s in steps]
    for index, step in enumerate(steps):
        target = step.get("on_reject")
        if not target:
            continue
        field = f"steps[{index}].on_reject"
        if step_type_name(step) != "approval":
            errors.append({"field": field, "message": "only an approval step takes on_reject"})
        elif target not in names:
            errors.append({"field": field, "message": f"'{target}' names no step of this workflow"})
        elif names.index(target) <= index:
            errors.append({"field": field, "message": f"'{target}' must come after this step"})


def _validate_step(index: int, raw: Any, names: set[str], root: tuple, owner, errors: list[dict]) -> dict | None:
    prefix = f"steps[{index}]"
    if not isinstance(raw, dict):
        errors.append({"field": prefix, "message": "a step must be an object"})
        return None
    try:
        spec = StepSpec.model_validate(raw)
    except ValidationError as exc:
        errors.extend(_pydantic_errors(prefix, exc))
        return None
    step = spec.model_dump(exclude_none=True, exclude_defaults=True)
    step["name"] = spec.name
    step["params"] = spec.params
    type_name = step_type_name(step)
    step_type = registry.get_step_type(type_name)
    if step_type is None:
        field = f"{prefix}.type" if spec.type else f"{prefix}.name"
        errors.append({"field": field, "message": f"unknown step type '{type_name}'"})
    else:
        try:
            step["params"] = step_type.params_model.model_validate(spec.params).model_dump(mode="json")
        except ValidationError as exc:
            errors.extend(_pydantic_errors(f"{prefix}.params", exc))
    if spec.condition:
        try:
            expressions.validate(spec.condition)
        except expressions.ExpressionError as exc:
            errors.append({"field": f"{prefix}.condition", "message": str(exc)})
    _check_references(prefix, spec, names, errors)
    _check_subprocess(prefix, spec, type_name, root, owner, errors)
    if spec.agent and not Agent.objects.filter(name=spec.agent).exists():
        errors.append({"field": f"{prefix}.agent", "message": f"no agent '{spec.agent}'"})
    return step


def _check_references(prefix: str, spec: StepSpec, names: set[str], errors: list[dict]) -> None:
    """The step's actions and compensation name something that exists."""
    for a_index, action in enumerate(spec.actions):
        if action not in names and registry.get_step_type(action) is None:
            errors.append({"field": f"{prefix}.actions[{a_index}]", "message": f"'{action}' names no step or action"})
        if action == spec.name:
            errors.append({"field": f"{prefix}.actions[{a_index}]", "message": "a step cannot run itself"})
    if spec.compensate and registry.get_step_type(spec.compensate) is None:
        errors.append({"field": f"{prefix}.compensate", "message": f"unknown compensation step type '{spec.compensate}'"})
    elif spec.compensate in WAITING_TYPES:
        errors.append({"field": f"{prefix}.compensate", "message": f"a compensation cannot be a {spec.compensate}"})


def _check_subprocess(prefix: str, spec: StepSpec, type_name: str, root: tuple, owner, errors: list[dict]) -> None:
    """A subprocess names a workflow its owner may run and that does not lead back to this one."""
    if type_name == "subprocess":
        if not spec.workflow_id:
            errors.append({"field": f"{prefix}.workflow_id", "message": "a subprocess needs workflow_id (uuid or name)"})
        elif resolve_for(spec.workflow_id, owner) is None:  # another user's workflow reads as missing
            errors.append({"field": f"{prefix}.workflow_id", "message": f"no workflow '{spec.workflow_id}'"})
        elif subprocess_cycle(root, spec.workflow_id, owner):
            errors.append({"field": f"{prefix}.workflow_id", "message": "subprocess cycle: this workflow would run itself"})
    elif spec.workflow_id:
        errors.append({"field": f"{prefix}.workflow_id", "message": "only a subprocess step takes workflow_id"})


def _validate_trigger(index: int, raw: Any, errors: list[dict]) -> dict | None:
    prefix = f"triggers[{index}]"
    if not isinstance(raw, dict):
        errors.append({"field": prefix, "message": "a trigger must be an object"})
        return None
    kind = raw.get("type")
    trigger_type = registry.trigger_types.get(kind) if isinstance(kind, str) else None
    if trigger_type is None:
        errors.append({"field": f"{prefix}.type", "message": f"unknown trigger type {kind!r}"})
        return None
    params = {k: v for k, v in raw.items() if k != "type"}
    try:
        model = trigger_type.params_model.model_validate(params)
    except ValidationError as exc:
        errors.extend(_pydantic_errors(prefix, exc))
        return None
    return {"type": kind, **model.model_dump(mode="json")}


def validate_definition(raw: Any, *, workflow_id: str | None = None, owner=None) -> dict:
    """Validate a whole definition; return it normalised (types resolved, params defaulted).
    `owner` (a user; None = trusted) decides which workflows its subprocess steps may call."""
    if not isinstance(raw, dict):
        raise OperationError("INVALID_DEFINITION", "definition must be an object", {"errors": [{"field": "", "message": "expected an object"}]})
    try:
        spec = DefinitionSpec.model_validate(raw)
    except ValidationError as exc:
        errors = _pydantic_errors("", exc)
        raise OperationError("INVALID_DEFINITION", _summary(errors), {"errors": errors}) from None
    errors: list[dict] = []
    names: set[str] = set()
    for index, step in enumerate(spec.steps):
        name = step.get("name") if isinstance(step, dict) else None
        if isinstance(name, str):
            if name in names:
                errors.append({"field": f"steps[{index}].name", "message": f"duplicate step name '{name}'"})
            names.add(name)
    root = (spec.name, getattr(owner, "pk", None), str(workflow_id or ""))
    steps = [_validate_step(i, s, names, root, owner, errors) for i, s in enumerate(spec.steps)]
    triggers = [_validate_trigger(i, t, errors) for i, t in enumerate(spec.triggers)]
    if not errors:
        _check_groups(steps, errors)
    if errors:
        raise OperationError("INVALID_DEFINITION", _summary(errors), {"errors": errors})
    return {
        "name": spec.name,
        "description": spec.description,
        "priority": spec.priority,
        "queue": spec.queue,
        "metadata": spec.metadata,
        "steps": steps,
        "triggers": triggers,
    }


def _summary(errors: list[dict]) -> str:
    first = errors[0]
    more = f" (and {len(errors) - 1} more)" if len(errors) > 1 else ""
    return f"invalid definition: {first['field'] or 'definition'}: {first['message']}{more}"
