"""The backtest's fill model and metrics, pure: hand-computed values."""
import math

import pytest

from trading_app.backtest import fills, metrics
from trading_app.backtest.fills import Bar, Costs

COSTS = Costs(spread_bps=2.0, slippage_bps=5.0, volume_share=0.1)
BAR = Bar(start=0.0, end=60.0, open=100.0, high=103.0, low=97.0, close=101.0, volume=1000.0)


def test_market_orders_fill_at_the_open_moved_by_spread_and_slippage():
    assert fills.market_price("buy", BAR, COSTS) == pytest.approx(100.07)  # 100 x (1 + 7 bps)
    assert fills.market_price("sell", BAR, COSTS) == pytest.approx(99.93)
    assert fills.market_price("buy", BAR, Costs(0, 0, 1)) == 100.0  # no costs: exactly the open


def test_volume_cap_fills_whole_shares_and_leaves_the_rest():
    assert fills.capped(500, BAR, COSTS) == 100  # 10 % of 1000
    assert fills.capped(30, BAR, COSTS) == 30
    assert fills.capped(5, Bar(0, 60, 1, 1, 1, 1, volume=9), COSTS) == 0  # 0.9 share: nothing this bar


def test_limit_orders_need_the_bar_to_trade_through():
    assert fills.limit_price("buy", 97.0, BAR, COSTS) is None  # the low touches 97: not enough
    assert fills.limit_price("buy", 98.0, BAR, COSTS) == 98.0  # 98 x (1 + 7 bps) capped at the limit
    assert fills.limit_price("sell", 103.0, BAR, COSTS) is None
    assert fills.limit_price("sell", 102.0, BAR, COSTS) == 102.0
    # a bar opening through the limit fills at the open (better), costs applied
    assert fills.limit_price("buy", 101.0, BAR, COSTS) == pytest.approx(100.07)
    assert fills.limit_price("sell", 99.0, BAR, COSTS) == pytest.approx(99.93)


def test_stop_orders_fill_at_the_stop_or_at_a_gap_open():
    assert fills.stop_price("sell", 98.0, BAR, COSTS) == pytest.approx(98 * (1 - 0.0007), abs=1e-4)
    assert fills.stop_price("sell", 96.0, BAR, COSTS) is None
    gap = Bar(0, 60, open=95.0, high=96.0, low=94.0, close=95.5, volume=1000)
    assert fills.stop_price("sell", 98.0, gap, COSTS) == pytest.approx(95 * (1 - 0.0007), abs=1e-4)
    assert fills.stop_price("buy", 102.0, BAR, COSTS) == pytest.approx(102 * 1.0007, abs=1e-4)


def test_tie_break_puts_the_stop_loss_first():
    legs = [("take_profit", "tp"), ("stop_loss", "sl"), ("", "entry")]
    assert [o for _, o in fills.leg_order(legs)] == ["sl", "tp", "entry"]


def test_metrics_against_hand_computed_values():
    equity = [100.0, 110.0, 99.0, 108.9]
    rets = metrics.returns(equity)
    assert rets == pytest.approx([0.1, -0.1, 0.1])
    assert metrics.max_drawdown(equity) == pytest.approx(0.1)  # 110 -> 99
    mean, sd = 0.1 / 3, math.sqrt(((0.1 - 0.1 / 3) ** 2 * 2 + (-0.1 - 0.1 / 3) ** 2) / 2)
    assert metrics.sharpe(rets, 252) == pytest.approx(mean / sd * math.sqrt(252))
    assert metrics.sortino(rets, 252) == pytest.approx(mean / math.sqrt(0.01 / 3) * math.sqrt(252))
    assert metrics.drawdown_series(equity) == pytest.approx([0, 0, -0.1, -0.01])
    fills_ = [{"qty": 10, "price": 10.0, "commission": 1.0, "realized_pnl": 0.0},
              {"qty": 10, "price": 12.0, "commission": 1.0, "realized_pnl": 20.0},
              {"qty": 5, "price": 8.0, "commission": 1.0, "realized_pnl": -5.0}]
    assert metrics.win_rate(fills_) == 0.5
    assert metrics.benchmark({"A": 100.0, "B": 50.0}, {"A": 110.0, "B": 45.0}) == pytest.approx(0.0)
    s = metrics.summary(equity, [False, True, True, False], fills_, 252, 0.05)
    assert s["total_return"] == pytest.approx(0.089)
    assert s["exposure"] == 0.5 and s["fees"] == 3.0 and s["closing_fills"] == 2
    assert s["turnover"] == pytest.approx((100 + 120 + 40) / (sum(equity) / 4), abs=1e-4)
    assert s["excess_return"] == pytest.approx(0.039)
