"""The operation catalogue: every operation once, with its typed arguments, its permission and its function.

Every face is generated from it: the MCP tools and their input schemas (``mcp_server``), the REST
request serializers and so the OpenAPI request bodies (``api.serializers``), and the generic
command ``manage.py nexus_op``. Domain apps extend it with their own operations (trading's
account, positions, orders and kill switch) through the same decorator.

An operation is called with keyword arguments, as every face and every Python caller does::

    operations.workflow_list(user=request.user, limit=20)

The arguments are parsed by the operation's pydantic model (unknown ones refused); a refusal is
``OperationError("INVALID_INPUT_DATA", "<field> must be ...", {"field": <field>})``. Then the
permission is checked and the function runs as ``fn(args, user)``. Checks that depend on the object
(a workflow visible to its owner only) stay in the function.
"""
from __future__ import annotations

import enum
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

from annotated_types import Ge, Gt, Le, Lt
from pydantic import BaseModel, ValidationError

from workflows_app import schemas
from workflows_app.errors import OperationError
from workflows_app.operations.fields import DYNAMIC_SCHEMA_KEY, STEPS_SCHEMA, TRIGGERS_SCHEMA, UPDATES_SCHEMA


class Permission(enum.StrEnum):
    ANYONE = "anyone"  # any authenticated caller; what they may see is decided per object in the function
    STAFF = "staff"  # shared infrastructure: staff users and trusted local callers (user None) only


def is_staff(user) -> bool:
    """Trusted local callers (CLI, MCP over stdio, beat) pass ``user=None``."""
    return user is None or bool(getattr(user, "is_staff", False))


@dataclass(frozen=True)
class Operation:
    name: str
    fn: Callable[[Any, Any], dict]  # fn(args, user) -> reply dict with success: True
    args: type[BaseModel]
    description: str
    permission: Permission = Permission.ANYONE
    denied: str = ""  # staff-only refusal: "only staff may <denied>"
    tool: bool = True  # listed as an MCP tool and callable by `manage.py nexus_op`

    def __call__(self, *, user=None, **arguments) -> dict:
        if self.permission is Permission.STAFF and not is_staff(user):
            raise OperationError("PERMISSION_DENIED", f"only staff may {self.denied or self.name}", {"field": "user"})
        return self.fn(self.parse(arguments), user)

    def parse(self, arguments: dict) -> BaseModel:
        """The typed arguments; ``None`` for a known argument means "not given" (its default)."""
        known = field_names(self.args)
        given = {k: v for k, v in arguments.items() if not (v is None and k in known)}
        try:
            return self.args.model_validate(given)
        except ValidationError as exc:
            raise invalid_input(self.args, exc) from None

    def input_schema(self) -> dict:
        """The arguments' JSON schema (names as the faces spell them, e.g. ``async``), with the step
        and trigger schemas of the registered types where a field takes steps or triggers."""
        schema = self.args.model_json_schema(by_alias=True)
        defs = schema.pop("$defs", {})
        for prop in schema.get("properties", {}).values():
            if "default" in prop and prop["default"] is None:
                del prop["default"]  # None means "not given": the schema shows no default
            kind = prop.pop(DYNAMIC_SCHEMA_KEY, None)
            if kind:
                _fill_dynamic(kind, prop, defs)
        schema.pop("title", None)
        if defs:
            schema["$defs"] = defs
        return schema


def field_names(model: type[BaseModel]) -> set[str]:
    return {info.alias or name for name, info in model.model_fields.items()}


def _fill_dynamic(kind: str, prop: dict, defs: dict) -> None:
    if kind == STEPS_SCHEMA:
        prop["items"] = schemas.step_json_schema(defs)
    elif kind == TRIGGERS_SCHEMA:
        prop["items"] = schemas.trigger_json_schema(defs)
    elif kind == UPDATES_SCHEMA:
        # Whole steps or triggers may be replaced by path; other paths take any value.
        prop["properties"] = {"steps": {"type": "array", "items": schemas.step_json_schema(defs)},
                              "triggers": {"type": "array", "items": schemas.trigger_json_schema(defs)}}


# --- pydantic errors -> the one error body ------------------------------------------------------

_PHRASES = {
    "missing": "is required",
    "string_type": "must be a string",
    "bool_type": "must be true or false",
    "bool_parsing": "must be true or false",
    "int_type": "must be an integer",
    "int_parsing": "must be an integer",
    "int_from_float": "must be an integer",
    "float_type": "must be a number",
    "float_parsing": "must be a number",
    "dict_type": "must be an object",
    "list_type": "must be a list",
    "string_pattern_mismatch": "has the wrong format",
}


def _bounds(model: type[BaseModel], field: str) -> tuple[Any, Any]:
    info = next((i for n, i in model.model_fields.items() if (i.alias or n) == field), None)
    low = high = None
    for item in getattr(info, "metadata", []):
        if isinstance(item, Ge | Gt):
            low = getattr(item, "ge", getattr(item, "gt", None))
        elif isinstance(item, Le | Lt):
            high = getattr(item, "le", getattr(item, "lt", None))
    return low, high


def _phrase(model: type[BaseModel], field: str, error: dict) -> str:
    kind, ctx = error["type"], error.get("ctx") or {}
    if kind == "nexus":
        return error["msg"]
    if kind in ("greater_than_equal", "greater_than", "less_than_equal", "less_than"):
        low, high = _bounds(model, field)
        if low is not None and high is not None:
            return f"must be between {low} and {high}"
        return f"must be at least {low}" if low is not None else f"must be at most {high}"
    if kind == "string_too_long":
        return f"must be at most {ctx.get('max_length')} characters"
    if kind == "string_too_short":
        return "is required" if ctx.get("min_length") == 1 else f"must be at least {ctx.get('min_length')} characters"
    if kind == "too_long":
        return f"must have at most {ctx.get('max_length')} items"
    if kind == "too_short":
        return f"must have at least {ctx.get('min_length')} items"
    if kind in ("enum", "literal_error"):
        return f"must be one of {ctx.get('expected')}"
    return _PHRASES.get(kind, f"is invalid ({error['msg']})")


def invalid_input(model: type[BaseModel], exc: ValidationError) -> OperationError:
    """The first problem, naming its top-level field (unknown arguments first, as always)."""
    errors = exc.errors()
    unknown = sorted(str(e["loc"][0]) for e in errors if e["type"] == "extra_forbidden" and e["loc"])
    if unknown:
        return OperationError("INVALID_INPUT_DATA", f"unknown argument '{unknown[0]}'", {"field": unknown[0]})
    first = errors[0]
    field = str(first["loc"][0]) if first["loc"] else "arguments"
    return OperationError("INVALID_INPUT_DATA", f"{field} {_phrase(model, field, first)}", {"field": field})


# --- the catalogue ------------------------------------------------------------------------------


class Catalogue:
    def __init__(self) -> None:
        self.operations: dict[str, Operation] = {}

    def register(self, operation: Operation) -> Operation:
        taken = self.operations.get(operation.name)
        if taken is not None and _origin(taken.fn) != _origin(operation.fn):
            raise ValueError(f"operation {operation.name} is already registered by {_origin(taken.fn)}")
        self.operations[operation.name] = operation
        return operation

    def operation(self, args: type[BaseModel], *, description: str = "", permission: Permission = Permission.ANYONE,
                  denied: str = "", tool: bool = True, name: str | None = None) -> Callable[[Callable], Operation]:
        """Decorator: ``fn(args, user) -> dict`` becomes the catalogue's operation of fn's name."""

        def register(fn: Callable) -> Operation:
            text = description or (fn.__doc__ or "").strip().split("\n\n")[0].replace("\n", " ")
            return self.register(Operation(name=name or fn.__name__, fn=fn, args=args, description=text,
                                           permission=permission, denied=denied, tool=tool))

        return register

    def get(self, name: str) -> Operation | None:
        return self.operations.get(name)

    def __iter__(self) -> Iterator[Operation]:
        return iter(list(self.operations.values()))

    def tools(self) -> list[Operation]:
        return [op for op in self if op.tool]


def _origin(fn: Callable) -> str:
    return f"{getattr(fn, '__module__', '?')}.{getattr(fn, '__qualname__', '?')}"


catalogue = Catalogue()
