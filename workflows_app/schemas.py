"""JSON schemas of a workflow's steps and triggers, built from the registered step and trigger types.

Used wherever a face publishes a field that takes steps or triggers (the MCP tools' input schemas,
generated from the operation catalogue). Each function hoists the pydantic models' ``$defs`` into
the ``defs`` dict it is given, so the caller places them once at the top of its schema.
"""
from __future__ import annotations

from workflows_app import definitions
from workflows_app.registry import registry


def _model_schema(model, prefix: str, defs: dict) -> dict:
    """A pydantic model's JSON schema with its $defs hoisted into `defs` under a prefix."""
    schema = model.model_json_schema(ref_template=f"#/$defs/{prefix}__{{model}}")
    for key, value in schema.pop("$defs", {}).items():
        defs[f"{prefix}__{key}"] = value
    return schema


def step_json_schema(defs: dict) -> dict:
    step = _model_schema(definitions.StepSpec, "StepSpec", defs)
    rules = []
    for name, step_type in sorted(registry.step_types.items()):
        key = f"params__{name}"
        defs[key] = _model_schema(step_type.params_model, key, defs)
        # The params of a step are validated by its type's model (a step without type uses its name).
        rules.append({"if": {"properties": {"type": {"const": name}}, "required": ["type"]},
                      "then": {"properties": {"params": {"$ref": f"#/$defs/{key}"}}}})
    step["allOf"] = rules
    step["description"] = ("A step: name, type (a registered step type; default: the name) and the type's params. "
                           f"Step types: {', '.join(sorted(registry.step_types))}.")
    return step


def trigger_json_schema(defs: dict) -> dict:
    rules = []
    for name, trigger_type in sorted(registry.trigger_types.items()):
        key = f"trigger__{name}"
        schema = _model_schema(trigger_type.params_model, key, defs)
        schema.setdefault("properties", {})["type"] = {"const": name}
        defs[key] = schema
        rules.append({"if": {"properties": {"type": {"const": name}}, "required": ["type"]},
                      "then": {"$ref": f"#/$defs/{key}"}})
    return {"type": "object", "required": ["type"],
            "properties": {"type": {"type": "string", "enum": sorted(registry.trigger_types)}},
            "allOf": rules, "description": "A trigger: its type and that type's settings, side by side."}
