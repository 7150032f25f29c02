"""The backtest's code path without a worker: the as-of views (no look-ahead, through a real step
handler), the backtest broker on its throw-away account (next bar's open, volume cap carried over,
the bracket tie-break), schedules on the simulated clock, and market triggers through the engine's
evaluation."""
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pandas as pd
import pytest

from tests.trading_app.helpers import run_step
from trading_app.backtest import fills
from trading_app.backtest.broker import BacktestBroker, new_account
from trading_app.backtest.data import ReplayMarketData, ReplayNews, SimClock, clean_simulator
from trading_app.backtest.fills import Bar, Costs
from trading_app.backtest.replay import schedule_events
from trading_app.brokers import OrderRequest
from trading_app.models import Order, Position
from trading_app.providers.binding import bound

NOW = datetime(2024, 3, 12, 15, 0, tzinfo=UTC)  # a Tuesday, 11:00 New York: the session is open
FM = {"spread_bps": 2.0, "slippage_bps": 5.0, "commission_per_share": 0.005, "commission_min": 1.0,
      "volume_share": 0.1}


def test_views_never_show_data_after_the_clock():
    clock = SimClock(NOW)
    md = ReplayMarketData(clean_simulator(), clock)
    later = NOW + timedelta(days=30)
    bars = md.daily_bars("AAPL", limit=400, end=later)
    assert bars.index[-1] <= pd.Timestamp(NOW) + pd.Timedelta(hours=6)  # today's (partial) session at most
    assert bars["close"].iloc[-1] == pytest.approx(md.latest_price("AAPL"))  # the partial bar closes at now
    assert len(bars) == 400  # the warm-up is there: history before the clock
    assert md.latest_price("AAPL", at=later) == md.latest_price("AAPL")
    minutes = md.intraday_bars("AAPL", minutes=1, limit=390, end=later)
    assert len(minutes) and minutes.index[-1] <= pd.Timestamp(NOW)
    news = ReplayNews(clock).get_news(["AAPL", "MSFT"], limit=100, start=NOW - timedelta(days=2), end=later)
    assert news and all(datetime.fromisoformat(a["published_at"]) <= NOW for a in news)
    assert ReplayNews(clock).get_news(["AAPL"], start=NOW + timedelta(hours=1), end=later) == []
    # with a feed delay an article is seen only once it became available
    delayed = ReplayNews(clock, delay=6 * 3600).get_news(["AAPL", "MSFT"], limit=100, start=NOW - timedelta(days=2))
    assert {a["id"] for a in delayed} == {a["id"] for a in news
                                          if datetime.fromisoformat(a["published_at"]) <= NOW - timedelta(hours=6)}
    assert len(delayed) < len(news)


@pytest.mark.django_db
def test_a_step_asking_for_later_data_gets_none():
    """technical_analysis and news_analysis run unchanged with the providers bound to the backtest."""
    clock = SimClock(NOW)
    md, news = ReplayMarketData(clean_simulator(), clock), ReplayNews(clock)
    with bound(market_data=md, news=news):
        out = run_step("technical_analysis", {"symbols": ["AAPL"], "bars": 300})
        assert out["price"] == pytest.approx(md.latest_price("AAPL"), rel=1e-6)
        clock.move((NOW - timedelta(days=7)).timestamp())
        earlier = run_step("technical_analysis", {"symbols": ["AAPL"], "bars": 300})
        articles = run_step("news_analysis", {"symbols": ["AAPL"], "lookback_hours": 24 * 30, "store": False,
                                              "max_articles_in_output": 100})["articles"]
    assert earlier["price"] != out["price"]
    assert articles and all(datetime.fromisoformat(a["published_at"]) <= clock.now for a in articles)


def _broker(clock, volume_share=0.1):
    acct = new_account("00000000-test", 100_000, {**FM, "volume_share": volume_share})
    return BacktestBroker(ReplayMarketData(clean_simulator(), clock), acct, Costs(2.0, 5.0, volume_share), clock)


@pytest.mark.django_db
def test_market_order_fills_at_the_next_bars_open_with_partials_carried_over():
    clock = SimClock(NOW)
    broker = _broker(clock)
    placed = broker.submit_order(OrderRequest(symbol="AAPL", side="buy", qty=30, client_order_id="bt-test-1"))
    assert placed["status"] == "accepted" and placed["filled_qty"] == 0  # nothing at the signal's price
    t = NOW.timestamp()
    first = Bar(t + 60, t + 120, open=200.0, high=201.0, low=199.0, close=200.5, volume=200.0)
    assert broker.on_close("AAPL", first) == []  # market orders fill at an open only
    booked = broker.on_open("AAPL", first)
    assert [(f["qty"], f["price"]) for f in booked] == [(20.0, pytest.approx(200.14))]  # 10 % of 200; +7 bps
    order = Order.objects.get(client_order_id="bt-test-1")
    assert order.status == "partially_filled" and order.broker == "backtest"
    second = Bar(t + 120, t + 180, open=202.0, high=203.0, low=201.0, close=202.5, volume=200.0)
    booked = broker.on_open("AAPL", second)
    assert [(f["qty"], f["price"]) for f in booked] == [(10.0, pytest.approx(202.1414))]
    order.refresh_from_db()
    assert order.status == "filled" and order.filled_qty == 30
    assert booked[0]["commission"] == 1.0  # max($1, 10 x $0.005)
    assert Position.objects.get(account=broker._bound, symbol="AAPL").qty == 30


@pytest.mark.django_db
def test_a_bar_reaching_both_bracket_legs_fills_the_stop_loss():
    clock = SimClock(NOW)
    broker = _broker(clock, volume_share=1.0)
    broker.submit_order(OrderRequest(symbol="AAPL", side="buy", qty=10, client_order_id="bt-test-2",
                                     stop_loss=195.0, take_profit=210.0))
    t = NOW.timestamp()
    entry = Bar(t + 60, t + 120, open=200.0, high=211.0, low=199.0, close=205.0, volume=1000.0)
    broker.on_open("AAPL", entry)
    # legs born at this open: the stop-loss only (it is not reached), the take-profit waits
    assert broker.on_close("AAPL", entry) == []
    clock.move(t + 120)
    both = Bar(t + 120, t + 180, open=204.0, high=212.0, low=190.0, close=200.0, volume=1000.0)
    booked = broker.on_close("AAPL", both)
    assert [(f["leg"], f["price"]) for f in booked] == [("stop_loss", pytest.approx(195 * (1 - 0.0007), abs=1e-4))]
    legs = {o.leg: o.status for o in Order.objects.filter(parent__client_order_id="bt-test-2")}
    assert legs == {"stop_loss": "filled", "take_profit": "canceled"}
    assert not Position.objects.filter(account=broker._bound, symbol="AAPL").exclude(qty=0).exists()
    assert broker._bound.broker == "backtest" and broker._bound.kind == "backtest"
    assert broker.positions_and_cash()[1] == pytest.approx(float(broker._bound.starting_cash) +
                                                          float(sum(f.realized_pnl - f.commission for f in
                                                                    broker._bound.fills.all())), abs=0.01)
    assert Decimal(0) < broker._bound.starting_cash


def test_schedules_fire_by_cron_in_their_timezone_on_the_simulated_clock():
    trig = [{"type": "schedule", "cron": "0 9 * * 1-5", "timezone": "America/New_York"}]
    start, end = datetime(2024, 3, 7, tzinfo=UTC), datetime(2024, 3, 13, tzinfo=UTC)
    times = [datetime.fromtimestamp(e[0], UTC) for e in schedule_events(trig, start, end, "wf")]
    # Thu 7, Fri 8 at 14:00 UTC (EST); DST starts Sun 10 March: Mon 11, Tue 12 at 13:00 UTC (EDT)
    assert times == [datetime(2024, 3, 7, 14, tzinfo=UTC), datetime(2024, 3, 8, 14, tzinfo=UTC),
                     datetime(2024, 3, 11, 13, tzinfo=UTC), datetime(2024, 3, 12, 13, tzinfo=UTC)]
    assert fills.BPS == 10_000.0


@pytest.mark.django_db
def test_replayed_news_is_not_stored_in_the_live_news_table():
    """news_analysis stores articles by default; a backtest's replayed ones never reach NewsItem."""
    from trading_app.models import NewsItem

    clock = SimClock(NOW)
    with bound(market_data=ReplayMarketData(clean_simulator(), clock), news=ReplayNews(clock)):
        out = run_step("news_analysis", {"symbols": ["AAPL"], "lookback_hours": 24 * 30})
    assert out["article_count"] > 0 and NewsItem.objects.count() == 0
