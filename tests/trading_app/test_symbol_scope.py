"""Symbol scope: the triggering event (or input_data.symbols) narrows what every step analyses and
trades, unless a step says ``symbols_mode: fixed``; each step's output says which symbols and why."""
from __future__ import annotations

import time
import uuid
from datetime import UTC, datetime, timedelta

import pytest

from tests.support.waiting import wait_for
from tests.trading_app.helpers import run_step
from trading_app import pollers as market
from trading_app.examples import TEN_SYMBOLS
from trading_app.models import Order
from trading_app.providers import simulated
from trading_app.providers.simulated import SimulatedMarketData, inject_headline, inject_jump
from workflows_app import operations, queues
from workflows_app.errors import OperationError
from workflows_app.models import Execution
from workflows_app.services import events
from workflows_app.services import triggers as engine

START = datetime(2026, 11, 20, 15, 0, tzinfo=UTC)  # a Friday, 10:00 in New York
BULLISH = ("{c} beats earnings estimates, shares surge to record", "{c} posts record profit, stock soars",
           "{c} raises guidance, analysts bullish", "{c} wins approval, shares rally strongly")


def _bullish(*symbols: str) -> None:
    now = datetime.now(UTC)
    for sym in symbols:
        for k, h in enumerate(BULLISH):
            inject_headline(h.format(c=simulated.COMPANIES.get(sym, sym)), [sym], source="Reuters",
                            at=now - timedelta(minutes=5 + k))


def _scopes(execution: Execution) -> dict[str, dict]:
    return {name: execution.context[name]["symbol_scope"] for name in ("news_context", "technicals", "decide", "act")}


@pytest.mark.django_db(transaction=True)
def test_the_ten_symbol_workflow_reacts_to_a_jpm_move_by_analysing_and_trading_jpm_only(celery_worker):
    queues.ensure_default_queues()
    engine.reset_state()
    # the specification's style: the news step lists ten symbols, one price_change trigger per symbol
    workflow_id = operations.workflow_create(
        name=f"ten-{uuid.uuid4().hex[:8]}",
        steps=[{"name": "news_context", "type": "news_analysis", "params": {"symbols": TEN_SYMBOLS, "lookback_hours": 1}},
               {"name": "technicals", "type": "technical_analysis", "params": {"indicators": ["RSI", "MACD"]}},
               # decided on the news alone, so that the bullish JPM headlines make a BUY whatever the indicators say
               {"name": "decide", "type": "signal_generation",
                "params": {"threshold": 0.2, "weights": {"sentiment": 1.0, "rsi": 0.0, "macd": 0.0}}},
               {"name": "act", "type": "trade_execution", "params": {"risk_limit": 0.01}}],
        triggers=[{"type": "price_change", "symbol": s, "threshold": 0.02, "direction": "any", "cooldown": 0}
                  for s in TEN_SYMBOLS])["workflow_id"]
    _bullish("AAPL", "GOOGL", "JPM")  # AAPL and GOOGL look as buyable as JPM: only JPM moved
    inject_jump("JPM", 0.03, at=START + timedelta(seconds=60))
    ticks = SimulatedMarketData().ticks("JPM", count=150, start=START, interval=1.0)
    events.ingest_many([market.tick_event(t) for t in ticks])
    execution = wait_for(lambda: Execution.objects.filter(workflow_id=workflow_id, status__in=(
        "succeeded", "failed")).first(), timeout=90, message="the JPM move ran the workflow")
    wait_for(lambda: queues.status("events")["total_messages"] == 0, timeout=60, message="the events queue drained")
    time.sleep(0.3)
    assert execution.status == "succeeded", execution.error
    assert Execution.objects.filter(workflow_id=workflow_id).count() == 1
    ctx = execution.context
    assert set(ctx["news_context"]["by_symbol"]) == {"JPM"}
    assert set(ctx["technicals"]["by_symbol"]) == {"JPM"}
    assert set(ctx["decide"]["by_symbol"]) == {"JPM"}
    for name, scope in _scopes(execution).items():
        assert scope["symbols"] == ["JPM"] and scope["source"] == "trigger_event", (name, scope)
    assert _scopes(execution)["news_context"]["listed"] == TEN_SYMBOLS
    assert ctx["decide"]["signal"] == "BUY", ctx["decide"]
    traded = set(Order.objects.filter(execution_id=str(execution.id)).values_list("symbol", flat=True))
    assert traded == {"JPM"}, traded
    assert ctx["act"]["symbol"] == "JPM" and ctx["act"]["side"] == "buy"


@pytest.mark.django_db(transaction=True)
def test_input_data_symbols_narrow_a_news_step_that_lists_aapl_and_msft(celery_worker):
    workflow_id = operations.workflow_create(
        name=f"spec-{uuid.uuid4().hex[:8]}",
        steps=[{"name": "analyze_news", "type": "news_analysis", "params": {"symbols": ["AAPL", "MSFT"]}},
               {"name": "market_analysis", "type": "technical_analysis", "params": {"indicators": ["RSI"]}}],
    )["workflow_id"]
    reply = operations.workflow_execute(workflow_id=workflow_id, async_=False, timeout=90,
                                        input_data={"symbols": ["AAPL"], "test_mode": True})
    assert reply["status"] == "succeeded", reply
    context = Execution.objects.get(pk=reply["execution_id"]).context
    news = context["analyze_news"]
    assert set(news["by_symbol"]) == {"AAPL"} and news["symbols"] == ["AAPL"]
    assert news["symbol_scope"] == {"symbols": ["AAPL"], "source": "input_data", "mode": "narrow",
                                    "requested": ["AAPL"], "listed": ["AAPL", "MSFT"], "listed_source": "step_params"}
    assert set(context["market_analysis"]["by_symbol"]) == {"AAPL"}
    # without input symbols the step's own list is analysed
    reply = operations.workflow_execute(workflow_id=workflow_id, async_=False, timeout=90,
                                        input_data={"test_mode": True})
    news = Execution.objects.get(pk=reply["execution_id"]).context["analyze_news"]
    assert set(news["by_symbol"]) == {"AAPL", "MSFT"} and news["symbol_scope"]["source"] == "step_params"


@pytest.mark.django_db
def test_an_event_symbol_outside_the_steps_list_is_neither_analysed_nor_traded():
    event = {"kind": "tick", "symbol": "TSLA", "price": 300.0}
    data = {"event": event, "symbols": ["TSLA"]}
    news = run_step("news_analysis", {"symbols": ["AAPL", "MSFT"]}, input_data=data)
    assert news["symbols"] == [] and news["by_symbol"] == {} and news["article_count"] == 0
    assert news["symbol_scope"]["excluded"] == ["TSLA"] and "not among the step's symbols" in news["note"]
    # later steps without a list of their own inherit the empty scope: nothing is traded
    context = {**data, "analyze_news": news, **news}
    trade = run_step("trade_execution", {"signal": "BUY"}, input_data=data, context=context)
    assert trade["orders"] == [] and trade["status"] == "skipped"
    assert trade["symbol_scope"]["source"] == "trigger_event" and trade["symbol_scope"]["symbols"] == []
    assert not Order.objects.exists()


@pytest.mark.django_db
def test_symbols_mode_fixed_keeps_the_steps_own_list_and_scan_and_signals_follow_the_rule():
    data = {"event": {"kind": "tick", "symbol": "JPM"}, "symbols": ["JPM"]}
    fixed = run_step("technical_analysis", {"symbols": ["AAPL", "MSFT"], "symbols_mode": "fixed"}, input_data=data)
    assert set(fixed["by_symbol"]) == {"AAPL", "MSFT"}
    assert fixed["symbol_scope"] == {"symbols": ["AAPL", "MSFT"], "source": "step_params", "mode": "fixed"}
    scan = run_step("market_scan", {"symbols": TEN_SYMBOLS, "top_n": 3}, input_data=data)
    assert scan["scanned"] == 1 and scan["symbols"] == ["JPM"] and scan["symbol_scope"]["source"] == "trigger_event"
    unscoped = run_step("market_scan", {"top_n": 3})
    assert unscoped["symbol_scope"]["source"] == "watchlist" and unscoped["scanned"] == 20
    signal = run_step("signal_generation", {"symbols": ["AAPL", "JPM"]}, input_data=data,
                      context={"by_symbol": {"AAPL": {"sentiment": 0.9}, "JPM": {"sentiment": 0.9}}})
    assert set(signal["by_symbol"]) == {"JPM"} and signal["symbol"] == "JPM"
    with pytest.raises(OperationError) as err:
        operations.workflow_create(name=f"bad-{uuid.uuid4().hex[:8]}", steps=[
            {"name": "n", "type": "news_analysis", "params": {"symbols_mode": "fixed"}}])
    assert "symbols_mode" in str(err.value) or "symbols" in str(err.value.details)
