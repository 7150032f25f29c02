"""Cross-check with an established backtester: a moving-average crossover backtested by Nexus (real
worker, stored bars imported with manage.py import_bars) and by backtrader on the same bars, under
the same fill assumptions - market orders at the next bar's open, $0.005 a share with a $1 minimum,
no spread or slippage, no volume cap - makes the same trades (bar, side, quantity, price) and ends
with the same equity.

The crossover in Nexus's step types: ``technical_analysis`` (SMA: sma_20, sma_50) at every bar's
close (a schedule at 00:00 UTC Tuesday-Saturday, the end of the Monday-Friday daily bars), then
``risk_check`` (is anything held?), a ``trade_execution`` BUY conditioned on ``sma_20 > sma_50`` while
flat, and a ``trade_execution`` SELL (closes the long) conditioned on ``sma_20 < sma_50``. Its
sizing is the risk rule capped by ``max_position_pct`` = 10 % of equity at the signal bar's close
(the cap binds: the 45 % stop makes the risk size larger), which backtrader's strategy computes
the same way. Tolerance: prices to 0.0001 (the ledger's precision), final equity to $0.05.
"""
import math
from datetime import date

import backtrader as bt
import numpy as np
import pandas as pd
import pytest
from django.core.management import call_command

from tests.support.waiting import wait_for
from trading_app import operations as trading
from trading_app.backtest.charts import charts_html
from trading_app.backtest.record import Backtest

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.slow]

SYMBOL, START, END = "AAPL", "2022-04-04", "2023-12-30"  # 60 weekdays of warm-up are stored before START
CASH, PER_SHARE, MINIMUM, CAP = 100_000.0, 0.005, 1.0, 0.10
STEPS = [
    {"name": "market_analysis", "type": "technical_analysis",
     "params": {"symbols": [SYMBOL], "indicators": ["SMA"], "bars": 300}},
    {"name": "risk", "type": "risk_check", "params": {}},
    {"name": "enter", "type": "trade_execution",
     "condition": "market_analysis.sma_20 > market_analysis.sma_50 and risk.gross_exposure == 0",
     "params": {"symbols": [SYMBOL], "signal": "BUY", "risk_limit": 0.05, "stop_loss_pct": 0.45,
                "take_profit_ratio": None, "max_position_pct": CAP}},
    {"name": "exit", "type": "trade_execution", "condition": "market_analysis.sma_20 < market_analysis.sma_50",
     "params": {"symbols": [SYMBOL], "signal": "SELL"}},
]


def bars() -> pd.DataFrame:
    """Deterministic weekday bars: waves of ~4 months around 100 plus a seeded walk (prices in cents)."""
    days = pd.bdate_range("2022-01-03", "2023-12-29")
    rng = np.random.default_rng(7)
    t = np.arange(len(days))
    close = np.round(100 + 12 * np.sin(2 * np.pi * t / 90) + np.cumsum(rng.normal(0, 0.6, len(days))), 2)
    open_ = np.round(np.r_[close[0], close[:-1]] + rng.normal(0, 0.3, len(days)), 2)
    high = np.round(np.maximum(open_, close) + rng.uniform(0.05, 1.0, len(days)), 2)
    low = np.round(np.minimum(open_, close) - rng.uniform(0.05, 1.0, len(days)), 2)
    return pd.DataFrame({"open": open_, "high": high, "low": low, "close": close, "volume": 5_000_000.0},
                        index=days)


class Commission(bt.CommInfoBase):
    params = (("stocklike", True), ("commtype", bt.CommInfoBase.COMM_FIXED))

    def _getcommission(self, size, price, pseudoexec):
        return max(MINIMUM, PER_SHARE * abs(size))


class Crossover(bt.Strategy):
    def __init__(self):
        self.fast, self.slow = bt.ind.SMA(period=20), bt.ind.SMA(period=50)
        self.fills = []

    def next(self):
        if self.data.datetime.date(0) < date.fromisoformat(START):
            return
        if self.fast[0] > self.slow[0] and not self.position:
            self.buy(size=math.floor(CAP * self.broker.getvalue() / self.data.close[0]))
        elif self.fast[0] < self.slow[0] and self.position:
            self.close()

    def notify_order(self, order):
        if order.status == order.Completed:
            self.fills.append((self.data.datetime.date(0).isoformat(), "buy" if order.isbuy() else "sell",
                               abs(order.executed.size), order.executed.price))


def backtrader_run(df: pd.DataFrame) -> tuple[list, float]:
    cerebro = bt.Cerebro(stdstats=False)
    cerebro.adddata(bt.feeds.PandasData(dataname=df))
    cerebro.addstrategy(Crossover)
    cerebro.broker.setcash(CASH)
    cerebro.broker.addcommissioninfo(Commission())
    cerebro.broker.set_coc(False)  # market orders at the next bar's open (backtrader's default, said aloud)
    strategy = cerebro.run()[0]
    return strategy.fills, cerebro.broker.getvalue()


def test_nexus_and_backtrader_agree_on_a_moving_average_crossover(celery_worker, tmp_path):
    from workflows_app import operations

    df = bars()
    sma = df["close"].rolling(20).mean() - df["close"].rolling(50).mean()
    # no signal within Nexus's indicator rounding (4 decimals) of a tie: the comparison is decided by the rule
    assert sma[START:].abs().min() > 1e-3
    path = tmp_path / "aapl.csv"
    df.rename_axis("timestamp").reset_index().assign(timestamp=lambda d: d["timestamp"].dt.strftime("%Y-%m-%d")) \
        .to_csv(path, index=False)
    call_command("import_bars", str(path), "--symbol", SYMBOL)

    operations.workflow_create(name="bt-crosscheck", steps=STEPS,
                               triggers=[{"type": "schedule", "cron": "0 0 * * 2-6", "timezone": "UTC"}])
    started = trading.workflow_backtest(
        workflow_id="bt-crosscheck", start=START, end=END, data_source="stored", initial_cash=CASH,
        fill_model={"spread_bps": 0, "slippage_bps": 0, "commission_per_share": PER_SHARE,
                    "commission_min": MINIMUM, "volume_share": 1.0})
    wait_for(lambda: Backtest.objects.get(pk=started["backtest_id"]).is_final, timeout=600, interval=0.5,
             message="the backtest to finish")
    run = Backtest.objects.get(pk=started["backtest_id"])
    assert run.status == "succeeded", run.error
    ours = [(f["at"][:10], f["side"], f["qty"], f["price"]) for f in run.artefacts["trades"]]

    theirs, final = backtrader_run(df)
    assert len(theirs) >= 6, theirs  # several round trips: a comparison of nothing proves nothing
    assert [t[:3] for t in ours] == [t[:3] for t in theirs]
    assert all(abs(a[3] - b[3]) <= 1e-4 for a, b in zip(ours, theirs, strict=True)), (ours, theirs)
    assert run.metrics["final_equity"] == pytest.approx(final, abs=0.05)
    assert run.metrics["fees"] == pytest.approx(sum(max(MINIMUM, PER_SHARE * t[2]) for t in theirs), abs=0.01)
    html = charts_html(run)  # the admin's candles are the stored bars read back
    assert '"type":"candlestick"' in html and "buy fills" in html
