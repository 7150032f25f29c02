"""The symbol-scope rule (trading_app/symbols.symbol_scope) reaches the conditional actions `analyze`,
`trade` and `queue_for_execution`, the saga's `place_order`, `position_sizing` and
`stop_loss_management` (its own list; without one it protects every position): an event's symbol narrows
their list, one outside it is excluded and said so."""
from __future__ import annotations

import uuid

import pytest

from tests.support.waiting import wait_for
from tests.trading_app.helpers import run_step
from trading_app.models import Order
from workflows_app import operations
from workflows_app.errors import PermanentStepError
from workflows_app.models import Execution

pytestmark = pytest.mark.django_db(transaction=True)
JPM_EVENT = {"event": {"type": "price_change", "symbol": "JPM", "change": 0.03}}


def test_analyze_with_an_event_symbol_outside_its_list_analyses_nothing_and_says_why():
    out = run_step("analyze", {}, input_data=JPM_EVENT, context={"symbols": ["AAPL", "MSFT"]})
    assert out["symbols"] == [] and out["by_symbol"] == {} and out["signal"] is None
    scope = out["symbol_scope"]
    assert scope["excluded"] == ["JPM"] and scope["listed"] == ["AAPL", "MSFT"] and scope["source"] == "trigger_event"
    assert "JPM" in out["note"] and "not among the step's symbols" in out["note"]


def test_analyze_narrows_its_list_to_the_event_symbol_and_its_children_agree():
    out = run_step("analyze", {}, input_data=JPM_EVENT, context={"symbols": ["AAPL", "JPM", "MSFT"]})
    assert out["symbols"] == ["JPM"] and set(out["by_symbol"]) == {"JPM"} and out["symbol"] == "JPM"
    assert out["symbol_scope"]["source"] == "trigger_event" and out["signal"] in ("BUY", "SELL", "HOLD")
    fixed = run_step("analyze", {"symbols": ["AAPL", "MSFT"], "symbols_mode": "fixed"}, input_data=JPM_EVENT)
    assert fixed["symbols"] == ["AAPL", "MSFT"] and set(fixed["by_symbol"]) == {"AAPL", "MSFT"}
    assert fixed["symbol_scope"] == {"symbols": ["AAPL", "MSFT"], "source": "step_params", "mode": "fixed"}


def test_trade_and_queue_for_execution_outside_the_scope_place_and_queue_nothing():
    traded = run_step("trade", {}, input_data=JPM_EVENT, context={"symbols": ["AAPL", "MSFT"]})
    assert traded["status"] == "skipped" and traded["orders"] == [] and traded["symbol_scope"]["excluded"] == ["JPM"]
    queued = run_step("queue_for_execution", {}, input_data=JPM_EVENT, context={"symbols": ["AAPL", "MSFT"]})
    assert queued["queued"] is False and queued["symbol_scope"]["excluded"] == ["JPM"]
    assert not Order.objects.exists()


def test_position_sizing_follows_the_rule_and_fails_with_an_empty_scope():
    sized = run_step("position_sizing", {"symbols": ["AAPL", "JPM"]}, input_data=JPM_EVENT)
    assert sized["symbols"] == ["JPM"] and set(sized["by_symbol"]) == {"JPM"} and sized["symbol"] == "JPM"
    assert sized["symbol_scope"]["source"] == "trigger_event"
    fixed = run_step("position_sizing", {"symbols": ["AAPL", "MSFT"], "symbols_mode": "fixed"}, input_data=JPM_EVENT)
    assert set(fixed["by_symbol"]) == {"AAPL", "MSFT"}
    with pytest.raises(PermanentStepError) as empty:
        run_step("position_sizing", {"symbols": ["AAPL", "MSFT"]}, input_data=JPM_EVENT)
    assert empty.value.error_class == "empty_symbol_scope" and "JPM" in str(empty.value)


def test_stop_loss_management_narrows_its_own_list_and_without_one_protects_every_position():
    scoped = run_step("stop_loss_management", {"symbols": ["AAPL", "JPM"]}, input_data=JPM_EVENT)
    assert [a["symbol"] for a in scoped["actions"]] == ["JPM"] and scoped["symbol_scope"]["source"] == "trigger_event"
    outside = run_step("stop_loss_management", {"symbols": ["AAPL"]}, input_data=JPM_EVENT)
    assert outside["actions"] == [] and outside["positions_checked"] == 0
    assert outside["symbol_scope"]["excluded"] == ["JPM"] and "JPM" in outside["note"]
    run_step("place_order", {"symbol": "MSFT", "qty": 1})  # a position to protect
    everything = run_step("stop_loss_management", {}, input_data=JPM_EVENT)
    assert everything["symbol_scope"] == {"symbols": ["MSFT"], "source": "positions", "mode": "all_positions"}
    assert [a["symbol"] for a in everything["actions"]] == ["MSFT"] and everything["actions"][0]["action"] == "attached"


def test_place_order_without_a_symbol_trades_the_event_symbol_not_a_listed_one():
    order = run_step("place_order", {"qty": 1}, input_data=JPM_EVENT, context={"symbols": ["JPM", "AAPL"]})
    assert order["symbol"] == "JPM"
    with pytest.raises(PermanentStepError) as empty:
        run_step("place_order", {"qty": 1}, input_data=JPM_EVENT, context={"symbols": ["AAPL"]})
    assert empty.value.error_class == "empty_symbol_scope"
    assert set(Order.objects.values_list("symbol", flat=True)) == {"JPM"}
    explicit = run_step("place_order", {"symbol": "aapl", "qty": 1}, input_data=JPM_EVENT)
    assert explicit["symbol"] == "AAPL"  # named in as many words


def test_an_execution_whose_event_symbol_is_outside_analyze_s_list_succeeds_with_its_scope_shown(celery_worker):
    workflow_id = operations.workflow_create(name=f"actions-{uuid.uuid4().hex[:8]}", steps=[
        {"name": "news", "type": "news_analysis", "params": {"symbols": ["AAPL", "MSFT"], "lookback_hours": 1}},
        {"name": "act", "type": "conditional", "condition": "True", "actions": ["analyze", "trade"]},
    ])["workflow_id"]
    started = operations.workflow_execute(workflow_id=workflow_id, input_data=JPM_EVENT)
    execution = wait_for(lambda: Execution.objects.filter(pk=started["execution_id"], status__in=(
        "succeeded", "failed")).first(), timeout=90, message="the execution to finish")
    assert execution.status == "succeeded", execution.error
    actions = execution.context["act"]["actions"]
    assert actions["analyze"]["symbols"] == [] and actions["analyze"]["symbol_scope"]["excluded"] == ["JPM"]
    assert actions["trade"]["status"] == "skipped" and actions["trade"]["symbol_scope"]["excluded"] == ["JPM"]
    assert not Order.objects.filter(execution_id=str(execution.id)).exists()
