"""Workflow definitions: the schema, whole-definition validation and path updates.

A definition is plain JSON ({name, description, priority, queue, metadata, steps, triggers}).
``validate_definition`` returns the normalised definition or raises
``OperationError("INVALID_DEFINITION", ..., {"errors": [{"field", "message"}, ...]})`` listing
every problem it found, each naming its field (``steps[2].params.threshold``).
"""
from __future__ import annotations

import copy
import re
import uuid
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from workflows_app import expressions
from workflows_app.errors import OperationError
from workflows_app.models import Agent, Workflow
from workflows_app.registry import registry

NAME_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.\-]{0,99}$"
MAX_STEPS = 100
MAX_TRIGGERS = 50


class RetrySpec(BaseModel):
    model_config = ConfigDict(extra="forbid")
    max_retries: int = Field(3, ge=0, le=20)
    backoff: float = Field(1.0, ge=0, le=3600)
    backoff_max: float = Field(60.0, ge=0, le=86400)
    jitter: bool = True


class StepSpec(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: str = Field(pattern=NAME_PATTERN)
    type: str | None = Field(None, max_length=100)
    description: str = Field("", max_length=2000)
    params: dict[str, Any] = Field(default_factory=dict)
    condition: str | None = Field(None, max_length=expressions.MAX_LENGTH)
    actions: list[str] = Field(default_factory=list, max_length=20)
    parallel: bool = False
    group: str | None = Field(None, max_length=100)
    retry: RetrySpec | None = None
    timeout: int | None = Field(None, ge=1, le=86400)
    compensate: str | None = Field(None, max_length=100)
    agent: str | None = Field(None, max_length=100)
    workflow_id: str | None = Field(None, max_length=200)


class DefinitionSpec(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: str = Field(pattern=NAME_PATTERN)
    description: str = Field("", max_length=5000)
    priority: int = Field(5, ge=0, le=10)
    queue: str = Field("workflows", pattern=NAME_PATTERN)
    metadata: dict[str, Any] = Field(default_factory=dict)
    steps: list[dict[str, Any]] = Field(min_length=1, max_length=MAX_STEPS)
    triggers: list[dict[str, Any]] = Field(default_factory=list, max_length=MAX_TRIGGERS)


def _loc(prefix: str, loc: tuple) -> str:
    out = prefix
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out


def _pydantic_errors(prefix: str, exc: ValidationError) -> list[dict]:
    return [{"field": _loc(prefix, err["loc"]), "message": err["msg"]} for err in exc.errors()]


def step_type_name(step: dict) -> str:
    """A step without `type` takes its name as its type (the specification's saga lists only names)."""
    return step.get("type") or step["name"]


def execution_groups(steps: list[dict]) -> list[list[int]]:
    """Step indexes in running order: consecutive steps sharing a group (or all `parallel`) run together."""
    groups: list[list[int]] = []
    previous_key = None
    for index, step in enumerate(steps):
        key = step.get("group") or ("__parallel__" if step.get("parallel") else None)
        if key is not None and key == previous_key:
            groups[-1].append(index)
        else:
            groups.append([index])
        previous_key = key
    return groups


FEATURES = {  # name -> what the definition uses to earn it (docs/api.md "features")
    "message_queues": "a step or conditional action sends to a named queue (its params name a `queue`)",
    "agent_assignment": "a step is assigned to an agent (`agent`, e.g. by workflow_agent_assign)",
    "scheduling": "a `schedule` trigger",
    "event_triggers": "a trigger other than schedule/manual (market, news, webhook, event)",
    "conditional_logic": "a step with a `condition`",
    "parallel_execution": "steps that run in parallel (`parallel` or a shared `group`)",
    "saga_compensation": "a step with `compensate`",
    "subprocess": "a `subprocess` step",
    "circuit_breaker": "a `circuit_breaker` step",
    "retries": "a step whose retry policy (its `retry`, else its type's) allows at least one retry",
}


def _step_types(step: dict) -> list:
    names = [step_type_name(step), *step.get("actions", [])]
    return [t for t in (registry.get_step_type(n) for n in names) if t is not None]


def _sends_to_queue(step: dict) -> bool:
    return any("queue" in getattr(t.params_model, "model_fields", {}) for t in _step_types(step))


def _retries(step: dict) -> bool:
    if step.get("retry") is not None:
        return int(step["retry"].get("max_retries", 3)) > 0
    step_type = registry.get_step_type(step_type_name(step))
    return step_type is not None and step_type.retry.max_retries > 0


def features(definition: dict) -> list[str]:
    """What a definition uses, for the create reply: computed from the definition alone (nothing is
    claimed by default; the engine-wide audit trail and dead letters are not features, see docs/api.md)."""
    steps = definition.get("steps", [])
    triggers = definition.get("triggers", [])
    checks = {
        "message_queues": any(_sends_to_queue(s) for s in steps),
        "agent_assignment": any(s.get("agent") for s in steps),
        "scheduling": any(t.get("type") == "schedule" for t in triggers),
        "event_triggers": any(t.get("type") not in ("schedule", "manual") for t in triggers),
        "conditional_logic": any(s.get("condition") for s in steps),
        "parallel_execution": any(len(g) > 1 for g in execution_groups(steps)),
        "saga_compensation": any(s.get("compensate") for s in steps),
        "subprocess": any(step_type_name(s) == "subprocess" for s in steps),
        "circuit_breaker": any(step_type_name(s) == "circuit_breaker" for s in steps),
        "retries": any(_retries(s) for s in steps),
    }
    return [name for name in FEATURES if checks[name]]


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
                if steps[index].get("compensate") or step_type_name(steps[index]) == "subprocess":
                    errors.append({"field": f"steps[{index}]", "message": "a parallel step cannot be a subprocess or have compensate"})


def may_execute(owner, workflow) -> bool:
    """Whether a workflow owned by `owner` (a user; None = trusted local caller) may run `workflow`:
    staff and trusted callers any, a user only their own."""
    return _trusted(owner) or workflow.owner_id == getattr(owner, "pk", None)


def _trusted(owner) -> bool:
    return owner is None or getattr(owner, "is_staff", False)


def resolve_workflow_ref(ref, owner=None):
    """The workflow `ref` (a uuid or a name) names, as seen by `owner`; None when nothing matches.

    A name resolves within the owner's own workflows (names are unique per owner). Staff and
    trusted callers (owner None) fall back to owner-less workflows (the examples, the demo),
    then to a name held by exactly one owner; an ambiguous name resolves to nothing (use the
    uuid). A non-staff owner never reaches another user's workflow by name. A uuid resolves to
    its workflow whoever owns it: callers check ``may_execute``."""
    qs = Workflow.objects.select_related("current_version", "owner")
    try:
        return qs.filter(id=uuid.UUID(str(ref))).first()
    except ValueError:
        pass
    name = str(ref)[:200]
    owner_id = getattr(owner, "pk", None)
    own = qs.filter(name=name, owner_id=owner_id) if owner_id else qs.filter(name=name, owner__isnull=True)
    found = own.first()
    if found is not None or not _trusted(owner):
        return found
    found = qs.filter(name=name, owner__isnull=True).first()
    if found is not None:
        return found
    matches = list(qs.filter(name=name)[:2])
    return matches[0] if len(matches) == 1 else None


_resolve_workflow_ref = resolve_workflow_ref  # the old private name


def _resolve_for(ref, owner):
    target = resolve_workflow_ref(ref, owner)
    return target if target is not None and may_execute(owner, target) else None


def _subprocess_cycle(root: tuple, ref: str, owner, depth: int = 0) -> bool:
    """True when following subprocess references from workflow `ref` reaches the root
    (name, owner id, workflow id); each target's references resolve as its own owner sees them."""
    target = _resolve_for(ref, owner)
    if target is None or depth > 20:
        return depth > 20
    name, owner_id, workflow_id = root
    if str(target.id) == workflow_id or (target.name == name and target.owner_id == owner_id):
        return True
    steps = target.current_version.steps if target.current_version_id else []
    return any(
        _subprocess_cycle(root, s["workflow_id"], target.owner, depth + 1)
        for s in steps
        if step_type_name(s) == "subprocess" and s.get("workflow_id")
    )


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
    for a_index, action in enumerate(spec.actions):
        if action not in names and registry.get_step_type(action) is None:
            errors.append({"field": f"{prefix}.actions[{a_index}]", "message": f"'{action}' names no step or action"})
        if action == spec.name:
            errors.append({"field": f"{prefix}.actions[{a_index}]", "message": "a step cannot run itself"})
    if spec.compensate and registry.get_step_type(spec.compensate) is None:
        errors.append({"field": f"{prefix}.compensate", "message": f"unknown compensation step type '{spec.compensate}'"})
    if type_name == "subprocess":
        if not spec.workflow_id:
            errors.append({"field": f"{prefix}.workflow_id", "message": "a subprocess needs workflow_id (uuid or name)"})
        elif _resolve_for(spec.workflow_id, owner) is None:  # another user's workflow reads as missing
            errors.append({"field": f"{prefix}.workflow_id", "message": f"no workflow '{spec.workflow_id}'"})
        elif _subprocess_cycle(root, spec.workflow_id, owner):
            errors.append({"field": f"{prefix}.workflow_id", "message": "subprocess cycle: this workflow would run itself"})
    elif spec.workflow_id:
        errors.append({"field": f"{prefix}.workflow_id", "message": "only a subprocess step takes workflow_id"})
    if spec.agent:
        if not Agent.objects.filter(name=spec.agent).exists():
            errors.append({"field": f"{prefix}.agent", "message": f"no agent '{spec.agent}'"})
    return step


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


# --- path updates -----------------------------------------------------------------------------
_TOKEN = re.compile(r"\.?([A-Za-z_][A-Za-z0-9_\-]*)|\[(-?\d+)\]|\[([A-Za-z0-9_.\-]+)\]|\['([^']+)'\]")


def parse_path(path: str) -> list[str | int]:
    """`steps[2].params.threshold` -> ["steps", 2, "params", "threshold"];
    `steps[generate_signals].params.x` -> ["steps", "@generate_signals", "params", "x"]."""
    if not isinstance(path, str) or not path or len(path) > 300:
        raise ValueError("a path must be a non-empty string of at most 300 characters")
    parts: list[str | int] = []
    pos = 0
    while pos < len(path):
        match = _TOKEN.match(path, pos)
        if not match or match.end() == pos:
            raise ValueError(f"cannot parse path at {path[pos:]!r}")
        name, number, key, quoted = match.groups()
        if name is not None:
            parts.append(name)
        elif number is not None:
            parts.append(int(number))
        else:
            parts.append("@" + (key or quoted))
        pos = match.end()
    if isinstance(parts[0], int) or parts[0].startswith("@"):
        raise ValueError("a path starts with a field name")
    return parts


def _select(container: Any, part: str | int, path: str) -> Any:
    if isinstance(part, int):
        if not isinstance(container, list) or not -len(container) <= part < len(container):
            raise ValueError(f"{path}: index {part} out of range")
        return part
    if part.startswith("@"):
        wanted = part[1:]
        if not isinstance(container, list):
            raise ValueError(f"{path}: [{wanted}] selects by name in a list")
        for index, item in enumerate(container):
            if isinstance(item, dict) and item.get("name") == wanted:
                return index
        raise ValueError(f"{path}: no item named '{wanted}'")
    if not isinstance(container, dict):
        raise ValueError(f"{path}: '{part}' is not inside an object")
    return part


UPDATABLE_ROOTS = {"name", "description", "priority", "queue", "metadata", "steps", "triggers"}


def apply_updates(definition: dict, updates: dict) -> tuple[dict, list[str]]:
    """Apply {path: value} to a copy of `definition`; errors name the path."""
    if not isinstance(updates, dict) or not updates:
        raise OperationError("INVALID_INPUT_DATA", "updates must be a non-empty object of path: value", {"field": "updates"})
    result = copy.deepcopy(definition)
    errors, changed = [], []
    for path, value in updates.items():
        try:
            parts = parse_path(path)
            if parts[0] not in UPDATABLE_ROOTS:
                raise ValueError(f"'{parts[0]}' cannot be updated")
            node: Any = result
            for part in parts[:-1]:
                key = _select(node, part, path)
                if isinstance(key, str) and key not in node:
                    node[key] = {}
                node = node[key]
            last = _select(node, parts[-1], path)
            node[last] = copy.deepcopy(value)
            changed.append(path)
        except ValueError as exc:
            errors.append({"field": f"updates.{path}", "message": str(exc)})
    if errors:
        raise OperationError("INVALID_INPUT_DATA", errors[0]["message"], {"errors": errors})
    return result, changed
