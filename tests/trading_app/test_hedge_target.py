"""Issue 11, finding 8: a hedge stacked on itself and broke the position cap.

`immediate_hedge` ran three times in 3 s; each saw the same net exposure (hedge() left the SH
position out) and each bought 35 SH: SH reached 32.9 % of equity against a 10 % cap. Now a hedge
aims at a target (hedge_ratio x net long, including the hedge already held), orders only the
difference, is capped like any order, and hedges of one account are serialised on its row.
"""
from __future__ import annotations

import math

import pytest

from tests.support.api import make_user
from tests.support.waiting import wait_for
from tests.trading_app.helpers import run_step
from trading_app import accounts
from trading_app.brokers import OrderRequest
from trading_app.models import Order, Position
from trading_app.paper import PaperBroker
from trading_app.providers import get_market_data

PINNED_NOW = "2025-09-17T17:00:00Z"


@pytest.fixture(autouse=True)
def _pinned_clock(settings):
    settings.NEXUS_SIM_NOW = PINNED_NOW


def _buy(broker, symbol: str, pct: float, cid: str) -> None:
    price = float(broker.market_data.latest_price(symbol))
    broker.submit_order(OrderRequest(symbol=symbol, side="buy", qty=int(pct * 100_000 / price), client_order_id=cid))


def _sh_qty(acct) -> float:
    pos = Position.objects.filter(account=acct, symbol="SH").first()
    return float(pos.qty) if pos else 0.0


def _expected_target(acct) -> int:
    broker = PaperBroker(market_data=get_market_data(True), account=acct)
    net_long = sum(p["market_value"] for p in broker.get_positions() if p["symbol"] != "SH")
    return math.floor(0.5 * net_long / float(broker.market_data.latest_price("SH")))


@pytest.mark.django_db
def test_a_repeated_hedge_orders_only_the_difference():
    house = accounts.house_account()
    broker = PaperBroker(market_data=get_market_data(True), account=house)
    _buy(broker, "AAPL", 0.09, "seed-aapl")
    _buy(broker, "MSFT", 0.09, "seed-msft")
    target = _expected_target(house)
    first = run_step("hedge")
    assert first["status"] == "hedged" and first["target_hedge_qty"] == target and first["ordered_qty"] == target
    second = run_step("immediate_hedge")  # another execution: sees the first hedge, orders nothing
    assert second["status"] == "skipped" and second["reason"] == "hedge already at its target", second
    assert second["existing_hedge_qty"] == target
    assert second["net_exposure_before"] < first["net_exposure_before"]  # the hedge is counted
    assert _sh_qty(house) == target
    # the longs shrink: the next hedge sells the hedge back down to the new target
    broker.submit_order(OrderRequest(symbol="MSFT", side="sell", qty=float(
        Position.objects.get(account=house, symbol="MSFT").qty), client_order_id="close-msft"))
    third = run_step("hedge")
    assert third["status"] == "hedged" and third["ordered_qty"] < 0
    assert _sh_qty(house) == _expected_target(house)


@pytest.mark.django_db
def test_the_hedge_target_is_capped_like_any_order():
    house = accounts.house_account()
    broker = PaperBroker(market_data=get_market_data(True), account=house)
    for i, sym in enumerate(["AAPL", "MSFT", "NVDA", "JPM"]):
        _buy(broker, sym, 0.09, f"seed-{i}")  # 36 % net long: half of it would be 18 % in SH
    out = run_step("hedge")
    equity = broker.get_account()["equity"]
    sh_value = _sh_qty(house) * float(broker.market_data.latest_price("SH"))
    assert out["capped_by"] == ["max_position_pct"]
    assert sh_value <= 0.10 * equity + 1e-6
    assert run_step("hedge")["status"] == "skipped"  # and again: nothing stacks on the cap


@pytest.mark.django_db(transaction=True)
@pytest.mark.slow
def test_three_simultaneous_hedges_leave_the_hedge_at_its_target(celery_worker):
    """Three executions at once on the real worker (threads pool, concurrency 4), one account."""
    from workflows_app import operations
    from workflows_app.models import Execution

    alice = make_user("alice-hedge")
    acct = accounts.user_account(alice.pk)
    broker = PaperBroker(market_data=get_market_data(True), account=acct)
    _buy(broker, "AAPL", 0.09, "seed-aapl")
    _buy(broker, "MSFT", 0.09, "seed-msft")
    target = _expected_target(acct)
    created = operations.workflow_create(name="hedge-thrice", user=alice, steps=[
        {"name": "protect", "type": "immediate_hedge"}])
    ids = [operations.workflow_execute(workflow_id=created["workflow_id"], input_data={"test_mode": True},
                                       user=alice)["execution_id"] for _ in range(3)]
    wait_for(lambda: Execution.objects.filter(pk__in=ids, status__in=Execution.FINAL).count() == 3, timeout=90,
             message="three hedge executions to finish")
    assert set(Execution.objects.filter(pk__in=ids).values_list("status", flat=True)) == {"succeeded"}
    hedges = Order.objects.filter(account=acct, symbol="SH")
    assert hedges.count() == 1 and float(hedges.get().filled_qty) == target  # one order, the others saw it
    assert _sh_qty(acct) == target
    equity = broker.get_account()["equity"]
    assert _sh_qty(acct) * float(broker.market_data.latest_price("SH")) <= 0.10 * equity
    assert not Order.objects.filter(symbol="SH").exclude(account=acct).exists()  # nobody else's account
