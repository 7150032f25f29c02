"""Request fields for a definition's steps and triggers, published in OpenAPI as the typed unions of
``workflows_app.schemas`` (components ``WorkflowStep`` and ``WorkflowTrigger`` with one component per
step type, trigger type and params model).

They validate like the plain ``DictField`` they extend (the operation validates the definition);
only their documentation changes. The schemas are built per OpenAPI generation, when the registries
are full, and converted to the OpenAPI 3.0 dialect drf-spectacular writes (pydantic writes JSON
Schema 2020-12: ``const``, numeric ``exclusiveMinimum``, ``{"type": "null"}`` branches).
"""
from __future__ import annotations

from drf_spectacular.extensions import OpenApiSerializerFieldExtension
from drf_spectacular.plumbing import ResolvedComponent
from rest_framework import serializers

from workflows_app import schemas

COMPONENTS = "#/components/schemas/"


class StepField(serializers.DictField):
    """One step of a definition (documented as ``WorkflowStep``)."""


class TriggerField(serializers.DictField):
    """One trigger of a definition (documented as ``WorkflowTrigger``)."""


def _null_branch(node) -> bool:
    return node == {"type": "null"}


def _name_pinned_enum(prop_name: str, prop) -> None:
    """drf-spectacular's enum hook names an enum component by its choices; a union pins `type` and
    `name` to one value per variant, so the same one-value choice set would be named twice (a warning
    per step type). An explicit enum id per property keeps each pin's component name unique."""
    if isinstance(prop, dict) and isinstance(prop.get("enum"), list) and len(prop["enum"]) == 1:
        prop["x-spec-enum-id"] = f"{prop_name}:{prop['enum'][0]}"


def to_openapi30(node):
    """A JSON Schema 2020-12 document as an OpenAPI 3.0 schema object, refs pointing at components."""
    if isinstance(node, list):
        return [to_openapi30(item) for item in node]
    if not isinstance(node, dict):
        return node
    node = {key: to_openapi30(value) for key, value in node.items()}
    if "$ref" in node and isinstance(node["$ref"], str):
        node["$ref"] = node["$ref"].replace(schemas.REF, COMPONENTS)
    if "const" in node:
        node["enum"] = [node.pop("const")]
    for bound, inclusive in (("exclusiveMinimum", "minimum"), ("exclusiveMaximum", "maximum")):
        if isinstance(node.get(bound), int | float) and not isinstance(node[bound], bool):
            node[inclusive] = node.pop(bound)
            node[bound] = True
    for prop_name, prop in (node.get("properties") or {}).items():
        _name_pinned_enum(prop_name, prop)
    branches = node.get("anyOf")
    if isinstance(branches, list) and any(_null_branch(b) for b in branches):
        others = [b for b in branches if not _null_branch(b)]
        del node["anyOf"]
        if len(others) == 1 and "$ref" not in others[0]:
            node = {**others[0], **node}
        else:  # a $ref takes no siblings in OpenAPI 3.0
            node["allOf" if len(others) == 1 else "anyOf"] = others
        node["nullable"] = True
    return node


def _register(auto_schema, name: str, build) -> dict:
    """Register the union `build(defs)` and its defs as components; a reference to the union."""
    defs: dict = {}
    union = build(defs)
    for key, schema in {**defs, name: union}.items():
        auto_schema.registry.register_on_missing(ResolvedComponent(
            name=key, type=ResolvedComponent.SCHEMA, object=key, schema=to_openapi30(schema)))
    return {"$ref": f"{COMPONENTS}{name}"}


class StepFieldExtension(OpenApiSerializerFieldExtension):
    target_class = StepField

    def map_serializer_field(self, auto_schema, direction):
        return _register(auto_schema, "WorkflowStep", schemas.step_json_schema)


class TriggerFieldExtension(OpenApiSerializerFieldExtension):
    target_class = TriggerField

    def map_serializer_field(self, auto_schema, direction):
        return _register(auto_schema, "WorkflowTrigger", schemas.trigger_json_schema)
