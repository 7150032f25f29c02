"""Helpers of the MCP tests: the specification's scenario replayed through any MCP client (in
process, stdio, streamable HTTP), and one tool call over /mcp as a user."""
from __future__ import annotations

import json

import pytest
from mcp import Client
from rest_framework.authtoken.models import Token

from workflows_app.registry import registry

SPEC_TOOLS = {"workflow_create", "workflow_execute", "workflow_status", "workflow_list", "workflow_agent_assign",
              "workflow_queue_status", "workflow_audit_trail", "workflow_update", "workflow_metrics"}
TRADING_TYPES = {"news_analysis", "technical_analysis", "signal_generation", "trade_execution"}
MARKET_TRIGGERS = {"price_change", "volume_spike", "volatility", "news_sentiment", "breaking_news"}


def spec_steps() -> list[dict]:
    """The specification's four steps (test step types stand in while trading's are not registered)."""
    steps = [
        {"name": "analyze_news", "type": "news_analysis", "params": {"symbols": ["AAPL", "MSFT"]}},
        {"name": "market_analysis", "type": "technical_analysis", "params": {"indicators": ["RSI", "MACD"]}},
        {"name": "generate_signals", "type": "signal_generation", "params": {"threshold": 0.7}},
        {"name": "execute_trades", "type": "trade_execution", "params": {"risk_limit": 0.02}},
    ]
    if TRADING_TYPES <= set(registry.step_types):
        return steps
    return [{"name": s["name"], "type": "test_echo", "params": {"value": s["params"]}} for s in steps]


class Session:
    """Calls tools through an MCP client and decodes their JSON replies."""

    def __init__(self, client: Client):
        self.client = client

    async def call(self, name: str, arguments: dict) -> dict:
        result = await self.client.call_tool(name, arguments)
        body = json.loads(result.content[0].text)
        assert result.structured_content == body
        if result.is_error:
            raise ToolError(body)
        assert body["success"] is True, body
        return body


class ToolError(Exception):
    def __init__(self, body: dict):
        super().__init__(json.dumps(body))
        self.body = body


async def replay_specification(session: Session, suffix: str = "") -> dict:
    """Each tool call of the specification, with its arguments, in its order."""
    names = {t.name for t in (await session.client.list_tools()).tools}
    assert SPEC_TOOLS <= names
    steps = spec_steps()
    trading = steps[0]["type"] == "news_analysis"

    # Basic workflow creation.
    created = await session.call("workflow_create", {
        "name": f"alpaca-trading-workflow{suffix}",
        "description": "Automated trading workflow with news analysis",
        "steps": steps,
        "triggers": [{"type": "schedule", "cron": "0 9 * * 1-5"}],
    })
    workflow_id = created["workflow_id"]
    assert created["status"] == "active" and created["priority"] == 5
    assert {"scheduling", "retries"} <= set(created["features"]) and "agent_assignment" not in created["features"]

    # Execute immediately with test data, waiting for the result (async=False) on the real worker.
    executed = await session.call("workflow_execute", {
        "workflow_id": workflow_id, "input_data": {"symbols": ["AAPL"], "test_mode": True}, "async": False})
    execution_id = executed["execution_id"]
    assert executed["workflow_name"] == f"alpaca-trading-workflow{suffix}"
    assert executed["status"] == "succeeded", executed
    assert list(executed["steps"]) == [s["name"] for s in steps]
    if trading:
        assert executed["steps"]["generate_signals"]["result"]["signal"] in ("BUY", "SELL", "HOLD")

    # Queue configuration, a message, and queue monitoring.
    hft = await session.call("queue_create", {"name": f"hft-queue{suffix}", "max_retries": 3, "visibility_timeout": 30,
                                              "message_retention": 86400, "batch_size": 10, "ordering": "FIFO",
                                              "deduplication": True})
    assert hft["success"] is True
    await session.call("queue_send", {"queue_name": "trading-signals",
                                      "message": {"type": "trade_signal", "symbol": "AAPL", "signal": "BUY"}})
    queues = await session.call("workflow_queue_status", {"include_messages": True})
    assert {"queues", "total_messages", "processing_rate"} <= set(queues)
    signals = next(q for q in queues["queues"] if q["name"] == "trading-signals")
    assert signals["messages_available"] >= 1 and signals["messages"]
    assert {"messages_in_flight", "oldest_message_age"} <= set(signals)
    dlq = await session.call("workflow_queue_status", {"queue_name": "dead-letter-queue"})
    assert [q["name"] for q in dlq["queues"]] == ["dead-letter-queue"]
    await session.call("process_dead_letters", {})
    await session.call("dead_letters", {})

    # Troubleshooting: the workflow's triggers.
    status = await session.call("workflow_status", {"workflow_id": workflow_id})
    assert status["triggers"][0]["type"] == "schedule" and status["triggers"][0]["next_run_at"]
    execution = await session.call("workflow_status", {"execution_id": execution_id})
    assert execution["status"] == "succeeded" and execution["progress"] == 1.0

    # Dynamic modification: high volatility, then back to normal.
    cautious = await session.call("workflow_update", {"workflow_id": workflow_id, "updates": {
        "steps[2].params.threshold": 0.9, "steps[3].params.risk_limit": 0.01}})
    assert cautious["version"] == created["version"] + 1
    normal = await session.call("workflow_update", {"workflow_id": workflow_id, "updates": {
        "steps[2].params.threshold": 0.7, "steps[3].params.risk_limit": 0.02}})
    assert normal["version"] == created["version"] + 2
    assert sorted(normal["changed"]) == ["steps[2].params.threshold", "steps[3].params.risk_limit"]

    # The audit trail of the execution.
    trail = await session.call("workflow_audit_trail", {"execution_id": execution_id})
    events = [e["event"] for e in trail["events"]]
    started = next(e for e in trail["events"] if e["event"] == "workflow_started")
    assert started["trigger"] == "manual"
    assert events.count("step_completed") == 4
    assert [e["step"] for e in trail["events"] if e["event"] == "step_completed"] == [s["name"] for s in steps]

    # Performance statistics.
    metrics = await session.call("workflow_metrics", {"workflow_id": workflow_id})
    assert metrics["executions"] == 1 and metrics["success_rate"] == 1.0
    assert set(metrics["steps_performance"]) == {s["name"] for s in steps}

    # Agent assignment and listing.
    assigned = await session.call("workflow_agent_assign", {"workflow_id": workflow_id, "task_id": "execute_trades",
                                                            "agent_type": "trader"})
    assert assigned["assignment"]["queue"] == "agent.trader"
    listed = await session.call("workflow_list", {})
    assert any(w["workflow_id"] == workflow_id for w in listed["workflows"])

    # Production patterns: circuit breaker, saga, composition; event-driven triggers when registered.
    await session.call("workflow_create", {"name": f"protected-trader{suffix}", "steps": [
        {"name": "check_circuit", "type": "circuit_breaker",
         "params": {"failure_threshold": 5, "timeout_duration": 60, "reset_timeout": 300}},
        {"name": "execute_if_open", "type": "conditional", "condition": "circuit_status == 'closed'",
         "actions": ["trade"]}]})
    if {"reserve_funds", "release_funds"} <= set(registry.step_types):
        saga = await session.call("workflow_create", {"name": f"trading-saga{suffix}", "steps": [
            {"name": "reserve_funds", "compensate": "release_funds"},
            {"name": "place_order", "compensate": "cancel_order"},
            {"name": "update_portfolio", "compensate": "revert_portfolio"},
            {"name": "send_notification", "compensate": "send_failure_alert"}]})
        assert "saga_compensation" in saga["features"]
    for child in ("scanner-workflow", "analyzer-workflow", "executor-workflow"):
        await session.call("workflow_create", {"name": f"{child}{suffix}", "steps": [{"name": "s", "type": "transform"}]})
    parent = await session.call("workflow_create", {"name": f"master-trader{suffix}", "steps": [
        {"name": "market_scan", "type": "subprocess", "workflow_id": f"scanner-workflow{suffix}"},
        {"name": "analyze_opportunities", "type": "subprocess", "workflow_id": f"analyzer-workflow{suffix}"},
        {"name": "execute_best", "type": "subprocess", "workflow_id": f"executor-workflow{suffix}"}]})
    assert "subprocess" in parent["features"]
    if MARKET_TRIGGERS <= set(registry.trigger_types):
        market = [{"type": "price_change", "symbol": "AAPL", "threshold": 0.02, "direction": "any"},
                  {"type": "volume_spike", "symbol": "AAPL", "multiplier": 2.0},
                  {"type": "volatility", "symbol": "AAPL", "vix_threshold": 30}]
        news = [{"type": "news_sentiment", "keywords": ["earnings", "FDA", "acquisition"], "sentiment_threshold": 0.7},
                {"type": "breaking_news", "sources": ["Reuters", "Bloomberg"], "priority": "high"}]
        schedule = [{"type": "schedule", "cron": "0 9 * * 1-5", "timezone": "America/New_York"},
                    {"type": "schedule", "cron": "30 15 * * 1-5", "timezone": "America/New_York"}]
        event_driven = await session.call("workflow_create", {
            "name": f"event-driven-trader{suffix}", "description": "Responds to multiple market events", "steps": [
                {"name": "event_classifier", "type": "classify", "params": {"categories": ["urgent", "normal", "ignore"]}},
                {"name": "urgent_handler", "type": "conditional", "condition": "category == 'urgent'",
                 "actions": ["immediate_hedge", "alert_user"]},
                {"name": "normal_handler", "type": "conditional", "condition": "category == 'normal'",
                 "actions": ["analyze", "queue_for_execution"]}],
            "triggers": [*market, *news, *schedule]})
        assert event_driven["triggers"] == 7

    # A refused call is an MCP tool error carrying the OperationError body, naming the field.
    with pytest.raises(ToolError) as refused:
        await session.call("workflow_update", {"workflow_id": workflow_id,
                                               "updates": {"steps[2].params.threshold": "very high"}})
    assert refused.value.body["success"] is False
    error = refused.value.body["error"]
    assert error["code"] == "INVALID_DEFINITION"
    assert error["details"]["errors"][0]["field"] == "steps[2].params.threshold"
    with pytest.raises(ToolError) as missing:
        await session.call("workflow_status", {"execution_id": "068487ca-a19d-43c0-bee1-df64c5fb6e9d"})
    assert missing.value.body["error"]["code"] == "EXECUTION_NOT_FOUND"
    return {"workflow_id": workflow_id, "execution_id": execution_id}


MCP_HEADERS = {"HTTP_ACCEPT": "application/json, text/event-stream", "HTTP_MCP_PROTOCOL_VERSION": "2025-06-18"}


def mcp_call(client, user, name: str, arguments: dict) -> dict:
    token, _ = Token.objects.get_or_create(user=user)
    message = {"jsonrpc": "2.0", "id": 1, "method": "tools/call", "params": {"name": name, "arguments": arguments}}
    response = client.post("/mcp", data=json.dumps(message), content_type="application/json",
                           HTTP_AUTHORIZATION=f"Token {token.key}", **MCP_HEADERS)
    assert response.status_code == 200, response.content[:500]
    return response.json()["result"]
