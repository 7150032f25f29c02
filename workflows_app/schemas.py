"""The workflow definition's JSON Schema, generated from the registries.

A step is a discriminated union over the registered step types: each variant pins ``type`` to one
name and types ``params`` with that step type's pydantic model; a trigger likewise over the trigger
types (its settings sit beside ``type``). Every face publishes these same schemas: MCP (the
``workflow_create`` tool), OpenAPI (``workflows_app.api.definition_fields``), the vocabulary
endpoints (``/api/v1/step-types/``, ``/trigger-types/``) and ``docs/steps.md``. The validator
(``definitions.validate_definition``) stays the authority; these describe what it accepts.

Nested pydantic ``$defs`` are hoisted into the caller's ``defs`` (``#/$defs/<key>``), so that one
document can hold every type's models without their names colliding.
"""
from __future__ import annotations

from dataclasses import asdict

from pydantic import BaseModel

from workflows_app import definitions
from workflows_app.registry import registry

REF = "#/$defs/"
STEP_COMMON = "StepSpec"


def model_schema(model: type[BaseModel], prefix: str, defs: dict) -> dict:
    """A pydantic model's JSON schema with its $defs hoisted into `defs` under `prefix__`."""
    schema = model.model_json_schema(ref_template=f"{REF}{prefix}__{{model}}")
    for key, value in schema.pop("$defs", {}).items():
        defs[f"{prefix}__{key}"] = value
    return schema


def step_json_schema(defs: dict) -> dict:
    """One step: the common fields (``definitions.StepSpec``) and ``type`` one of the registered step
    types, with ``params`` typed by that type. A step without ``type`` takes its name as type (as
    ``definitions.step_type_name``), so each variant matches ``type`` = its name, or no ``type`` and
    ``name`` = its name (the canonical form omits ``type`` rather than sending null). No OpenAPI ``discriminator``: it would require ``type``, which may be omitted;
    the pinned values make exactly one variant match all the same."""
    names = sorted(registry.step_types)
    common = model_schema(definitions.StepSpec, STEP_COMMON, defs)
    common["properties"]["type"] = {
        "type": "string", "enum": names,
        "description": "A registered step type (see /api/v1/step-types/); omitted: the step's name is its type."}
    defs[STEP_COMMON] = common
    variants = []
    for name in names:
        step_type = registry.step_types[name]
        params_key = f"params__{name}"
        defs[params_key] = model_schema(step_type.params_model, params_key, defs)
        defs[f"step__{name}"] = {
            "title": f"{name} step",
            "description": step_type.description,
            "allOf": [
                {"$ref": f"{REF}{STEP_COMMON}"},
                {"anyOf": [{"required": ["type"], "properties": {"type": {"enum": [name]}}},
                           {"not": {"required": ["type"]}, "properties": {"name": {"enum": [name]}}}],
                 "properties": {"params": {"$ref": f"{REF}{params_key}"}}},
            ],
        }
        variants.append({"$ref": f"{REF}step__{name}"})
    return {"oneOf": variants,
            "description": "A step: name, type (a registered step type; default: the name) and the type's params. "
                           f"Step types: {', '.join(names)}."}


def trigger_json_schema(defs: dict) -> dict:
    """One trigger: ``type`` one of the registered trigger types and that type's settings beside it."""
    names = sorted(registry.trigger_types)
    variants = []
    for name in names:
        trigger_type = registry.trigger_types[name]
        key = f"trigger__{name}"
        schema = model_schema(trigger_type.params_model, key, defs)
        schema["properties"] = {"type": {"enum": [name]}, **schema.get("properties", {})}
        schema["required"] = ["type", *schema.get("required", [])]
        schema["title"] = f"{name} trigger"
        schema["description"] = trigger_type.description
        defs[key] = schema
        variants.append({"$ref": f"{REF}{key}"})
    return {"type": "object", "required": ["type"],
            "properties": {"type": {"type": "string", "enum": names,
                                    "description": "A registered trigger type (see /api/v1/trigger-types/)."}},
            "oneOf": variants,
            "description": "A trigger: its type and that type's settings, side by side. "
                           f"Trigger types: {', '.join(names)}."}


def definition_json_schema() -> dict:
    """A whole workflow definition, self-contained (its $defs included)."""
    defs: dict = {}
    props = definitions.DefinitionSpec.model_json_schema()["properties"]
    return {
        "type": "object",
        "properties": {
            "name": props["name"],
            "description": props["description"],
            "steps": {"type": "array", "minItems": 1, "maxItems": definitions.MAX_STEPS,
                      "items": step_json_schema(defs)},
            "triggers": {"type": "array", "maxItems": definitions.MAX_TRIGGERS, "items": trigger_json_schema(defs)},
            "priority": props["priority"],
            "metadata": {"type": "object"},
            "queue": props["queue"],
        },
        "required": ["name", "steps"],
        "additionalProperties": False,
        "$defs": defs,
    }


# --- listings (the vocabulary endpoints and docs/steps.md) ---------------------------------------


def step_type_listing() -> list[dict]:
    """Every registered step type: name, description, its defaults and its params' JSON Schema."""
    return [{"name": name, "description": t.description, "queue": t.queue, "timeout": t.timeout,
             "retry": asdict(t.retry), "action": t.action, "params_schema": t.params_model.model_json_schema()}
            for name, t in sorted(registry.step_types.items())]


def trigger_type_listing() -> list[dict]:
    """Every registered trigger type: name, description, the event kinds it listens to, its settings' schema."""
    return [{"name": name, "description": t.description, "event_kinds": list(t.event_kinds),
             "params_schema": t.params_model.model_json_schema()}
            for name, t in sorted(registry.trigger_types.items())]


def step_types_reply() -> dict:
    types = step_type_listing()
    return {"success": True, "step_types": types, "count": len(types)}


def trigger_types_reply() -> dict:
    types = trigger_type_listing()
    return {"success": True, "trigger_types": types, "count": len(types)}
