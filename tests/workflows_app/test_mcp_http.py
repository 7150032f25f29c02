"""MCP over streamable HTTP at /mcp with DRF token auth: the SDK's HTTP client against the running
server, and the auth and ownership rules."""
from __future__ import annotations

import json

import anyio
import pytest
from django.contrib.auth import get_user_model
from mcp import Client
from mcp.client.streamable_http import streamable_http_client
from mcp.shared._httpx_utils import create_mcp_http_client
from rest_framework.authtoken.models import Token

from tests.workflows_app.mcp_support import MCP_HEADERS, Session, ToolError, replay_specification
from workflows_app import operations

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.usefixtures("default_queues")]

INIT = {"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {
    "protocolVersion": "2025-06-18", "capabilities": {}, "clientInfo": {"name": "t", "version": "1"}}}


def token_for(username: str, **extra) -> str:
    user = get_user_model().objects.create_user(username, password="pw", **extra)
    return Token.objects.create(user=user).key


def post(client, message, token=None):
    headers = dict(MCP_HEADERS)
    if token:
        headers["HTTP_AUTHORIZATION"] = f"Token {token}"
    return client.post("/mcp", data=json.dumps(message), content_type="application/json", **headers)


def call(client, token, name, arguments):
    response = post(client, {"jsonrpc": "2.0", "id": 7, "method": "tools/call",
                             "params": {"name": name, "arguments": arguments}}, token)
    assert response.status_code == 200, response.content
    return response.json()["result"]


def test_mcp_http_needs_a_token(client):
    response = post(client, INIT)
    assert response.status_code == 401 and response.json()["error"]["code"] == "PERMISSION_DENIED"
    assert "Token" in response["WWW-Authenticate"]
    assert post(client, INIT, "not-a-token").status_code == 401


def test_mcp_http_tools_act_as_the_token_user(client):
    alice, bob = token_for("alice"), token_for("bob")
    assert post(client, INIT, alice).json()["result"]["serverInfo"]["name"] == "nexus"
    created = call(client, alice, "workflow_create", {"name": "alice-flow", "steps": [{"name": "a", "type": "test_noop"}]})
    assert created["isError"] is False
    workflow_id = created["structuredContent"]["workflow_id"]
    assert call(client, alice, "workflow_status", {"workflow_id": workflow_id})["isError"] is False
    hidden = call(client, bob, "workflow_status", {"workflow_id": workflow_id})
    assert hidden["isError"] is True and hidden["structuredContent"]["error"]["code"] == "WORKFLOW_NOT_FOUND"
    assert call(client, bob, "workflow_list", {})["structuredContent"]["total"] == 0
    assert operations.workflow_get(workflow_id=workflow_id)["name"] == "alice-flow"


@pytest.mark.slow
def test_sdk_http_client_replays_the_specification(live_server, celery_worker):
    token = token_for("ops", is_staff=True)

    async def scenario():
        http = create_mcp_http_client(headers={"Authorization": f"Token {token}"})
        async with http, Client(streamable_http_client(f"{live_server.url}/mcp", http_client=http,
                                                       terminate_on_close=False)) as client:
            return await replay_specification(Session(client), suffix="-http")

    ids = anyio.run(scenario)
    assert operations.workflow_status(execution_id=ids["execution_id"])["status"] == "succeeded"
    assert ToolError  # the replay asserts refusals arrive as tool errors over HTTP too
