"""A market trigger replayed on minute bars: the engine's price_change evaluator sees each bar's
tick in time order, fires on the edge and keeps its cooldown on the simulated clock; the decision
trades the triggering symbol, filled at a later bar's open (real worker, real Redis)."""
from datetime import datetime, timedelta

import pytest

from tests.support.waiting import wait_for
from trading_app import operations as trading
from trading_app.backtest.record import Backtest

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.slow]


def test_price_change_trigger_on_minute_bars(celery_worker):
    from workflows_app import operations

    operations.workflow_create(
        name="bt-dip-buyer", steps=[{"name": "buy", "type": "trade_execution",
                                     "params": {"signal": "BUY", "risk_limit": 0.01, "symbols": ["AAPL", "MSFT"]}}],
        triggers=[{"type": "price_change", "symbol": "AAPL", "threshold": 0.002, "direction": "any",
                   "window": "15m", "cooldown": 1800}])
    started = trading.workflow_backtest(workflow_id="bt-dip-buyer", start="2024-03-04", end="2024-03-07",
                                        interval="1m")
    assert started["arguments"]["symbols"] == ["AAPL", "MSFT"]
    wait_for(lambda: Backtest.objects.get(pk=started["backtest_id"]).is_final, timeout=300, interval=0.5,
             message="the backtest to finish")
    results = trading.backtest_results(backtest_id=started["backtest_id"], limit=2000)
    assert results["status"] == "succeeded", results["error"]
    m = results["metrics"]
    assert m["trigger_evaluations"] == 3 * 390  # one tick per AAPL minute bar (MSFT has no trigger)
    decisions = results["decisions_made"]
    assert decisions and m["decisions"] == len(decisions)
    times = [datetime.fromisoformat(d["at"]) for d in decisions]
    assert all(b - a >= timedelta(seconds=1800) for a, b in zip(times, times[1:], strict=False))  # the cooldown
    for d in decisions:
        assert d["trigger"]["type"] == "price_change" and d["symbols"] == ["AAPL"]
        assert abs(d["trigger"]["detail"]["change"]) >= 0.002
    assert results["trades"], "a BUY was placed"
    first = results["trades"][0]
    assert first["symbol"] == "AAPL" and first["decision"] == 1
    assert datetime.fromisoformat(first["at"]) >= times[0]  # the next bar's open, never the signal bar
