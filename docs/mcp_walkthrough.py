"""The specification's MCP calls, made by the official MCP client against `manage.py mcp_server`
(stdio), while `make run` is up. Prints each call and a short form of its reply.

    .venv/bin/python docs/mcp_walkthrough.py
"""
from __future__ import annotations

import json
import random
import sys
from pathlib import Path

import anyio
from mcp import Client
from mcp.client.stdio import StdioServerParameters

ROOT = Path(__file__).resolve().parent.parent


async def call(client: Client, tool: str, arguments: dict, keys: tuple[str, ...] = ()) -> dict:
    result = await client.call_tool(tool, arguments)
    body = json.loads(result.content[0].text)
    shown = {k: body[k] for k in keys if k in body} if keys and not result.is_error else body
    print(f"\n>>> {tool}({json.dumps(arguments)[:300]})\n{json.dumps(shown, indent=2)[:1500]}")
    if result.is_error:
        raise SystemExit(f"{tool} failed")
    return body


async def main() -> None:
    params = StdioServerParameters(command=sys.executable, args=["manage.py", "mcp_server"], cwd=str(ROOT))
    name = f"mcp-trading-workflow-{random.randint(1000, 9999)}"
    async with Client(params, read_timeout_seconds=120) as client:
        created = await call(client, "workflow_create", {
            "name": name,
            "description": "Automated trading workflow with news analysis",
            "steps": [
                {"name": "analyze_news", "type": "news_analysis", "params": {"symbols": ["AAPL", "MSFT"]}},
                {"name": "market_analysis", "type": "technical_analysis", "params": {"indicators": ["RSI", "MACD"]}},
                {"name": "generate_signals", "type": "signal_generation", "params": {"threshold": 0.7}},
                {"name": "execute_trades", "type": "trade_execution", "params": {"risk_limit": 0.02}},
            ],
            "triggers": [{"type": "schedule", "cron": "0 9 * * 1-5"}],
        }, ("success", "workflow_id", "name", "status", "priority", "features"))
        wf = created["workflow_id"]
        run = await call(client, "workflow_execute", {
            "workflow_id": wf, "input_data": {"symbols": ["AAPL"], "test_mode": True}, "async": False},
            ("status", "success", "started_at", "workflow_id", "execution_id", "workflow_name", "completed_steps"))
        await call(client, "workflow_queue_status", {"include_messages": True}, ("queues", "total_messages",
                                                                                 "processing_rate"))
        await call(client, "workflow_metrics", {"workflow_id": wf}, ("executions", "success_rate",
                                                                    "average_duration", "steps_performance"))
        await call(client, "workflow_audit_trail", {"execution_id": run["execution_id"]}, ("count", "total"))
        await call(client, "workflow_update", {"workflow_id": wf, "updates": {
            "steps[2].params.threshold": 0.9, "steps[3].params.risk_limit": 0.01}}, ("version", "changed"))
        await call(client, "workflow_status", {"workflow_id": wf}, ("status", "version", "triggers"))
        await call(client, "workflow_queue_status", {"queue_name": "dead-letter-queue"}, ("queues",))
        await call(client, "workflow_agent_assign", {"workflow_id": wf, "task_id": "market_analysis",
                                                     "agent_type": "analyst"}, ("assignment",))
    print("\nmcp walkthrough: every call answered")


if __name__ == "__main__":
    anyio.run(main)
