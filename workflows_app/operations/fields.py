"""Argument types shared by the operations' argument models.

Each type parses the way the operations always have (an integer may come as "10" from a query
string but never as ``true`` or ``1.5``; a flag is a boolean or "true"/"false"/"1"/"0"), so every
face accepts the same inputs. A refusal raises ``PydanticCustomError("nexus", "must be ...")``;
the catalogue turns it into ``OperationError("INVALID_INPUT_DATA", "<field> must be ...")``.
"""
from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

from django.utils import timezone
from django.utils.dateparse import parse_datetime
from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, WithJsonSchema
from pydantic_core import PydanticCustomError

# Marks a field whose JSON schema the catalogue fills in from the registries when a face asks
# (step and trigger schemas change as apps register step and trigger types).
STEPS_SCHEMA = "steps"
TRIGGERS_SCHEMA = "triggers"
UPDATES_SCHEMA = "updates"
DYNAMIC_SCHEMA_KEY = "x-nexus-schema"


class Args(BaseModel):
    """Base of every argument model: unknown arguments are refused, aliases (``async``) are the names."""

    model_config = ConfigDict(extra="forbid", populate_by_name=False, arbitrary_types_allowed=True)


class NoArgs(Args):
    """An operation without arguments."""


def refuse(message: str) -> PydanticCustomError:
    return PydanticCustomError("nexus", message)


def _integer(value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int | str):
        raise refuse("must be an integer")
    try:
        return int(value)
    except ValueError:
        raise refuse("must be an integer") from None


def _flag(value: Any) -> bool:
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.lower() in ("true", "false", "1", "0"):
        return value.lower() in ("true", "1")
    raise refuse("must be true or false")


def _timestamp(value: Any) -> datetime | None:
    if value in (None, ""):
        return None
    parsed = value if isinstance(value, datetime) else parse_datetime(str(value))
    if parsed is None:
        raise refuse("must be an ISO 8601 timestamp")
    return parsed if timezone.is_aware(parsed) else timezone.make_aware(parsed, timezone.utc)


def _object(value: Any) -> dict:
    if not isinstance(value, dict):
        raise refuse("must be an object")
    return value


def _number(value: Any) -> float:
    if isinstance(value, bool):
        raise refuse("must be a number")
    try:
        return float(value)
    except (TypeError, ValueError):
        raise refuse("must be a number") from None


Int = Annotated[int, BeforeValidator(_integer)]
Flag = Annotated[bool, BeforeValidator(_flag)]
Timestamp = Annotated[datetime | None, BeforeValidator(_timestamp), WithJsonSchema({"type": "string", "format": "date-time"})]
Object = Annotated[dict[str, Any], BeforeValidator(_object)]
Number = Annotated[float, BeforeValidator(_number)]
# A whole number given as any number (queue settings: 30.0 is 30).
WholeNumber = Annotated[int, BeforeValidator(lambda v: int(_number(v)))]

# Bounds go on the field (``Int = Field(10, ge=1, le=500)``), where the JSON schema shows them as
# minimum/maximum. An optional argument is typed without ``| None`` and defaults to None: the
# catalogue drops a None argument before parsing (None means "not given").

WORKFLOW_REF = "A workflow's uuid or its name."
EXECUTION_REF = "An execution's uuid."


def workflow_ref(required: bool = True):
    """A workflow by uuid or name (resolved, and its visibility checked, by the operation)."""
    return Field(... if required else None, description=WORKFLOW_REF)


def execution_ref(required: bool = True):
    return Field(... if required else None, description=EXECUTION_REF, json_schema_extra={"format": "uuid"})


def dynamic(kind: str, **field_options):
    """A field whose published schema comes from the registries (see STEPS_SCHEMA)."""
    extra = dict(field_options.pop("json_schema_extra", None) or {})
    return Field(json_schema_extra={**extra, DYNAMIC_SCHEMA_KEY: kind}, **field_options)
