"""The risk governor end to end on a real Celery worker (Redis broker, no eager mode): the
specification's Exercise 2 (risk-management-workflow) reads the governor's state, a daily-loss
breach halts the account and the next BUY of any workflow is refused (audited in its trail), a
reduce-only account lets a reducing SELL through, and an operator's reset is audited."""
from __future__ import annotations

import pytest

from tests.support.api import client_for
from trading_app import accounts
from trading_app.brokers import OrderRequest
from trading_app.examples import EXAMPLES
from trading_app.models import Order, RiskState
from trading_app.paper import PaperBroker
from trading_app.providers import get_market_data, simulated
from workflows_app import operations
from workflows_app.models import AuditEvent

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.slow]
TEST = {"test_mode": True}


@pytest.fixture(autouse=True)
def _market(settings):
    settings.NEXUS_SIM_NOW = "2025-09-17T17:00:00Z"
    settings.NEXUS_RISK_MAX_DAILY_LOSS = 0.02


def run(steps: list, name: str) -> dict:
    created = operations.workflow_create(name=name, steps=steps)
    reply = operations.workflow_execute(workflow_id=created["workflow_id"], input_data=TEST, **{"async": False})
    return {**reply, "why": (reply.get("error"), {k: v["status"] for k, v in reply.get("steps", {}).items()})}


def exercise_2() -> dict:
    definition = next(d for d in EXAMPLES if d["name"] == "risk-management-workflow")
    wf = operations.workflow_list(limit=100)["workflows"]
    found = next((w for w in wf if w["name"] == definition["name"]), None)
    wid = found["workflow_id"] if found else operations.workflow_create(**definition)["workflow_id"]
    reply = operations.workflow_execute(workflow_id=wid, input_data=TEST, **{"async": False})
    assert reply["status"] == "succeeded", (reply.get("error"), {k: v["status"] for k, v in reply["steps"].items()})
    return reply


def seed_then_lose() -> int:
    """An 8 % MSFT position on the house account, then MSFT falls 40 %: a 3.2 % daily loss (limit 2 %)."""
    broker = PaperBroker(market_data=get_market_data(True), account=accounts.house_account())
    qty = int(0.08 * 100_000 / broker.market_data.latest_price("MSFT"))
    broker.submit_order(OrderRequest(symbol="MSFT", side="buy", qty=qty, client_order_id="seed-msft"))
    simulated.inject_jump("MSFT", -0.4)
    return qty


def refused_in_trail(reply: dict) -> list:
    return [e for e in operations.workflow_audit_trail(execution_id=reply["execution_id"], limit=200)["events"]
            if e["event"] == "risk_decision"]


def test_daily_loss_halts_the_account_and_any_workflows_buy_is_refused(celery_worker):
    seed_then_lose()
    first = exercise_2()["steps"]["monitor_exposure"]["result"]
    assert first["governor_state"] == "active" and first["governor"]["streaks"] == {"daily_loss": 1}
    second = exercise_2()
    monitor = second["steps"]["monitor_exposure"]["result"]
    assert monitor["governor_state"] == "halted" and monitor["risk_level"] == "high"
    assert monitor["governor"]["limits"]["daily_loss"]["headroom"] < 0
    assert second["steps"]["resize_positions"]["status"] == "skipped"  # Exercise 2 obeys the governor
    assert RiskState.objects.get(account=accounts.house_account()).breached_limit == "daily_loss"

    trade = run([{"name": "buy", "type": "trade_execution",
                  "params": {"signal": "BUY", "symbols": ["AAPL"], "stop_loss_pct": 0.02}}], "trader")
    saga = run([{"name": "buy", "type": "place_order", "params": {"symbol": "AAPL", "qty": 1}}], "saga-buyer")
    for reply in (trade, saga):
        assert reply["status"] == "failed" and reply["error"]["error_class"] == "risk_limit_breach", reply
        decisions = refused_in_trail(reply)  # the refusal is in the trail of the execution that asked
        assert [(d["decision"], d["step"], d["state"]) for d in decisions] == [("refused", "buy", "halted")]
    assert not Order.objects.filter(symbol="AAPL").exists()


def test_reduce_only_lets_a_reducing_sell_through_and_a_reset_is_audited(celery_worker, settings, staff):
    settings.NEXUS_RISK_ACTIONS = "daily_loss=reduce_only"
    from trading_app.tasks import risk_sweep

    qty = seed_then_lose()
    for _ in range(2):  # the beat's sweep, on the worker: two consecutive readings confirm the loss
        swept = risk_sweep.delay().get(timeout=120)
    assert swept["accounts"]["default"]["state"] == "reduce_only", swept
    buy = run([{"name": "buy", "type": "place_order", "params": {"symbol": "AAPL", "qty": 1}}], "buyer")
    assert buy["status"] == "failed" and buy["error"]["error_class"] == "risk_limit_breach", buy
    sell = run([{"name": "sell", "type": "place_order", "params": {"symbol": "MSFT", "side": "sell",
                                                                   "qty": qty // 2}}], "seller")
    assert sell["status"] == "succeeded" and sell["steps"]["sell"]["result"]["status"] == "filled", sell["why"]
    assert Order.objects.filter(symbol="MSFT", side="sell", status="filled").count() == 1

    reply = client_for(staff).post("/api/v1/trading/risk/reset/", {"account": "default", "reason": "loss reviewed",
                                                                   "rebaseline": True}, format="json")
    assert reply.status_code == 200, reply.content
    assert reply.json()["state"] == "active" and reply.json()["previous_state"] == "reduce_only"
    audit = AuditEvent.objects.get(event="risk_reset")
    assert (audit.data["by"], audit.data["reason"]) == ("root", "loss reviewed")
    assert RiskState.objects.get(account=accounts.house_account()).reset_by == "root"
    again = run([{"name": "buy", "type": "place_order", "params": {"symbol": "AAPL", "qty": 1}}], "buyer-2")
    assert again["status"] == "succeeded", again
