"""The MCP face: every operation of ``workflows_app.operations`` as an MCP tool of the same name,
and every operation a domain app registered (``registry.operations``, e.g. trading's) likewise.

Built on the official SDK's low-level ``Server`` so that tool names and argument names are exactly
the specification's (``workflow_execute`` takes ``async``, a Python keyword). The tools add no
logic: arguments go to the operation unchanged; a refused operation comes back as an MCP tool
error (``isError``) whose content and structured content are the ``OperationError`` body
``{"success": false, "error": {"code", "message", "details"}}``.

Input schemas are derived from the engine's own validators: the definition/step pydantic specs,
each registered step type's params model and each trigger type's params model.

Transports: stdio (``python manage.py mcp_server``) and streamable HTTP (``/mcp``, see
``workflows_app.ui.mcp_http``), where the caller is the DRF token's user.
"""
from __future__ import annotations

import contextvars
import copy
import inspect
import json
import logging
from dataclasses import dataclass
from typing import Any

import anyio
import mcp_types as types
from django.core.serializers.json import DjangoJSONEncoder
from django.db import close_old_connections
from mcp.server import Server

from workflows_app import definitions, operations
from workflows_app.errors import OperationError
from workflows_app.registry import registry

logger = logging.getLogger("nexus.mcp")

# The caller of the current tool call: None = trusted local caller (stdio); the token's user over HTTP.
current_user: contextvars.ContextVar[Any] = contextvars.ContextVar("nexus_mcp_user", default=None)

# --- schemas ------------------------------------------------------------------------------------

_STR = {"type": "string"}
_UUID_OR_NAME = {"type": "string", "description": "A workflow's uuid or its name."}
_EXEC_ID = {"type": "string", "format": "uuid", "description": "An execution's uuid."}


def _model_schema(model, prefix: str, defs: dict) -> dict:
    """A pydantic model's JSON schema with its $defs hoisted into `defs` under a prefix."""
    schema = model.model_json_schema(ref_template=f"#/$defs/{prefix}__{{model}}")
    for key, value in schema.pop("$defs", {}).items():
        defs[f"{prefix}__{key}"] = value
    return schema


def _step_schema(defs: dict) -> dict:
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


def _trigger_schema(defs: dict) -> dict:
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


def _workflow_create_schema() -> dict:
    defs: dict = {}
    spec = definitions.DefinitionSpec.model_json_schema()
    props = spec["properties"]
    return {
        "type": "object",
        "properties": {
            "name": props["name"],
            "description": props["description"],
            "steps": {"type": "array", "minItems": 1, "maxItems": definitions.MAX_STEPS, "items": _step_schema(defs)},
            "triggers": {"type": "array", "maxItems": definitions.MAX_TRIGGERS, "items": _trigger_schema(defs)},
            "priority": props["priority"],
            "metadata": {"type": "object"},
            "queue": props["queue"],
        },
        "required": ["name", "steps"],
        "additionalProperties": False,
        "$defs": defs,
    }


def _obj(properties: dict, required: tuple = ()) -> dict:
    return {"type": "object", "properties": properties, "required": list(required), "additionalProperties": False}


_LIMIT = {"type": "integer", "minimum": 1}
_OFFSET = {"type": "integer", "minimum": 0, "default": 0}


@dataclass(frozen=True)
class ToolSpec:
    name: str
    description: str
    schema: Any  # dict or a zero-argument callable returning one (built once the registries are full)
    operation: str | None = None  # defaults to the tool name
    fn: Any = None  # a registered operation's callable (else the engine's operation of that name)


TOOLS: list[ToolSpec] = [
    ToolSpec("workflow_create", "Create a workflow from steps and triggers; the whole definition is validated.",
             _workflow_create_schema),
    ToolSpec("workflow_execute", "Start an execution. With async=false, wait (bounded) and return each step's result.",
             lambda: _obj({"workflow_id": _UUID_OR_NAME, "input_data": {"type": "object"},
                           "async": {"type": "boolean", "default": True},
                           "trigger": {"type": "string", "pattern": "^[a-z_]{1,50}$", "default": "manual"},
                           "timeout": {"type": "integer", "minimum": 1, "maximum": 600}}, ("workflow_id",))),
    ToolSpec("workflow_status", "Status of a workflow (with its triggers) or of an execution (with its step runs).",
             _obj({"workflow_id": _UUID_OR_NAME, "execution_id": _EXEC_ID,
                   "include_metrics": {"type": "boolean", "default": False}})),
    ToolSpec("workflow_list", "List workflows.",
             lambda: _obj({"limit": {**_LIMIT, "maximum": 500, "default": 10}, "offset": _OFFSET,
                           "status": {"type": "string", "enum": ["active", "paused", "archived"]},
                           "name": {"type": "string", "maxLength": 200, "description": "part of the name"},
                           "priority_min": {"type": "integer", "minimum": 0, "maximum": 10},
                           "priority_max": {"type": "integer", "minimum": 0, "maximum": 10},
                           "created_after": {"type": "string", "format": "date-time"},
                           "created_before": {"type": "string", "format": "date-time"}})),
    ToolSpec("workflow_get", "A workflow's full current definition.", _obj({"workflow_id": _UUID_OR_NAME}, ("workflow_id",))),
    ToolSpec("workflow_update", "Change a workflow by paths (e.g. steps[2].params.threshold); creates a new version.",
             _obj({"workflow_id": _UUID_OR_NAME,
                   "updates": {"type": "object", "minProperties": 1,
                               "description": "path -> new value, e.g. {\"steps[2].params.threshold\": 0.9}"},
                   "expected_version": {"type": "integer", "minimum": 1,
                                        "description": "Apply only if the workflow is still at this version "
                                                       "(else CONFLICT)."}},
                  ("workflow_id", "updates"))),
    ToolSpec("workflow_pause", "Pause a workflow: its triggers stop firing.", _obj({"workflow_id": _UUID_OR_NAME}, ("workflow_id",))),
    ToolSpec("workflow_resume", "Resume a paused workflow.", _obj({"workflow_id": _UUID_OR_NAME}, ("workflow_id",))),
    ToolSpec("workflow_delete", "Delete a workflow without unfinished executions.",
             _obj({"workflow_id": _UUID_OR_NAME}, ("workflow_id",))),
    ToolSpec("workflow_agent_assign", "Route a step to an agent (its Celery queue).",
             _obj({"workflow_id": _UUID_OR_NAME, "task_id": {"type": "string", "description": "A step name."},
                   "agent_type": _STR, "use_vector_similarity": {"type": "boolean", "default": False}},
                  ("workflow_id", "task_id"))),
    ToolSpec("agent_list", "The agents and their queues.", _obj({})),
    ToolSpec("workflow_queue_status", "Named queues: depth, in flight, oldest message age, rate, dead letters.",
             _obj({"queue_name": _STR, "include_messages": {
                       "type": "boolean", "description": "List the messages. Default: true for dead-letter-queue "
                       "(the specification's dead-letter loop reads them from a plain status call), false otherwise."},
                   "limit": {"type": "integer", "minimum": 1, "default": 100,
                             "description": "At most this many messages per queue with include_messages."}})),
    ToolSpec("workflow_audit_trail", "The audit trail of a workflow or an execution.",
             _obj({"workflow_id": _UUID_OR_NAME, "execution_id": _EXEC_ID,
                   "limit": {**_LIMIT, "maximum": 1000, "default": 50}, "offset": _OFFSET,
                   "start_time": {"type": "string", "format": "date-time"}})),
    ToolSpec("workflow_metrics", "Measured metrics: executions, success rate, durations, p50/p99, steps, costs.",
             _obj({"workflow_id": _UUID_OR_NAME, "window": {"type": "string", "default": "24h",
                                                            "description": "e.g. 15m, 24h, 7d"}})),
    ToolSpec("execution_cancel", "Cancel an unfinished execution.", _obj({"execution_id": _EXEC_ID}, ("execution_id",))),
    ToolSpec("execution_retry", "Retry a failed execution from its failed step.",
             _obj({"execution_id": _EXEC_ID}, ("execution_id",))),
    ToolSpec("queue_create", "Create or reconfigure a named queue (the specification's queue_config).",
             _obj({"name": {"type": "string", "pattern": "^[A-Za-z0-9][A-Za-z0-9_.\\-]{0,99}$"},
                   "max_retries": {"type": "integer", "minimum": 0, "default": 3},
                   "visibility_timeout": {"type": "number", "exclusiveMinimum": 0, "default": 30},
                   "message_retention": {"type": "integer", "minimum": 1, "default": 86400},
                   "batch_size": {"type": "integer", "minimum": 1, "default": 10},
                   "ordering": {"type": "string", "enum": ["FIFO", "standard"], "default": "FIFO"},
                   "deduplication": {"type": "boolean", "default": True},
                   "deduplication_window": {"type": "integer", "minimum": 1, "default": 300},
                   "max_messages": {"type": "integer", "minimum": 1, "default": 100000},
                   "description": _STR, "workflow_id": _UUID_OR_NAME}, ("name",))),
    ToolSpec("queue_list", "The named queues and their settings.", _obj({})),
    ToolSpec("queue_send", "Send a message to a named queue (FIFO per group_id, deduplicated in the window).",
             _obj({"queue_name": _STR, "message": {"description": "Any JSON value."},
                   "group_id": {"type": ["string", "integer"]}, "deduplication_id": {"type": ["string", "integer"]},
                   "delay": {"type": "number", "minimum": 0}}, ("queue_name", "message"))),
    ToolSpec("queue_receive", "Pull messages; each stays invisible for the queue's visibility_timeout until acked.",
             _obj({"queue_name": _STR, "max_messages": {"type": "integer", "minimum": 1},
                   "consumer": {"type": "string", "default": "api"}}, ("queue_name",))),
    ToolSpec("queue_ack", "Acknowledge received messages.",
             _obj({"queue_name": _STR, "message_id": _STR, "message_ids": {"type": "array", "items": _STR}},
                  ("queue_name",))),
    ToolSpec("event_ingest", "Ingest an event (tick, news, named event); matching triggers fire on the edge.",
             _obj({"kind": {"type": "string", "default": "event"}, "payload": {"type": "object"},
                   "source": {"type": "string", "default": "manual"}, "event_id": _STR})),
    ToolSpec("dead_letters", "List dead letters.",
             _obj({"status": {"type": "string", "enum": ["pending", "retry_scheduled", "redriven", "discarded", "alerted"]},
                   "error_class": _STR, "queue_name": _STR, "source": {"type": "string", "enum": ["step", "queue"]},
                   "created_after": {"type": "string", "format": "date-time"},
                   "limit": {**_LIMIT, "maximum": 1000, "default": 50},
                   "offset": _OFFSET, "include_traceback": {"type": "boolean", "default": False}})),
    ToolSpec("dead_letter_redrive", "Send dead letters back (a step resumes; a message goes back on its queue).",
             _obj({"dead_letter_id": {"type": "string", "format": "uuid"},
                   "dead_letter_ids": {"type": "array", "items": {"type": "string", "format": "uuid"}, "maxItems": 500}})),
    ToolSpec("process_dead_letters", "Apply the dead-letter policies now (rate_limit: retry with backoff; "
                                     "invalid_symbol: discard, audited; otherwise: alert an operator).",
             _obj({"limit": {"type": "integer", "minimum": 1, "maximum": 5000, "default": 100}})),
]


def _signature_schema(fn) -> dict:
    """Fallback for operations without a hand-written schema: their keyword arguments."""
    properties = {}
    required = []
    for name, param in inspect.signature(fn).parameters.items():
        if name in ("user",) or param.kind in (param.VAR_KEYWORD, param.VAR_POSITIONAL):
            continue
        prop: dict = {}
        if param.default is inspect.Parameter.empty:
            required.append(name)
        elif isinstance(param.default, bool):
            prop = {"type": "boolean", "default": param.default}
        elif isinstance(param.default, int):
            prop = {"type": "integer", "default": param.default}
        elif isinstance(param.default, str):
            prop = {"type": "string", "default": param.default}
        properties[name] = prop
    return {"type": "object", "properties": properties, "required": required}


def available_tools() -> list[ToolSpec]:
    """The tools whose operation exists (operations are added over time; none is faked), then the
    operations domain apps registered (an engine tool's name cannot be taken over)."""
    tools = [t for t in TOOLS if callable(getattr(operations, t.operation or t.name, None))]
    taken = {t.name for t in TOOLS}
    return tools + [ToolSpec(op.name, op.description, op.schema, fn=op.fn)
                    for name, op in sorted(registry.operations.items()) if name not in taken]


_schema_cache: dict[str, dict] = {}


def input_schema(tool: ToolSpec) -> dict:
    if tool.name not in _schema_cache:
        if tool.schema is None:
            schema = _signature_schema(getattr(operations, tool.operation or tool.name))
        else:
            schema = tool.schema() if callable(tool.schema) else tool.schema
        _schema_cache[tool.name] = schema
    return copy.deepcopy(_schema_cache[tool.name])


def list_tool_models() -> list[types.Tool]:
    return [types.Tool(name=t.name, description=t.description, input_schema=input_schema(t)) for t in available_tools()]


# --- calls --------------------------------------------------------------------------------------


def _dumps(value: Any) -> str:
    return json.dumps(value, cls=DjangoJSONEncoder)


def call_operation(name: str, arguments: dict | None, user=None) -> tuple[bool, dict]:
    """Run the operation behind tool `name`: (ok, body). Synchronous (Django ORM)."""
    tool = next((t for t in available_tools() if t.name == name), None)
    if tool is None:
        return False, OperationError("TOOL_NOT_FOUND", f"no tool named '{name}'", {"field": "name"}).as_dict()
    if arguments is not None and not isinstance(arguments, dict):
        return False, OperationError("INVALID_INPUT_DATA", "arguments must be an object", {"field": "arguments"}).as_dict()
    kwargs = dict(arguments or {})
    if "user" in kwargs:
        return False, OperationError("INVALID_INPUT_DATA", "unknown argument 'user'", {"field": "user"}).as_dict()
    close_old_connections()
    try:
        result = (tool.fn or getattr(operations, tool.operation or tool.name))(user=user, **kwargs)
        # Round-trip so the reply is plain JSON (uuids, datetimes, decimals as strings).
        return True, json.loads(_dumps(result))
    except OperationError as exc:
        return False, exc.as_dict()
    except Exception:  # noqa: BLE001 - reported as a tool error; the traceback goes to stderr only
        logger.exception("MCP tool %s failed", name)
        return False, OperationError("INTERNAL_ERROR", f"{name} failed unexpectedly; see the server log").as_dict()
    finally:
        close_old_connections()


async def _list_tools(ctx, params) -> types.ListToolsResult:
    tools = await anyio.to_thread.run_sync(list_tool_models)
    return types.ListToolsResult(tools=tools)


async def _call_tool(ctx, params: types.CallToolRequestParams) -> types.CallToolResult:
    user = current_user.get()
    ok, body = await anyio.to_thread.run_sync(call_operation, params.name, params.arguments, user)
    return types.CallToolResult(content=[types.TextContent(type="text", text=_dumps(body))], structured_content=body,
                                is_error=not ok)


def build_server() -> Server:
    return Server(
        "nexus",
        version="0.1.0",
        title="Nexus workflow engine",
        instructions=("Nexus runs automated trading workflows on Django + Celery + Redis. Create a workflow with "
                      "workflow_create, run it with workflow_execute (async=false waits for the result), inspect "
                      "it with workflow_status, workflow_audit_trail and workflow_metrics."),
        on_list_tools=_list_tools,
        on_call_tool=_call_tool,
    )


async def serve_stdio() -> None:
    from mcp.server.stdio import stdio_server

    server = build_server()
    async with stdio_server() as (read_stream, write_stream):
        await server.run(read_stream, write_stream, server.create_initialization_options())
