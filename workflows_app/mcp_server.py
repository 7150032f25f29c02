"""The MCP face: every operation of the catalogue (``workflows_app.operations.catalogue``) as an
MCP tool of the same name, the engine's and those a domain app added (trading's).

Built on the official SDK's low-level ``Server`` so that tool names and argument names are exactly
the specification's (``workflow_execute`` takes ``async``, a Python keyword). The tools add no
logic: arguments go to the operation unchanged; a refused operation comes back as an MCP tool
error (``isError``) whose content and structured content are the ``OperationError`` body
``{"success": false, "error": {"code", "message", "details"}}``.

A tool's input schema is its operation's argument model's JSON schema, with the step and trigger
schemas of the registered step and trigger types where an argument takes steps or triggers.

Transports: stdio (``python manage.py mcp_server``) and streamable HTTP (``/mcp``, see
``workflows_app.ui.mcp_http``), where the caller is the DRF token's user.
"""
from __future__ import annotations

import contextvars
import copy
import json
import logging
from typing import Any

import anyio
import mcp_types as types
from django.core.serializers.json import DjangoJSONEncoder
from django.db import close_old_connections
from mcp.server import Server
from mcp.server.stdio import stdio_server

import workflows_app.operations  # noqa: F401 - registers the engine's operations in the catalogue
from workflows_app.errors import OperationError
from workflows_app.operations.catalogue import Operation, catalogue

logger = logging.getLogger("nexus.mcp")

# The caller of the current tool call: None = trusted local caller (stdio); the token's user over HTTP.
current_user: contextvars.ContextVar[Any] = contextvars.ContextVar("nexus_mcp_user", default=None)


def available_tools() -> list[Operation]:
    """The catalogue's operations served as tools (the engine's, then those domain apps added)."""
    return catalogue.tools()


# Built once the registries are full (the step and trigger schemas list the registered types).
_schema_cache: dict[str, dict] = {}


def input_schema(tool: Operation) -> dict:
    if tool.name not in _schema_cache:
        _schema_cache[tool.name] = tool.input_schema()
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
        result = tool(user=user, **kwargs)
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
    server = build_server()
    async with stdio_server() as (read_stream, write_stream):
        await server.run(read_stream, write_stream, server.create_initialization_options())
