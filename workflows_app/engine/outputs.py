"""What a step may write into the context.

Keys that steer the engine: its own (`_circuits`, ...) and those the execution owns (test mode,
owner and account are fixed at start; `event` is the trigger's). They are never merged into the
context's top level from a step output (they stay under the step's name, e.g. a trade reporting
its account); an output that tries to change the test mode or write an engine key fails the step
(`reserved_key`). Only the engine's own step types write their `_` keys.
"""
from __future__ import annotations

import json

from django.conf import settings
from django.core.serializers.json import DjangoJSONEncoder

from workflows_app.definitions import step_type_name
from workflows_app.errors import PermanentStepError
from workflows_app.models import Execution

RESERVED_KEYS = frozenset({"test_mode", "owner", "account", "event"})
ENGINE_WRITES = {"circuit_breaker": frozenset({"_circuits"})}


def is_reserved(key) -> bool:
    return str(key).startswith("_") or key in RESERVED_KEYS


def _engine_value(execution: Execution, key: str):
    return execution.test_mode if key == "test_mode" else execution.context.get(key)


def output_problem(execution: Execution, step: dict, output: dict) -> PermanentStepError | None:
    """A reason to refuse a step's output: it would change the test mode or an engine key, or it is
    too large to store. Repeating the current value (a step reporting the test mode) is harmless."""
    allowed = ENGINE_WRITES.get(step_type_name(step), frozenset())
    for key, value in output.items():
        steering = key == "test_mode" or (str(key).startswith("_") and key not in allowed)
        if steering and value != _engine_value(execution, key):
            return PermanentStepError(f"step output may not set the reserved context key '{key}'", "reserved_key")
    limit = int(getattr(settings, "NEXUS_MAX_STEP_OUTPUT_BYTES", 256 * 1024))
    size = len(json.dumps(output, cls=DjangoJSONEncoder, default=str).encode())
    if size > limit:
        return PermanentStepError(f"step output is {size} bytes, over NEXUS_MAX_STEP_OUTPUT_BYTES={limit}",
                                  "output_too_large")
    return None


def mergeable(step: dict, output: dict) -> dict:
    """The part of an output merged into the context's top level (all of it stays under the step's name)."""
    allowed = ENGINE_WRITES.get(step_type_name(step), frozenset())
    return {k: v for k, v in output.items() if not is_reserved(k) or k in allowed}


def child_outputs(child: Execution) -> dict:
    """What a finished child hands its parent: the keys its steps added, none of the reserved ones."""
    return {k: v for k, v in child.context.items() if k not in child.input_data and not is_reserved(k)}
