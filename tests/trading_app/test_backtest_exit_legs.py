"""Parity with paper for exit legs: one price path through the paper broker (``on_price`` at each
price, orders filling at once) and through the backtest broker (one flat bar per price, orders
filling at its open), same costs. A bracket's position is closed by a SELL signal; its stop-loss
comes due while the account is flat (paper cancels it, "position already closed"); a new position
is then opened in the symbol, and the price stays below that old stop. Both brokers must end with
the same orders (status, reason, fills) and the same fills: an orphaned leg left open by the
backtest would sell the new position."""
from datetime import UTC, datetime

import pytest

from tests.trading_app.test_paper_broker import FixedPrices
from trading_app.backtest.broker import BacktestBroker, new_account
from trading_app.backtest.data import ReplayMarketData, SimClock, clean_simulator
from trading_app.backtest.fills import Bar, Costs
from trading_app.brokers import OrderRequest
from trading_app.models import Fill, Order
from trading_app.paper import PaperBroker

NOW = datetime(2024, 3, 12, 15, 0, tzinfo=UTC)  # a Tuesday, 11:00 New York: the session is open
FM = {"spread_bps": 0.0, "slippage_bps": 5.0, "commission_per_share": 0.005, "commission_min": 1.0,
      "volume_share": 1.0}
BRACKET = {"side": "buy", "qty": 10, "stop_loss": 95.0, "take_profit": 110.0}
# (price, orders placed just before it): paper fills them at it, the backtest at the bar's open
PATH = [
    (100.0, {"entry": BRACKET}),
    (102.0, {"exit": {"side": "sell", "qty": 10}}),  # the SELL signal closes the position: legs orphaned
    (94.0, {}),  # the old stop-loss (95) comes due while flat
    (93.0, {"again": {"side": "buy", "qty": 10}}),  # a new position, below the old stop
    (92.0, {}),
    (96.0, {}),
]


def _paper(settings) -> PaperBroker:
    settings.NEXUS_PAPER_SLIPPAGE_BPS = FM["slippage_bps"]
    settings.NEXUS_PAPER_COMMISSION_PER_SHARE = FM["commission_per_share"]
    settings.NEXUS_PAPER_COMMISSION_MIN = FM["commission_min"]
    settings.NEXUS_PAPER_STARTING_CASH = 100_000.0
    md = FixedPrices(AAPL=PATH[0][0])
    broker = PaperBroker(market_data=md)
    for price, orders in PATH:
        md.prices["AAPL"] = price
        for name, order in orders.items():
            broker.submit_order(OrderRequest(symbol="AAPL", client_order_id=f"paper-{name}", **order))
        broker.on_price("AAPL", price)
    return broker


def _backtest() -> BacktestBroker:
    clock = SimClock(NOW)
    acct = new_account("00000000-legs", 100_000, FM)
    broker = BacktestBroker(ReplayMarketData(clean_simulator(), clock), acct, Costs.of(FM), clock)
    t = NOW.timestamp()
    for i, (price, orders) in enumerate(PATH):
        for name, order in orders.items():
            broker.submit_order(OrderRequest(symbol="AAPL", client_order_id=f"bt-{name}", **order))
        start = t + 60 * (i + 1)
        bar = Bar(start, start + 60, open=price, high=price, low=price, close=price, volume=1e6)
        broker.on_open("AAPL", bar)
        broker.on_close("AAPL", bar)
        clock.move(start + 60)
    return broker


def _orders(account) -> list[tuple]:
    return sorted((o.client_order_id.split("-", 1)[1], o.side, o.order_type, o.leg, o.status, o.reject_reason,
                   float(o.filled_qty), float(o.filled_avg_price or 0)) for o in Order.objects.filter(account=account))


def _fills(account) -> list[tuple]:
    return [(f.order.client_order_id.split("-", 1)[1], f.side, float(f.qty), float(f.price), float(f.realized_pnl))
            for f in Fill.objects.filter(account=account).order_by("timestamp", "id")]


@pytest.mark.django_db
def test_an_orphaned_exit_leg_is_cancelled_as_paper_cancels_it(settings):
    paper, backtest = _paper(settings), _backtest()
    paper_acct, bt_acct = paper.account_row, backtest.account_row
    assert _orders(bt_acct) == _orders(paper_acct)
    assert _fills(bt_acct) == _fills(paper_acct)
    legs = {o.leg: (o.status, o.reject_reason) for o in Order.objects.filter(account=bt_acct, leg__gt="")}
    # the take-profit (110) never came due: open, as in paper (paper cancels a leg when it comes due)
    assert legs == {"stop_loss": ("canceled", "position already closed"), "take_profit": ("new", "")}
    stop = Order.objects.get(account=bt_acct, leg="stop_loss")
    assert stop.canceled_at == datetime.fromtimestamp(NOW.timestamp() + 240, UTC)  # the 94 bar's close: simulated
    assert backtest.positions_and_cash()[0] == {"AAPL": 10.0}  # the new position is still held
    assert backtest.positions_and_cash()[1] == pytest.approx(float(paper.account_row.cash), abs=0.01)
