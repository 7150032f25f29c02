"""The MCP face: every call of the specification, replayed with its exact arguments, through the
official SDK's client, in-process and over stdio (``python manage.py mcp_server`` as a subprocess),
against a real Celery worker."""
from __future__ import annotations

import json
import os
import subprocess
import sys
import time

import anyio
import pytest
from django.conf import settings
from mcp import Client
from mcp.client.stdio import StdioServerParameters

from tests.support.processes import ROOT, subprocess_env
from tests.workflows_app.mcp_support import SPEC_TOOLS, Session, replay_specification
from workflows_app import operations
from workflows_app.mcp_server import available_tools, build_server, call_operation

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.usefixtures("default_queues")]


def test_tools_have_the_specification_names_and_validator_schemas():
    tools = {t.name: t for t in available_tools()}
    assert SPEC_TOOLS <= set(tools)
    assert {"queue_send", "dead_letters", "dead_letter_redrive", "workflow_pause", "workflow_resume", "execution_cancel",
            "execution_retry"} <= set(tools)
    models = {t.name: t for t in __import__("workflows_app.mcp_server", fromlist=["x"]).list_tool_models()}
    execute = models["workflow_execute"].input_schema
    assert execute["properties"]["async"]["type"] == "boolean" and execute["required"] == ["workflow_id"]
    create = models["workflow_create"].input_schema
    # every registered step type is a variant of the step union, its params typed by its model
    variants = {r["$ref"].rsplit("/", 1)[1] for r in create["properties"]["steps"]["items"]["oneOf"]}
    assert "step__test_echo" in variants and "params__test_echo" in create["$defs"]
    assert "trigger__schedule" in create["$defs"] and "cron" in create["$defs"]["trigger__schedule"]["properties"]


def test_in_process_session_replays_the_specification(celery_worker):
    async def scenario():
        async with Client(build_server()) as client:
            return await replay_specification(Session(client))

    ids = anyio.run(scenario)
    assert operations.workflow_status(execution_id=ids["execution_id"])["status"] == "succeeded"


def test_in_process_legacy_jsonrpc_session(celery_worker):
    async def scenario():
        async with Client(build_server(), mode="legacy") as client:
            session = Session(client)
            created = await session.call("workflow_create", {"name": "legacy-wf", "steps": [
                {"name": "a", "type": "test_noop"}]})
            done = await session.call("workflow_execute", {"workflow_id": created["workflow_id"], "async": False})
            assert done["status"] == "succeeded"
            result = await client.call_tool("workflow_execute", {"workflow_id": created["workflow_id"], "bogus": 1})
            assert result.is_error
            assert result.structured_content["error"] == {"code": "INVALID_INPUT_DATA", "message": "unknown argument 'bogus'",
                                                          "details": {"field": "bogus"}}

    anyio.run(scenario)


def test_call_operation_refuses_a_user_argument_and_unknown_tools():
    ok, body = call_operation("workflow_list", {"user": 1})
    assert not ok and body["error"]["code"] == "INVALID_INPUT_DATA"
    ok, body = call_operation("no_such_tool", {})
    assert not ok and body["error"]["code"] == "TOOL_NOT_FOUND"


def _server_env() -> dict:
    return subprocess_env(REDIS_URL=os.environ.get("REDIS_URL", settings.REDIS_URL.rsplit("/", 1)[0] + "/0"),
                          PYTHONUNBUFFERED="1")


@pytest.mark.slow
def test_stdio_subprocess_session_replays_the_specification(celery_worker):
    params = StdioServerParameters(command=sys.executable, args=["manage.py", "mcp_server"], env=_server_env(),
                                   cwd=str(ROOT))

    async def scenario():
        async with Client(params, read_timeout_seconds=180) as client:
            return await replay_specification(Session(client), suffix="-stdio")

    ids = anyio.run(scenario)
    assert operations.workflow_status(execution_id=ids["execution_id"])["status"] == "succeeded"


@pytest.mark.slow
def test_stdio_stdout_carries_nothing_but_protocol():
    process = subprocess.Popen([sys.executable, "manage.py", "mcp_server", "--log-level", "DEBUG"], cwd=ROOT,
                               env=_server_env(), stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE, text=True)
    messages = [
        {"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {
            "protocolVersion": "2025-06-18", "capabilities": {}, "clientInfo": {"name": "t", "version": "1"}}},
        {"jsonrpc": "2.0", "method": "notifications/initialized"},
        {"jsonrpc": "2.0", "id": 2, "method": "tools/list"},
        {"jsonrpc": "2.0", "id": 3, "method": "tools/call", "params": {"name": "workflow_list", "arguments": {}}},
        {"jsonrpc": "2.0", "id": 4, "method": "tools/call",
         "params": {"name": "workflow_status", "arguments": {"workflow_id": "no-such-workflow"}}},
    ]
    try:
        for message in messages:
            process.stdin.write(json.dumps(message) + "\n")
        process.stdin.flush()
        replies = {}
        deadline = time.monotonic() + 180
        lines = []
        while len(replies) < 4 and time.monotonic() < deadline:
            line = process.stdout.readline()
            if not line:
                break
            lines.append(line)
            reply = json.loads(line)  # anything but JSON-RPC on stdout fails here
            assert reply["jsonrpc"] == "2.0"
            replies[reply["id"]] = reply
        process.stdin.close()
        process.wait(20)
    finally:
        if process.poll() is None:
            process.kill()
    rest = process.stdout.read()
    assert rest.strip() == "", rest
    stderr = process.stderr.read()
    assert set(replies) == {1, 2, 3, 4}, (lines, stderr[-2000:])
    assert {t["name"] for t in replies[2]["result"]["tools"]} >= SPEC_TOOLS
    assert replies[3]["result"]["isError"] is False
    assert replies[4]["result"]["isError"] is True
    assert replies[4]["result"]["structuredContent"]["error"]["code"] == "WORKFLOW_NOT_FOUND"
    assert "nexus.trading" in stderr or stderr  # the startup log went to stderr, not stdout
