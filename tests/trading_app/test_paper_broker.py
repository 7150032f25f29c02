from decimal import Decimal

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from trading_app.brokers import BrokerRejected, OrderRequest
from trading_app.killswitch import KillSwitchActive, set_kill_switch
from trading_app.models import Fill, Order, PaperAccount, Position
from trading_app.paper import PaperBroker


class FixedPrices:
    """A market-data stand-in with prices the test sets."""

    name = "fixed"

    def __init__(self, **prices):
        self.prices = prices

    def validate_symbol(self, symbol):
        from trading_app.symbols import validate_simulated

        return validate_simulated(symbol)

    def latest_price(self, symbol, at=None):
        return self.prices[symbol]

    def market_clock(self, at=None):
        return {"is_open": True}


def req(symbol="AAPL", side="buy", qty=10, cid="c1", **kw):
    return OrderRequest(symbol=symbol, side=side, qty=qty, client_order_id=cid, **kw)


def identity(broker):
    acct = PaperAccount.objects.get(name="default")
    positions = Position.objects.filter(account=acct)
    mv = sum((p.qty * p.last_price for p in positions), Decimal(0))
    unreal = sum((p.qty * (p.last_price - p.avg_entry_price) for p in positions), Decimal(0))
    account = broker.get_account()
    assert Decimal(str(account["equity"])) == pytest.approx(acct.cash + mv)
    expected = acct.starting_cash + acct.realized_pnl + unreal - acct.total_commission
    assert abs((acct.cash + mv) - expected) < Decimal("0.01")
    return account


@pytest.fixture
def md():
    return FixedPrices(AAPL=100.0, MSFT=300.0, SH=20.0)


@pytest.fixture
def broker(md, settings):
    settings.NEXUS_PAPER_SLIPPAGE_BPS = 10
    settings.NEXUS_PAPER_COMMISSION_PER_SHARE = 0.01
    settings.NEXUS_PAPER_COMMISSION_MIN = 1.0
    return PaperBroker(market_data=md)


@pytest.mark.django_db
def test_market_buy_fills_with_slippage_and_commission(broker):
    order = broker.submit_order(req(qty=10))
    assert order["status"] == "filled" and order["filled_avg_price"] == pytest.approx(100.1)
    fill = Fill.objects.get()
    assert fill.commission == Decimal("1.00")
    acct = identity(broker)
    assert acct["cash"] == pytest.approx(100_000 - 1001 - 1)
    assert acct["equity"] == pytest.approx(100_000 - 1 - 1)  # slippage + commission
    assert fill.equity_after == pytest.approx(Decimal(str(acct["equity"])))


@pytest.mark.django_db
def test_duplicate_client_order_id_returns_existing(broker):
    first = broker.submit_order(req(qty=5, cid="same"))
    second = broker.submit_order(req(qty=50, cid="same"))
    assert second["duplicate"] is True and second["order_id"] == first["order_id"] and second["qty"] == 5
    assert Order.objects.count() == 1 and Fill.objects.count() == 1


@pytest.mark.django_db
def test_limit_and_stop_orders_trigger_on_price(broker, md):
    broker.submit_order(req(qty=10, cid="base"))
    lim = broker.submit_order(req(qty=5, cid="lim", type="limit", limit_price=95.0))
    assert lim["status"] == "accepted"
    stop = broker.submit_order(req(side="sell", qty=5, cid="stp", type="stop", stop_price=90.0))
    assert stop["status"] == "accepted"
    assert broker.on_price("AAPL", 96.0) == []
    fills = broker.on_price("AAPL", 94.0)
    assert len(fills) == 1 and fills[0]["price"] <= 95.0
    identity(broker)
    fills = broker.on_price("AAPL", 89.0)
    assert len(fills) == 1 and fills[0]["side"] == "sell"
    assert Position.objects.get(symbol="AAPL").qty == 10
    identity(broker)


@pytest.mark.django_db
def test_bracket_take_profit_cancels_stop(broker):
    o = broker.submit_order(req(qty=10, cid="br", stop_loss=95.0, take_profit=110.0))
    assert o["order_class"] == "bracket" and len(o["legs"]) == 2
    assert broker.on_price("AAPL", 105.0) == []
    fills = broker.on_price("AAPL", 111.0)
    assert [f["leg"] for f in fills] == ["take_profit"]
    assert Order.objects.get(client_order_id="br-sl").status == "canceled"
    assert Position.objects.get(symbol="AAPL").qty == 0
    acct = identity(broker)
    assert acct["realized_pnl"] > 0


@pytest.mark.django_db
def test_bracket_stop_loss_and_trailing(broker):
    broker.submit_order(req(qty=10, cid="tr", stop_loss=95.0, take_profit=130.0, trail_percent=0.05))
    broker.on_price("AAPL", 120.0)  # ratchets the stop to 114
    leg = Order.objects.get(client_order_id="tr-sl")
    assert leg.stop_price == Decimal("114.0000")
    fills = broker.on_price("AAPL", 113.0)
    assert [f["leg"] for f in fills] == ["stop_loss"]
    assert Order.objects.get(client_order_id="tr-tp").status == "canceled"
    identity(broker)


@pytest.mark.django_db
def test_rejections_are_broker_rejected(broker):
    with pytest.raises(BrokerRejected) as err:  # far above every limit: the risk governor refuses it first
        broker.submit_order(req(qty=100_000, cid="big"))
    assert err.value.error_class == "risk_limit_breach" and "risk governor" in str(err.value)
    assert not Order.objects.filter(client_order_id="big").exists()
    with pytest.raises(BrokerRejected, match="short") as err:  # the governor lets it by; the broker refuses
        broker.submit_order(req(side="sell", qty=1, cid="short"))
    assert err.value.error_class == "broker_rejected"
    assert Order.objects.get(client_order_id="short").status == "rejected"
    with pytest.raises(BrokerRejected):  # a retry of the same id is still rejected, not re-evaluated
        broker.submit_order(req(qty=1, cid="short"))
    with pytest.raises(BrokerRejected):
        broker.submit_order(req(qty=0, cid="zero"))


@pytest.mark.django_db
def test_invalid_symbol(broker):
    from trading_app.symbols import InvalidSymbol

    with pytest.raises(InvalidSymbol):
        broker.submit_order(req(symbol="ZZZZ", cid="bad"))


@pytest.mark.django_db
def test_kill_switch_refuses_orders(broker):
    set_kill_switch(True, "test")
    with pytest.raises(KillSwitchActive) as err:
        broker.submit_order(req(cid="ks"))
    assert err.value.error_class == "kill_switch"
    assert not Order.objects.exists()
    set_kill_switch(False)
    assert broker.submit_order(req(cid="ks"))["status"] == "filled"


@pytest.mark.django_db
def test_cancel_order(broker):
    o = broker.submit_order(req(qty=5, cid="tocancel", type="limit", limit_price=50.0))
    res = broker.cancel_order(order_id=o["order_id"])
    assert res["canceled"] is True and res["status"] == "canceled"
    assert broker.cancel_order(client_order_id="tocancel")["canceled"] is False


actions = st.lists(st.tuples(st.sampled_from(["buy", "sell", "price"]), st.sampled_from(["AAPL", "MSFT"]),
                             st.integers(1, 40), st.floats(50, 400)), min_size=1, max_size=25)


@pytest.mark.django_db
@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(seq=actions)
def test_accounting_identity_holds_after_every_fill(broker, md, seq):
    Order.objects.all().delete()
    Position.objects.all().delete()
    PaperAccount.objects.all().delete()
    acct_obj = broker._account()
    acct_obj.allow_short = True
    acct_obj.save()
    for i, (kind, sym, qty, price) in enumerate(seq):
        if kind == "price":
            md.prices[sym] = round(price, 2)
            broker.on_price(sym, md.prices[sym])
        else:
            try:
                broker.submit_order(req(symbol=sym, side=kind, qty=qty, cid=f"h{i}"))
            except BrokerRejected:
                pass
        identity(broker)
    for f in Fill.objects.all():
        assert f.equity_after == pytest.approx(f.cash_after + f.positions_value_after)


@pytest.mark.django_db
def test_orders_wait_for_the_open_when_configured(settings):
    from trading_app.providers import get_market_data

    settings.NEXUS_PAPER_FILL_OUTSIDE_HOURS = False
    settings.NEXUS_SIM_NOW = "2025-09-20T17:00:00Z"  # a Saturday
    broker = PaperBroker(market_data=get_market_data(test_mode=True))
    o = broker.submit_order(req(qty=2, cid="weekend"))
    assert o["status"] == "accepted"
    assert broker.process_open_orders() == []
    settings.NEXUS_SIM_NOW = "2025-09-22T13:31:00Z"  # Monday, just after the open
    fills = broker.process_open_orders()
    assert len(fills) == 1 and Order.objects.get(client_order_id="weekend").status == "filled"
    identity(broker)
