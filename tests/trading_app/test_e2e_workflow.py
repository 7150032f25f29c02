"""The specification's first workflow, end to end on a real Celery worker (Redis broker, no eager mode)."""
import pytest

from trading_app.models import Order

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.slow]

SPEC_STEPS = [
    {"name": "analyze_news", "type": "news_analysis", "params": {"symbols": ["AAPL", "MSFT"]}},
    {"name": "market_analysis", "type": "technical_analysis", "params": {"indicators": ["RSI", "MACD"]}},
    {"name": "generate_signals", "type": "signal_generation", "params": {"threshold": 0.7}},
    {"name": "execute_trades", "type": "trade_execution", "params": {"risk_limit": 0.02}},
]


def test_spec_trading_workflow_end_to_end(celery_worker, bullish_market):
    from workflows_app import operations

    created = operations.workflow_create(
        name="alpaca-trading-workflow", description="Automated trading workflow with news analysis",
        steps=SPEC_STEPS, triggers=[{"type": "schedule", "cron": "0 9 * * 1-5"}])
    assert created["success"] and created["status"] == "active"
    reply = operations.workflow_execute(workflow_id=created["workflow_id"],
                                        input_data={"symbols": ["AAPL"], "test_mode": True}, **{"async": False})
    assert reply["status"] == "succeeded", reply
    assert list(reply["steps"]) == ["analyze_news", "market_analysis", "generate_signals", "execute_trades"]

    trail = operations.workflow_audit_trail(execution_id=reply["execution_id"], limit=100)
    completed = {e["step"]: e["result"] for e in trail["events"] if e["event"] == "step_completed"}
    assert -1.0 <= completed["analyze_news"]["sentiment"] <= 1.0
    assert isinstance(completed["market_analysis"]["rsi"], float)
    assert completed["market_analysis"]["macd"] in ("bullish", "bearish")
    assert completed["generate_signals"]["signal"] == "BUY"
    assert completed["generate_signals"]["confidence"] >= 0.7
    trade = completed["execute_trades"]
    assert trade["status"] == "filled" and trade["order_id"]
    assert any(e["event"] == "workflow_started" for e in trail["events"])
    submitted = [e for e in trail["events"] if e["event"] == "order_submitted"]
    assert len(submitted) == 1 and submitted[0]["step"] == "execute_trades"

    order = Order.objects.get(pk=trade["order_id"])
    assert order.test_mode and order.execution_id == reply["execution_id"] and order.broker == "paper"
    assert order.client_order_id == trade["client_order_id"]
    assert Order.objects.filter(parent__isnull=True).count() == 1

    metrics = operations.workflow_metrics(workflow_id=created["workflow_id"])
    assert metrics["system"]["trades_executed"] >= 1
    misses = metrics["system"]["provider_cache_misses"]
    assert misses >= 2

    # a second execution within the TTLs fetches news and bars from the cache
    again = operations.workflow_execute(workflow_id=created["workflow_id"],
                                        input_data={"symbols": ["AAPL"], "test_mode": True}, **{"async": False})
    assert again["status"] == "succeeded", again
    system = operations.workflow_metrics(workflow_id=created["workflow_id"])["system"]
    assert system["provider_cache_hits"] >= 2 and system["provider_cache_misses"] == misses


def test_trading_saga_compensates_in_reverse_on_a_real_worker(celery_worker, settings):
    """The specification's saga (steps named only by name + compensate), then a step that fails for good."""
    from trading_app.models import FundsReservation, Notification, PaperAccount, PortfolioEntry, Position
    from workflows_app import operations

    settings.NEXUS_SIM_NOW = "2025-09-17T17:00:00Z"
    created = operations.workflow_create(name="trading-saga", steps=[
        {"name": "reserve_funds", "compensate": "release_funds", "params": {"amount": 5000}},
        {"name": "place_order", "compensate": "cancel_order"},
        {"name": "update_portfolio", "compensate": "revert_portfolio"},
        {"name": "send_notification", "compensate": "send_failure_alert"},
        {"name": "broker_confirmation", "type": "test_fail", "params": {"transient": False}},
    ])
    reply = operations.workflow_execute(workflow_id=created["workflow_id"],
                                        input_data={"symbols": ["MSFT"], "test_mode": True}, **{"async": False})
    assert reply["status"] == "compensated", reply
    trail = operations.workflow_audit_trail(execution_id=reply["execution_id"], limit=200)["events"]
    comps = [e["step"] for e in trail if e["event"] == "compensation_completed"]
    assert comps == ["send_notification", "update_portfolio", "place_order", "reserve_funds"]
    assert Position.objects.get(symbol="MSFT").qty == 0  # the filled order was flattened
    assert PortfolioEntry.objects.get().status == "reverted"
    assert Notification.objects.filter(kind="failure_alert").count() == 1
    assert FundsReservation.objects.get().status == "consumed"
    assert PaperAccount.objects.get().reserved_cash == 0


def test_a_retried_trade_step_never_places_a_second_order(celery_worker, bullish_market, monkeypatch):
    """The order is placed, then the step fails transiently (as if the worker lost its reply): the engine
    retries it and the retry finds the order by its client_order_id instead of sending another."""
    from trading_app.steps import orders
    from workflows_app import operations
    from workflows_app.errors import TransientStepError

    real = orders.audit_order
    calls = {"n": 0}

    def flaky_after_submit(ctx, order, **extra):
        calls["n"] += 1
        real(ctx, order, **extra)
        if calls["n"] == 1:
            raise TransientStepError("connection reset after the order was sent", error_class="connection")
        return order

    monkeypatch.setattr(orders, "audit_order", flaky_after_submit)
    created = operations.workflow_create(name="retry-trade", steps=[
        *SPEC_STEPS[:3],
        {**SPEC_STEPS[3], "retry": {"max_retries": 3, "backoff": 0.05, "backoff_max": 0.1, "jitter": False}},
    ])
    reply = operations.workflow_execute(workflow_id=created["workflow_id"],
                                        input_data={"symbols": ["AAPL"], "test_mode": True}, **{"async": False})
    assert reply["status"] == "succeeded", reply
    assert Order.objects.filter(parent__isnull=True).count() == 1
    trail = operations.workflow_audit_trail(execution_id=reply["execution_id"], limit=200)["events"]
    events = [e["event"] for e in trail if e.get("step") == "execute_trades"]
    assert "order_submitted" in events and "order_resolved" in events
    final = next(e for e in trail if e["event"] == "step_completed" and e["step"] == "execute_trades")
    assert final["result"]["status"] == "filled" and final["result"]["order_id"] == str(Order.objects.get(
        parent__isnull=True).pk)


def test_kill_switch_fails_the_trade_step_for_good(celery_worker, bullish_market):
    from trading_app.killswitch import set_kill_switch
    from workflows_app import operations

    set_kill_switch(True, "end-to-end drill")
    created = operations.workflow_create(name="killed", steps=SPEC_STEPS)
    reply = operations.workflow_execute(workflow_id=created["workflow_id"],
                                        input_data={"symbols": ["AAPL"], "test_mode": True}, **{"async": False})
    assert reply["status"] == "failed", reply
    assert reply["error"]["error_class"] == "kill_switch"
    assert not Order.objects.exists()
    letters = operations.dead_letters(error_class="kill_switch")["dead_letters"]
    assert [(d["step"], d["attempts"]) for d in letters] == [("execute_trades", 1)]  # permanent: not retried


def test_exposure_monitoring_hedges_through_conditional_actions(celery_worker, settings):
    """Exercise 2 of the specification: exposure monitoring -> automatic hedge + alert (named actions)."""
    from trading_app.brokers import OrderRequest
    from trading_app.models import Notification
    from trading_app.paper import PaperBroker
    from workflows_app import operations

    settings.NEXUS_SIM_NOW = "2025-09-17T17:00:00Z"
    broker = PaperBroker()
    qty = int(0.08 * float(broker.get_account()["equity"]) / broker.market_data.latest_price("MSFT"))
    broker.submit_order(OrderRequest(symbol="MSFT", side="buy", qty=qty, client_order_id="seed-msft"))  # ~8 %
    created = operations.workflow_create(name="risk-monitor", steps=[
        {"name": "exposure", "type": "risk_check", "params": {"max_position_pct": 0.05}},
        {"name": "urgent_handler", "type": "conditional", "condition": "risk_level == 'high'",
         "actions": ["immediate_hedge", "alert_user"]},
    ])
    reply = operations.workflow_execute(workflow_id=created["workflow_id"], input_data={"test_mode": True},
                                        **{"async": False})
    assert reply["status"] == "succeeded", reply
    assert reply["steps"]["exposure"]["result"]["breaches"][0]["symbol"] == "MSFT"
    actions = reply["steps"]["urgent_handler"]["result"]["actions"]
    assert actions["immediate_hedge"]["status"] == "hedged" and actions["immediate_hedge"]["orders"][0]["symbol"] == "SH"
    assert Order.objects.filter(symbol="SH", status="filled").count() == 1
    assert Notification.objects.filter(kind="alert").count() == 1
