"""Every scenario of the specification end to end on a real Celery worker (real Redis, no eager mode),
with condensed time, asserting outcomes and audit trails; then the demo mode's promises."""
from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta

import pytest

from tests.support.waiting import wait_for
from trading_app import demo
from trading_app import pollers as market
from trading_app.examples import EXAMPLES
from trading_app.providers import simulated
from workflows_app import operations, queues
from workflows_app.circuit import redis_client
from workflows_app.engine import wait_until_final
from workflows_app.models import AuditEvent, DeadLetter, Execution, StepRun
from workflows_app.services import deadletters, events
from workflows_app.services import triggers as engine

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.slow]
EXAMPLE = {d["name"]: d for d in EXAMPLES}


@pytest.fixture(autouse=True)
def _clean_state(redis_test_client):
    """Fresh trigger states, cooldowns, breakers and demo counters (ids restart with every test), and
    a new trigger-index version (the worker's cached index belongs to the previous test's rows)."""
    for pattern in ("nexus:triggers:*:cooldown", "nexus:circuit:*", "nexus:demo:*"):
        for key in redis_test_client.scan_iter(match=pattern):
            redis_test_client.delete(key)
    redis_test_client.delete(market.NEWS_CURSOR_KEY)
    engine.reset_state()
    engine.bump_index_version()
    queues.ensure_default_queues()
    yield


def _create(name: str, **overrides) -> str:
    return operations.workflow_create(**{**EXAMPLE[name], **overrides})["workflow_id"]


def _trail(execution_id) -> list[dict]:
    return operations.workflow_audit_trail(execution_id=str(execution_id), limit=500)["events"]


def _names(trail: list[dict], event: str) -> list[str]:
    return [e.get("step") for e in trail if e["event"] == event]


def _final(workflow_id, timeout: float = 120, **filters) -> Execution:
    execution = wait_for(lambda: Execution.objects.filter(workflow_id=workflow_id, **filters).order_by(
        "queued_at").first(), timeout=timeout, message=f"an execution of {workflow_id} {filters}")
    return wait_until_final(execution.id, timeout)


def _drained():
    wait_for(lambda: queues.status("events")["total_messages"] == 0, timeout=120, message="the events queue drained")


def _age_breaker(key: str, seconds: float) -> None:
    """Drive an open breaker's clock: move the moment it opened back by `seconds`, as if they had passed.
    (A wall-clock reset_timeout short enough for a test races the worker on a busy machine.)"""
    from workflows_app.circuit import CircuitBreaker

    state_key = CircuitBreaker(key)._state_key
    opened_at = float(redis_client().hget(state_key, "opened_at") or 0)
    assert opened_at, f"breaker {key} is not open"
    redis_client().hset(state_key, "opened_at", opened_at - seconds)


def _tick(symbol: str, price: float, at: datetime, **extra) -> dict:
    return market.tick_event({"symbol": symbol, "price": price, "size": 100, "timestamp": at.isoformat()}, **extra)


# --- event-driven-trader ----------------------------------------------------------------------------
def test_event_driven_trader_classifies_a_crafted_event_and_runs_the_right_handler(celery_worker, settings):
    settings.NEXUS_SIM_NOW = "2025-09-17T17:00:00Z"
    workflow_id = _create("event-driven-trader", triggers=[
        {"type": "volatility", "symbol": "AAPL", "vix_threshold": 30, "cooldown": 0},
        {"type": "breaking_news", "sources": ["Reuters", "Bloomberg"], "priority": "high", "cooldown": 0}])
    at = datetime.now(UTC).replace(microsecond=0)
    # a calm tick, then VIX 45 (severity 0.75: high priority): the volatility trigger fires once, through
    # the events queue and its consumer; the classifier calls it urgent
    events.ingest_many([_tick("AAPL", 230.0, at, vix=18.0), _tick("AAPL", 230.5, at + timedelta(seconds=1), vix=45.0)])
    urgent = _final(workflow_id)
    assert urgent.status == "succeeded", urgent.error
    assert urgent.trigger == "volatility" and urgent.input_data["event"]["vix"] == 45.0
    assert urgent.input_data["event"]["priority"] == "high"
    ctx = urgent.context
    assert ctx["event_classifier"]["category"] == "urgent"
    assert set(ctx["urgent_handler"]["actions"]) == {"immediate_hedge", "alert_user"}
    assert ctx["normal_handler"] == {"matched": False, "condition": "category == 'normal'"}
    trail = _trail(urgent.id)
    assert AuditEvent.objects.filter(event="trigger_fired", execution=urgent).count() == 1
    assert {e.get("action") for e in trail if e["event"] == "action_completed"} == {"immediate_hedge", "alert_user"}
    assert _names(trail, "step_skipped") == ["normal_handler"]

    # VIX calms down, then rises to 36 (severity 0.6: normal priority): a new edge, the normal handler
    events.ingest_many([_tick("AAPL", 230.0, at + timedelta(seconds=2), vix=18.0),
                        _tick("AAPL", 230.2, at + timedelta(seconds=3), vix=36.0)])
    normal = wait_for(lambda: Execution.objects.filter(workflow_id=workflow_id).exclude(pk=urgent.pk).first(),
                      timeout=120, message="the second firing")
    normal = wait_until_final(normal.id, 120)
    assert normal.status == "succeeded", normal.error
    assert normal.input_data["event"]["vix"] == 36.0 and normal.input_data["event"]["priority"] == "normal"
    assert normal.context["event_classifier"]["category"] == "normal"
    trail = _trail(normal.id)
    done = {e.get("action"): e.get("result") for e in trail if e["event"] == "action_completed"}
    assert set(done) == {"analyze", "queue_for_execution"}
    assert done["queue_for_execution"]["queued"] is True and done["queue_for_execution"]["queue"] == "trading-signals"
    assert _names(trail, "step_skipped") == ["urgent_handler"]
    assert queues.status("trading-signals")["total_messages"] >= 1


# --- protected-trader -------------------------------------------------------------------------------
def test_protected_trader_breaker_closed_open_half_open_closed(celery_worker, settings):
    settings.NEXUS_SIM_NOW = "2025-09-17T17:00:00Z"
    # Long windows, so nothing expires on its own however slow the machine; the test ages the breaker.
    breaker = {"failure_threshold": 2, "timeout_duration": 3600, "reset_timeout": 3600}
    steps = [{**s, "params": breaker} if s["type"] == "circuit_breaker" else s for s in EXAMPLE["protected-trader"]["steps"]]
    workflow_id = _create("protected-trader", steps=steps)

    def execute(symbol: str):
        reply = operations.workflow_execute(workflow_id=workflow_id, input_data={"symbols": [symbol], "test_mode": True},
                                            **{"async": False})
        return reply, _trail(reply["execution_id"])

    reply, trail = execute("AAPL")  # closed: the trade action runs (analysis, then an order or a HOLD)
    assert reply["status"] == "succeeded", reply
    assert reply["steps"]["check_circuit"]["result"]["circuit_status"] == "closed"
    traded = [e for e in trail if e["event"] == "action_completed"]
    assert [e["action"] for e in traded] == ["trade"]
    assert traded[0]["result"]["broker"] == "paper" and traded[0]["result"]["symbol"] == "AAPL"

    for _ in range(2):  # forced failures: the trade action fails for good (an unlisted symbol)
        reply, trail = execute("ZZZZ")
        assert reply["status"] == "failed" and reply["error"]["error_class"] == "invalid_symbol"
        assert any(e["event"] == "circuit_failure" for e in trail)
    assert [e.get("state") for e in trail if e["event"] == "circuit_failure"] == ["open"]

    reply, trail = execute("ZZZZ")  # open: the action is skipped, nothing is attempted
    assert reply["status"] == "succeeded"
    assert reply["steps"]["check_circuit"]["result"]["circuit_status"] == "open"
    assert reply["steps"]["execute_if_open"]["status"] == "skipped"
    assert not [e for e in trail if e["event"] in ("action_completed", "circuit_failure")]

    _age_breaker(reply["steps"]["check_circuit"]["result"]["circuit"], breaker["reset_timeout"])
    # half-open: one trial goes through, and it succeeds
    reply, trail = execute("AAPL")
    assert reply["status"] == "succeeded", reply
    assert reply["steps"]["check_circuit"]["result"]["trial"] is True
    assert [e.get("state") for e in trail if e["event"] == "circuit_success"] == ["closed"]
    reply, _ = execute("AAPL")
    result = reply["steps"]["check_circuit"]["result"]
    assert result["circuit_status"] == "closed" and result["state"] == "closed" and result["trial"] is False


# --- trading-saga -----------------------------------------------------------------------------------
def test_trading_saga_success_fills_and_failure_compensates_in_reverse(celery_worker, settings):
    from trading_app.models import FundsReservation, Order, PaperAccount, PortfolioEntry, Position, RiskEvent

    settings.NEXUS_SIM_NOW = "2025-09-17T17:00:00Z"
    steps = [{**s, "params": {"amount": 3000}} if s["name"] == "reserve_funds" else s
             for s in EXAMPLE["trading-saga"]["steps"]]
    ok_id = _create("trading-saga", steps=steps)
    ok = operations.workflow_execute(workflow_id=ok_id, input_data={"symbols": ["MSFT"], "test_mode": True},
                                     **{"async": False})
    assert ok["status"] == "succeeded", ok
    order = Order.objects.get(client_order_id=ok["steps"]["place_order"]["result"]["client_order_id"])
    assert order.status == "filled" and order.broker == "paper" and order.filled_qty > 0
    assert Position.objects.get(symbol="MSFT").qty == order.filled_qty
    assert PortfolioEntry.objects.get().status == "applied"
    assert [e["step"] for e in _trail(ok["execution_id"]) if e["event"] == "step_completed"] == [
        "reserve_funds", "place_order", "update_portfolio", "send_notification"]

    # failure path: a last order is refused (by the risk governor, before the broker: far above every
    # limit); everything done is undone, newest first
    account = PaperAccount.objects.get()
    cash_before, reserved_before = account.cash, account.reserved_cash
    msft_before = Position.objects.get(symbol="MSFT").qty
    bad_id = operations.workflow_create(name="trading-saga-rejected", steps=[
        *steps, {"name": "place_hedge_leg", "type": "place_order", "params": {"symbol": "SPY", "qty": 1000000}}])[
        "workflow_id"]
    bad = operations.workflow_execute(workflow_id=bad_id, input_data={"symbols": ["MSFT"], "test_mode": True},
                                      **{"async": False})
    assert bad["status"] == "compensated", bad
    assert bad["error"]["step"] == "place_hedge_leg" and bad["error"]["error_class"] == "risk_limit_breach"
    trail = _trail(bad["execution_id"])
    assert _names(trail, "compensation_completed") == ["send_notification", "update_portfolio", "place_order",
                                                       "reserve_funds"]
    comp = {e["step"]: e for e in trail if e["event"] == "compensation_completed"}
    assert comp["place_order"]["compensation"] == "cancel_order"
    assert comp["place_order"]["result"]["action"] == "flattened"
    assert not Order.objects.filter(symbol="SPY").exists()
    assert RiskEvent.objects.get(step="place_hedge_leg", execution_id=bad["execution_id"]).decision == "refused"
    assert Position.objects.get(symbol="MSFT").qty == msft_before  # the filled buy was flattened
    assert PortfolioEntry.objects.filter(status="reverted").count() == 1
    account.refresh_from_db()
    assert account.reserved_cash == reserved_before == 0
    # back where it started, less the round trip's slippage and commissions (a few dollars)
    assert abs(account.cash - cash_before) < 50
    assert FundsReservation.objects.filter(status="consumed").count() == 2
    letter = DeadLetter.objects.get(execution_id=bad["execution_id"])
    assert letter.error_class == "risk_limit_breach" and letter.step_name == "place_hedge_leg"


# --- master-trader ----------------------------------------------------------------------------------
def test_master_trader_runs_three_children_in_order_and_gets_their_outputs(celery_worker, settings):
    settings.NEXUS_SIM_NOW = "2025-09-17T17:00:00Z"
    for name in ("scanner-workflow", "analyzer-workflow", "executor-workflow"):
        _create(name)
    parent_id = _create("master-trader")
    reply = operations.workflow_execute(workflow_id=parent_id, input_data={"test_mode": True}, **{"async": False})
    assert reply["status"] == "succeeded", reply
    parent = Execution.objects.get(pk=reply["execution_id"])
    children = list(Execution.objects.filter(parent=parent).order_by("queued_at"))
    assert [c.workflow.name for c in children] == ["scanner-workflow", "analyzer-workflow", "executor-workflow"]
    assert [c.parent_step for c in children] == ["market_scan", "analyze_opportunities", "execute_best"]
    assert all(c.status == "succeeded" and c.trigger == "subprocess" for c in children)
    assert children[0].finished_at <= children[1].started_at and children[1].finished_at <= children[2].started_at
    scanned = children[0].context["scan"]["symbols"]
    assert len(scanned) == 3
    assert parent.context["symbols"] == scanned  # the scanner's output reached the parent ...
    assert children[1].input_data["symbols"] == scanned  # ... and the next child through it
    signal = StepRun.objects.get(execution=children[1], step_name="generate_signal").result
    assert set(signal["by_symbol"]) == set(scanned)
    assert "generate_signal" in parent.context and "execute" in parent.context
    for step, child in zip(["market_scan", "analyze_opportunities", "execute_best"], children, strict=True):
        assert parent.context[step]["child_execution_id"] == str(child.id)
    trail = _trail(parent.id)
    assert _names(trail, "step_completed") == ["market_scan", "analyze_opportunities", "execute_best"]


# --- multi-symbol-workflow --------------------------------------------------------------------------
def test_multi_symbol_workflow_fires_once_for_the_symbol_that_moved_two_percent(celery_worker, settings):
    settings.NEXUS_SIM_NOW = "2025-09-17T17:00:00Z"
    workflow_id = _create("multi-symbol-workflow")
    md = simulated.SimulatedMarketData()
    start = datetime.now(UTC).replace(microsecond=0) - timedelta(seconds=30)

    symbols = [t["symbol"] for t in EXAMPLE["multi-symbol-workflow"]["triggers"]]

    def feed(second: int) -> list[dict]:
        return [_tick(s, md.latest_price(s), start + timedelta(seconds=second)) for s in symbols]

    batch = feed(0)
    simulated.inject_jump("NVDA", 0.0205)  # at the pinned simulator time: every later NVDA price is 2 % higher
    md = simulated.SimulatedMarketData()
    for second in (1, 2, 3):
        batch += feed(second)
    assert len(batch) == 40
    events.ingest_many(batch)
    execution = _final(workflow_id)
    _drained()
    time.sleep(0.5)
    assert Execution.objects.filter(workflow_id=workflow_id).count() == 1  # once, not once per tick
    assert execution.status == "succeeded", execution.error
    event = execution.input_data["event"]
    assert execution.trigger == "price_change" and event["symbol"] == "NVDA"
    assert event["detail"]["change"] >= 0.02 - 1e-6 and event["trigger"]["type"] == "price_change"
    assert execution.input_data["symbols"] == ["NVDA"]
    ctx = execution.context
    assert list(ctx["news_context"]["by_symbol"]) == ["NVDA"] and ctx["decide"]["symbol"] == "NVDA"
    assert ctx["act"]["symbol"] == "NVDA" and ctx["act"]["risk_limit"] == 0.01
    fired = AuditEvent.objects.filter(event="trigger_fired", workflow_id=workflow_id)
    assert fired.count() == 1 and fired.get().execution_id == execution.id
    assert _names(_trail(execution.id), "step_completed") == ["news_context", "technicals", "decide", "act"]


# --- risk-management-workflow -----------------------------------------------------------------------
def test_risk_management_finds_a_breach_hedges_resizes_and_manages_stops(celery_worker, settings):
    from trading_app.brokers import OrderRequest
    from trading_app.models import Order
    from trading_app.paper import PaperBroker

    settings.NEXUS_SIM_NOW = "2025-09-17T17:00:00Z"
    broker = PaperBroker()
    price = broker.market_data.latest_price("NVDA")
    qty = int(25_000 // price)  # ~25 % of equity in one name: over the 10 % per-symbol cap
    settings.NEXUS_MAX_POSITION_PCT = 0.30  # bought under a looser ceiling, which the operator then tightened
    broker.submit_order(OrderRequest(symbol="NVDA", side="buy", qty=qty, client_order_id="crafted-nvda",
                                     test_mode=True))
    settings.NEXUS_MAX_POSITION_PCT = 0.10
    workflow_id = _create("risk-management-workflow")
    reply = operations.workflow_execute(workflow_id=workflow_id, input_data={"symbols": ["NVDA"], "test_mode": True},
                                        **{"async": False})
    assert reply["status"] == "succeeded", reply
    steps = {k: v["result"] for k, v in reply["steps"].items()}
    assert steps["monitor_exposure"]["status"] == "breach" and steps["monitor_exposure"]["breaches"]
    hedge = steps["auto_hedge"]
    assert hedge["status"] == "hedged" and hedge["method"] == "inverse_etf"
    assert Order.objects.get(pk=hedge["order_id"]).symbol == "SH"
    assert Order.objects.get(pk=hedge["order_id"]).status == "filled"
    assert steps["resize_positions"]["symbol"] == "NVDA" and steps["resize_positions"]["risk_limit"] == 0.01
    assert steps["resize_positions"]["qty"] >= 0
    stops = {a["symbol"]: a for a in steps["manage_stops"]["actions"]}
    assert stops["NVDA"]["action"] == "attached" and stops["SH"]["action"] == "attached"
    assert steps["manage_stops"]["mode"] == "trail"
    trail = _trail(reply["execution_id"])
    assert _names(trail, "step_completed") == ["monitor_exposure", "auto_hedge", "resize_positions", "manage_stops"]

    # no breach, no hedge: the condition skips it (audited as skipped)
    Order.objects.all().delete()
    from trading_app.models import Position

    Position.objects.all().delete()
    calm = operations.workflow_execute(workflow_id=workflow_id, input_data={"symbols": ["NVDA"], "test_mode": True},
                                       **{"async": False})
    assert calm["status"] == "succeeded" and calm["steps"]["auto_hedge"]["status"] == "skipped"


# --- news-driven-workflow ---------------------------------------------------------------------------
def test_news_driven_workflow_on_a_breaking_reuters_item(celery_worker, settings):
    from trading_app.models import Notification

    workflow_id = _create("news-driven-workflow")
    now = datetime.now(UTC)
    simulated.inject_headline("BREAKING: Apple wins FDA approval for breakthrough heart monitor, shares soar",
                              ["AAPL"], source="Reuters", breaking=True, at=now - timedelta(seconds=30))
    simulated.inject_headline("Apple schedules annual shareholder meeting", ["AAPL"], source="CNBC",
                              at=now - timedelta(seconds=20))
    polled = market.poll_news(news=simulated.SimulatedNews(), now=now)
    assert polled["new"] >= 2
    execution = _final(workflow_id)
    _drained()
    assert execution.status == "succeeded", execution.error
    event = execution.input_data["event"]
    assert event["source"] == "Reuters" and event["priority"] == "high" and "FDA approval" in event["headline"]
    ctx = execution.context
    assert ctx["classify_importance"]["category"] == "high"
    assert ctx["news"]["by_symbol"]["AAPL"]["articles"] >= 1
    signal = StepRun.objects.get(execution=execution, step_name="generate_signal").result
    assert signal["signal"] in ("BUY", "SELL", "HOLD") and 0 <= signal["confidence"] <= 1
    assert ctx["signal"] == signal["signal"] and ctx["generate_signal"]["confidence"] == signal["confidence"]
    note = Notification.objects.get(pk=ctx["track_performance"]["notification_id"])
    assert note.subject == "news-driven result" and note.execution_id == str(execution.id)
    assert note.body["message"] == f"signal {signal['signal']}, confidence {signal['confidence']}"
    trail = _trail(execution.id)
    assert _names(trail, "step_completed")[:3] == ["classify_importance", "news", "generate_signal"]
    assert _names(trail, "step_completed")[-1] == "track_performance"
    assert AuditEvent.objects.filter(event="trigger_fired", execution=execution).exists()


# --- demo mode --------------------------------------------------------------------------------------
def test_demo_round_shows_every_promise(celery_worker, settings, monkeypatch):
    from django_celery_beat.models import PeriodicTask

    from trading_app.examples import load_examples
    from trading_app.models import Order

    settings.NEXUS_DEMO = True
    settings.NEXUS_DLQ_RETRY_BASE = 0.5
    # The outage and the breaker's windows outlast any slowness of the machine; the test ends them
    # itself (deletes the outage, ages the breaker) instead of racing wall-clock timeouts.
    monkeypatch.setitem(demo.CIRCUIT, "reset_timeout", 3600)
    monkeypatch.setitem(demo.CIRCUIT, "timeout_duration", 3600)
    monkeypatch.setattr(demo, "OUTAGE_SECONDS", 3600)
    loaded = load_examples()
    assert set(loaded["demo"]["created"]) == {w["name"] for w in demo.DEMO_WORKFLOWS}
    assert load_examples()["demo"]["created"] == []  # idempotent
    beat = PeriodicTask.objects.get(name="nexus-demo-tick")
    assert beat.enabled and beat.task == "nexus.trading.demo_tick" and beat.interval.every == demo.TICK_SECONDS

    def tick():
        done = demo.tick()
        started = [e for e in done["started"].values() if e]
        for execution_id in started:
            assert wait_until_final(execution_id, 120).is_final
        return done

    t0 = tick()  # phase 0: injections, outage, first protected run (fails)
    assert t0["injected"]["jump"] == ["AAPL", demo.JUMP] and t0["ticks"] >= 11
    t1 = tick()  # phase 1: breaking news + poll
    assert t1["news_poll"]["new"] >= 1
    t2 = tick()  # phase 2: dead letters
    protected = list(Execution.objects.filter(workflow__name="demo-protected-trader").order_by("queued_at"))
    assert [e.status for e in protected] == ["failed", "failed", "failed"]
    t3 = tick()  # breaker open: skipped; the saga that succeeds
    assert Execution.objects.get(pk=t3["started"]["protected"]).context["circuit_status"] == "open"
    saga = Execution.objects.get(pk=t3["started"]["saga"])
    assert saga.status == "succeeded" and Order.objects.get(
        client_order_id=saga.context["place_order"]["client_order_id"]).status == "filled"
    assert Order.objects.get(client_order_id=saga.context["place_order"]["client_order_id"]).account.name == "demo"
    retry = Execution.objects.get(pk=tick()["started"]["retry"])  # phase 4: a 429, retried
    assert retry.status == "succeeded"
    assert [e["event"] for e in _trail(retry.id) if e["event"].startswith("step_")] == [
        "step_started", "step_retrying", "step_started", "step_completed"]

    # dead letters: processed by the policies (the beat job's service)
    first = deadletters.process_dead_letters()
    assert first["actions"].get("discarded") == 1 and first["actions"].get("retry_scheduled") == 1
    invalid = DeadLetter.objects.get(execution_id=t2["started"]["invalid_symbol"])
    assert invalid.status == "discarded" and invalid.error_class == "invalid_symbol"
    assert AuditEvent.objects.filter(event="dead_letter_discarded", data__dead_letter_id=str(invalid.id)).exists() or \
        AuditEvent.objects.filter(event="dead_letter_discarded", execution_id=invalid.execution_id).exists()
    time.sleep(0.7)
    assert deadletters.process_dead_letters()["actions"].get("redriven") == 1
    limited = wait_until_final(t2["started"]["rate_limited"], 120)
    assert limited.status == "succeeded"
    assert DeadLetter.objects.get(execution_id=limited.id).status == "redriven"

    # the breaker half-opens once the outage is over and the trial closes it
    redis_client().delete(demo.OUTAGE_KEY)  # the outage ends
    _age_breaker(protected[0].context["check_circuit"]["circuit"], demo.CIRCUIT["reset_timeout"])
    for _ in range(5, 12):
        done = tick()
        if done.get("cleared"):
            assert "AAPL" in done["cleared"]
    runs = list(Execution.objects.filter(workflow__name="demo-protected-trader").order_by("queued_at"))
    trials = [e for e in runs if e.context.get("check_circuit", {}).get("trial") and e.status == "succeeded"]
    assert trials, [(e.status, e.context.get("check_circuit")) for e in runs]
    assert [e.get("state") for e in _trail(trials[-1].id) if e["event"] == "circuit_success"] == ["closed"]
    assert runs[-1].status == "succeeded" and runs[-1].context["check_circuit"]["state"] == "closed"
    rejected = Execution.objects.filter(workflow__name="demo-trading-saga").order_by("queued_at").last()
    assert rejected.status == "compensated"
    assert _names(_trail(rejected.id), "compensation_completed") == [
        "send_notification", "update_portfolio", "place_order", "reserve_funds"]

    # the example workflows' event triggers fired through the real evaluators
    _drained()
    fired = wait_for(lambda: (lambda s: s if {"price_change", "volatility", "breaking_news"} <= s else None)(
        set(Execution.objects.filter(workflow__name="event-driven-trader").values_list("trigger", flat=True))),
        timeout=120, message="the event-driven trader's triggers")
    assert fired
    assert Execution.objects.filter(workflow__name="multi-symbol-workflow", trigger="price_change").exists()
    assert Execution.objects.filter(workflow__name="news-driven-workflow", trigger="breaking_news").exists()
    assert Execution.objects.filter(workflow__name="risk-management-workflow", trigger="volatility").exists()

    # the beat task itself, on the worker (routed to the trading queue): round 1 starts
    from nexus_project.celery import app

    assert app.amqp.router.route({}, "nexus.trading.demo_tick")["queue"].name == "trading"
    assert demo.demo_tick.max_retries == 0 and demo.demo_tick.time_limit == 30
    before = Execution.objects.filter(workflow__name="demo-protected-trader").count()
    demo.demo_tick.delay()
    wait_for(lambda: Execution.objects.filter(workflow__name="demo-protected-trader").count() == before + 1,
             timeout=120, message="the beat task's tick on the worker")
    assert int(redis_client().get(demo.TICK_KEY)) == 13

    settings.NEXUS_DEMO = False  # switched off: the beat entries are disabled, a tick does nothing
    assert load_examples()["demo"] == {"demo": False}
    assert not PeriodicTask.objects.filter(name__in=list(demo.PERIODIC_TASKS), enabled=True).exists()
    assert demo.tick() == {"demo": False}
