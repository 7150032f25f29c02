"""The specification's calls through HTTP, with its exact arguments, on a real Celery worker.

create -> execute (async=false) -> status -> update (the spec's paths) -> audit trail -> metrics
-> queue status, then the trading endpoints and /metrics show the order the workflow placed.
"""
from __future__ import annotations

import pytest

from tests.support.api import API, assert_error
from trading_app.models import Order

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.slow]

SPEC_CREATE = {
    "name": "alpaca-trading-workflow",
    "description": "Automated trading workflow with news analysis",
    "steps": [
        {"name": "analyze_news", "type": "news_analysis", "params": {"symbols": ["AAPL", "MSFT"]}},
        {"name": "market_analysis", "type": "technical_analysis", "params": {"indicators": ["RSI", "MACD"]}},
        {"name": "generate_signals", "type": "signal_generation", "params": {"threshold": 0.7}},
        {"name": "execute_trades", "type": "trade_execution", "params": {"risk_limit": 0.02}},
    ],
    "triggers": [{"type": "schedule", "cron": "0 9 * * 1-5"}],
}


def test_spec_calls_through_http(celery_worker, bullish_market, api_a, api_b, api_staff):
    created = api_a.post(f"{API}/workflows/", SPEC_CREATE, format="json")
    assert created.status_code == 201, created.content
    body = created.json()
    assert body["success"] is True and body["status"] == "active" and body["priority"] == 5
    assert body["name"] == "alpaca-trading-workflow"
    assert body["description"] == "Automated trading workflow with news analysis"
    assert body["features"] == ["scheduling", "retries"]  # computed from the definition (docs/api.md)
    workflow_id = body["workflow_id"]

    # execute, exactly as the spec: input_data={"symbols": ["AAPL"], "test_mode": true}, async=False
    executed = api_a.post(f"{API}/workflows/{workflow_id}/execute/",
                          {"input_data": {"symbols": ["AAPL"], "test_mode": True}, "async": False}, format="json")
    assert executed.status_code == 200, executed.content
    run = executed.json()
    assert run["success"] is True and run["status"] == "succeeded", run
    assert run["workflow_id"] == workflow_id and run["workflow_name"] == "alpaca-trading-workflow"
    assert run["started_at"] and run["execution_id"]
    assert list(run["steps"]) == ["analyze_news", "market_analysis", "generate_signals", "execute_trades"]
    execution_id = run["execution_id"]

    # status: of the workflow (its triggers) and of the execution
    status = api_a.get(f"{API}/workflows/{workflow_id}/status/").json()
    assert status["success"] and status["triggers"][0]["type"] == "schedule"
    assert status["triggers"][0].get("next_run_at")
    execution = api_a.get(f"{API}/executions/{execution_id}/?include_metrics=true").json()
    assert execution["status"] == "succeeded" and execution["completed_steps"]
    assert_error(api_b.get(f"{API}/executions/{execution_id}/"), 404, "EXECUTION_NOT_FOUND")

    # update with the spec's paths (high volatility, then back)
    for threshold, risk in ((0.9, 0.01), (0.7, 0.02)):
        updated = api_a.post(f"{API}/workflows/{workflow_id}/update/", {"updates": {
            "steps[2].params.threshold": threshold, "steps[3].params.risk_limit": risk}}, format="json")
        assert updated.status_code == 200, updated.content
        assert sorted(updated.json()["changed"]) == ["steps[2].params.threshold", "steps[3].params.risk_limit"]
    detail = api_a.get(f"{API}/workflows/{workflow_id}/").json()
    assert detail["version"] == 3
    bad = api_a.post(f"{API}/workflows/{workflow_id}/update/", {"updates": {"steps[2].params.threshold": "high"}},
                     format="json")
    assert bad.status_code in (400, 422)
    assert_error(bad, bad.status_code)
    assert api_a.get(f"{API}/workflows/{workflow_id}/").json()["version"] == 3  # nothing half-stored

    # audit trail of the execution: workflow_started then a step_completed per step, with results
    trail = api_a.get(f"{API}/executions/{execution_id}/audit/?limit=100").json()
    events = trail["events"]
    assert events[0]["event"] == "workflow_started" or any(e["event"] == "workflow_started" for e in events)
    completed = {e["step"]: e["result"] for e in events if e["event"] == "step_completed"}
    assert completed["generate_signals"]["signal"] == "BUY"
    assert completed["execute_trades"]["status"] == "filled"
    assert api_a.get(f"{API}/workflows/{workflow_id}/audit/").json()["total"] >= len(events)

    # metrics of the workflow and of the system
    metrics = api_a.get(f"{API}/workflows/{workflow_id}/metrics/").json()
    assert metrics["executions"] == 1 and metrics["success_rate"] == 1.0
    assert set(metrics["steps_performance"]) == {"analyze_news", "market_analysis", "generate_signals",
                                                 "execute_trades"}
    assert api_a.get(f"{API}/metrics/").json()["system"]["trades_executed"] >= 1

    # queue status, as the spec calls it: include_messages=True
    queues = api_a.get(f"{API}/queues/?include_messages=true")
    if queues.status_code == 200:
        assert queues.json()["success"] and "total_messages" in queues.json()

    # the order the workflow placed, through the trading endpoints
    order_id = completed["execute_trades"]["order_id"]
    orders = api_a.get(f"{API}/trading/orders/?symbol=AAPL").json()
    assert order_id in [o["order_id"] for o in orders["orders"]]
    assert api_staff.get(f"{API}/trading/orders/?status=filled").json()["total"] >= 1
    positions = api_a.get(f"{API}/trading/positions/").json()["positions"]
    assert any(p["symbol"] == "AAPL" for p in positions)
    assert Order.objects.get(pk=order_id).execution_id == execution_id

    # Prometheus: executions, step durations, orders
    text = api_staff.get("/metrics").content.decode()
    assert 'nexus_executions{status="succeeded"} 1.0' in text
    assert 'nexus_step_duration_seconds_count{step_type="trade_execution"} 1.0' in text
    assert "# TYPE nexus_trades_executed gauge" in text and "nexus_trades_executed 1.0" in text
    assert 'nexus_orders{broker="paper",side="buy",status="filled"}' in text
