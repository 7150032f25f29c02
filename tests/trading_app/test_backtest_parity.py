"""Parity with paper: the specification's workflow run once in paper mode on the simulator at a
schedule time, and backtested over a window starting then with the same costs, makes the same
decision - the same signals (scores, components) and the same orders (symbol, side, size, stop,
take-profit). Real worker, real Redis."""
import pytest

from tests.support.waiting import wait_for
from trading_app import operations as trading
from trading_app.backtest.record import Backtest
from trading_app.models import Order
from workflows_app.models import StepRun

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.slow]

STEPS = [
    {"name": "analyze_news", "type": "news_analysis", "params": {"symbols": ["AAPL", "MSFT", "NVDA"]}},
    {"name": "market_analysis", "type": "technical_analysis", "params": {"indicators": ["RSI", "MACD"]}},
    {"name": "generate_signals", "type": "signal_generation", "params": {"threshold": 0.3}},
    {"name": "execute_trades", "type": "trade_execution", "params": {"risk_limit": 0.02}},
]
AT = "2024-01-02T14:00:00+00:00"  # 9:00 New York: the schedule's first firing in the window


def _orders(qs) -> list[tuple]:
    return sorted((o.symbol, o.side, float(o.qty), float(o.stop_loss_price or 0), float(o.take_profit_price or 0))
                  for o in qs.filter(parent__isnull=True))


def test_paper_and_backtest_make_the_same_decision(celery_worker, settings):
    from workflows_app import operations

    settings.NEXUS_SIM_NOW = AT
    settings.NEXUS_PAPER_SLIPPAGE_BPS = 5.0
    created = operations.workflow_create(name="bt-parity", steps=STEPS,
                                         triggers=[{"type": "schedule", "cron": "0 9 * * 1-5",
                                                    "timezone": "America/New_York"}])
    paper = operations.workflow_execute(workflow_id=created["workflow_id"], input_data={"test_mode": True},
                                        **{"async": False})
    assert paper["status"] == "succeeded", paper
    paper_signals = StepRun.objects.get(execution_id=paper["execution_id"], step_name="generate_signals",
                                        status="succeeded").result["by_symbol"]
    paper_orders = _orders(Order.objects.filter(execution_id=paper["execution_id"]))
    assert paper_orders, "the paper run placed orders (a comparison of nothing proves nothing)"

    started = trading.workflow_backtest(workflow_id="bt-parity", start="2024-01-02", end="2024-01-03",
                                        fill_model={"spread_bps": 0, "slippage_bps": 5.0})
    wait_for(lambda: Backtest.objects.get(pk=started["backtest_id"]).is_final, timeout=300, interval=0.5,
             message="the backtest to finish")
    bt = Backtest.objects.get(pk=started["backtest_id"])
    assert bt.status == "succeeded", bt.error
    decision = bt.artefacts["decisions"][0]
    assert decision["at"] == AT
    signals = decision["steps"]["generate_signals"]["by_symbol"]
    assert {s: (v["signal"], v["score"]) for s, v in signals.items()} == \
        {s: (v["signal"], v["score"]) for s, v in paper_signals.items()}
    assert _orders(Order.objects.filter(account=bt.account)) == paper_orders
