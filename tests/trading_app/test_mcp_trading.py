"""Issue 11, finding 7 over MCP: trading's operations are MCP tools (registered by trading through
the operation catalogue, ``workflows_app.operations.catalogue``), with the REST face's permission rules.

Users A and B and a staff user call ``/mcp`` with their tokens (the streamable-HTTP face, stateless
JSON): B sees neither A's positions nor A's account nor A's orders, and may not touch A's kill
switch; A sees its own; staff sees every account. The in-process SDK client lists the tools with
their schemas.
"""
from __future__ import annotations

import json

import anyio
import pytest
from mcp import Client
from rest_framework.authtoken.models import Token

from tests.support.api import API, client_for
from tests.trading_app.helpers import make_ctx
from trading_app import accounts, operations
from trading_app.models import BrokerAccount
from workflows_app.mcp_server import available_tools, build_server
from workflows_app.registry import registry

pytestmark = pytest.mark.django_db(transaction=True)

TOOLS = {"trading_account", "trading_accounts", "trading_positions", "trading_orders", "trading_kill_switch"}
HEADERS = {"HTTP_ACCEPT": "application/json, text/event-stream", "HTTP_MCP_PROTOCOL_VERSION": "2025-06-18"}


@pytest.fixture(autouse=True)
def _pinned_clock(settings):
    settings.NEXUS_SIM_NOW = "2025-09-17T17:00:00Z"  # market open: the trade fills


def trade_as(user, symbol: str = "MSFT") -> dict:
    ctx = make_ctx("trade_execution", {"signal": "BUY", "symbols": [symbol], "stop_loss_pct": 0.01})
    ctx.owner_id = user.pk
    return registry.get_step_type("trade_execution").handler(ctx)


class McpAs:
    """Tool calls over /mcp as the token's user; returns (ok, structured body)."""

    def __init__(self, client, user):
        self.client = client
        self.token = Token.objects.get_or_create(user=user)[0].key

    def __call__(self, name: str, **arguments) -> tuple[bool, dict]:
        message = {"jsonrpc": "2.0", "id": 1, "method": "tools/call", "params": {"name": name, "arguments": arguments}}
        response = self.client.post("/mcp", data=json.dumps(message), content_type="application/json",
                                    HTTP_AUTHORIZATION=f"Token {self.token}", **HEADERS)
        assert response.status_code == 200, response.content
        result = response.json()["result"]
        assert json.loads(result["content"][0]["text"]) == result["structuredContent"]
        return not result["isError"], result["structuredContent"]

    def ok(self, name: str, **arguments) -> dict:
        ok, body = self(name, **arguments)
        assert ok and body["success"] is True, body
        return body

    def refused(self, name: str, code: str, **arguments) -> dict:
        ok, body = self(name, **arguments)
        assert not ok and body["success"] is False and body["error"]["code"] == code, body
        return body["error"]


def test_trading_tools_are_listed_with_their_schemas_and_call_the_rest_operations():
    async def listing():
        async with Client(build_server()) as client:
            return {t.name: t for t in (await client.list_tools()).tools}

    tools = anyio.run(listing)
    assert TOOLS <= set(tools)
    assert {"workflow_create", "workflow_execute"} <= set(tools)  # the engine's own tools are still there
    for name in ("trading_account", "trading_positions", "trading_orders", "trading_kill_switch"):
        schema = tools[name].input_schema
        assert schema["type"] == "object" and schema["additionalProperties"] is False
        assert "account" in schema["properties"], name
    assert tools["trading_accounts"].input_schema["properties"] == {}
    orders = tools["trading_orders"].input_schema["properties"]
    assert orders["limit"]["maximum"] == 500 and {"status", "symbol", "execution_id", "offset"} <= set(orders)
    active = tools["trading_kill_switch"].input_schema["properties"]["active"]
    assert {"type": "boolean"} in active["anyOf"]
    assert all(tools[n].description for n in TOOLS)
    # no logic of its own: each tool is the very function the REST views call
    by_name = {t.name: t for t in available_tools()}
    for name in TOOLS - {"trading_kill_switch"}:
        assert by_name[name] is getattr(operations, name)
    assert by_name["trading_kill_switch"] is operations.trading_kill_switch


def test_b_does_not_see_a_s_positions_account_or_orders_over_mcp(client, alice, bob, staff):
    out = trade_as(alice)
    assert out["status"] == "filled", out
    a_name = accounts.user_account(alice.pk).name
    as_a, as_b, as_staff = McpAs(client, alice), McpAs(client, bob), McpAs(client, staff)

    mine = as_a.ok("trading_positions")
    assert mine["account"] == a_name and [p["symbol"] for p in mine["positions"]] == ["MSFT"]
    assert as_a.ok("trading_account")["account"]["owners"] == ["alice"]
    a_orders = as_a.ok("trading_orders")
    assert out["client_order_id"] in {o["client_order_id"] for o in a_orders["orders"]}
    assert {o["account"] for o in a_orders["orders"]} == {a_name}
    rest_orders = client_for(alice).get(f"{API}/trading/orders/").json()
    assert a_orders == rest_orders  # the same operation behind both faces

    theirs = as_b.ok("trading_positions")
    assert theirs["count"] == 0 and theirs["account"] == f"user-{bob.pk}"
    b_account = as_b.ok("trading_account")["account"]
    assert b_account["name"] == f"user-{bob.pk}" and b_account["cash"] == 100_000 and b_account["owners"] == ["bob"]
    assert as_b.ok("trading_orders")["total"] == 0
    assert as_b.ok("trading_orders", symbol="MSFT")["orders"] == []
    for tool in ("trading_account", "trading_positions", "trading_orders"):
        error = as_b.refused(tool, "ACCOUNT_NOT_FOUND", account=a_name)
        assert error["details"] == {"field": "account"}
        assert "MSFT" not in json.dumps(error)
    assert [a["name"] for a in as_b.ok("trading_accounts")["accounts"]] == [f"user-{bob.pk}"]

    names = {a["name"] for a in as_staff.ok("trading_accounts")["accounts"]}
    assert {a_name, f"user-{bob.pk}"} <= names
    seen = as_staff.ok("trading_positions", account=a_name)
    assert [p["symbol"] for p in seen["positions"]] == ["MSFT"]
    assert as_staff.ok("trading_orders", account=a_name)["total"] == a_orders["total"]
    assert as_staff.ok("trading_account", account=a_name)["account"]["owners"] == ["alice"]

    # bad input names the field, as over REST
    assert as_a.refused("trading_orders", "INVALID_INPUT_DATA", status="bogus")["details"] == {"field": "status"}
    assert as_a.refused("trading_positions", "INVALID_INPUT_DATA", bogus=1)["details"] == {"field": "bogus"}


def test_kill_switch_tool_keeps_the_rest_rules(client, alice, bob, staff):
    a_acct = accounts.user_account(alice.pk)
    as_a, as_b, as_staff = McpAs(client, alice), McpAs(client, bob), McpAs(client, staff)

    # B may neither halt A's account, nor read its switch, nor touch the global switch
    as_b.refused("trading_kill_switch", "ACCOUNT_NOT_FOUND", active=True, account=a_acct.name, reason="mine now")
    as_b.refused("trading_kill_switch", "ACCOUNT_NOT_FOUND", account=a_acct.name)
    as_b.refused("trading_kill_switch", "PERMISSION_DENIED", active=True)
    assert not BrokerAccount.objects.get(pk=a_acct.pk).halted
    assert as_b.ok("trading_kill_switch")["kill_switch"]["active"] is False  # reading the global state is fine

    halted = as_a.ok("trading_kill_switch", active=True, account=a_acct.name, reason="pause")
    assert halted["account_kill_switch"] == {"account": a_acct.name, "halted": True, "reason": "pause"}
    assert BrokerAccount.objects.get(pk=a_acct.pk).halted
    read = as_a.ok("trading_kill_switch", account=a_acct.name)
    assert read["account_kill_switch"] == {"account": a_acct.name, "halted": True, "reason": "pause"}
    assert read["kill_switch"]["active"] is False  # an account's switch leaves the global one alone
    as_a.refused("trading_kill_switch", "PERMISSION_DENIED", active=True)
    assert as_a.refused("trading_kill_switch", "INVALID_INPUT_DATA", active="yes",
                        account=a_acct.name)["details"] == {"field": "active"}
    assert as_a.refused("trading_kill_switch", "INVALID_INPUT_DATA", reason="r")["details"] == {"field": "active"}

    # staff: any account's switch and the global one
    assert as_staff.ok("trading_kill_switch", active=False, account=a_acct.name)["account_kill_switch"]["halted"] is False
    assert as_staff.ok("trading_kill_switch", active=True, reason="drill")["kill_switch"]["active"] is True
    assert as_b.ok("trading_kill_switch")["kill_switch"]["active"] is True
    assert as_staff.ok("trading_kill_switch", active=False)["kill_switch"]["active"] is False


def test_stdio_caller_is_trusted_like_the_cli():
    """No user (stdio, a local operator): the house account by default, as `manage.py trading`."""
    async def scenario():
        async with Client(build_server()) as client:
            result = await client.call_tool("trading_account", {})
            missing = await client.call_tool("trading_positions", {"account": "no-such-account"})
            return result, missing

    result, missing = anyio.run(scenario)
    assert not result.is_error and result.structured_content["account"]["name"] == accounts.HOUSE
    assert missing.is_error and missing.structured_content["error"]["code"] == "ACCOUNT_NOT_FOUND"
