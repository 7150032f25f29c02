from datetime import UTC, datetime, timedelta

import numpy as np
import pandas as pd
import pytest
from django.test import override_settings

from trading_app.providers import simulated
from trading_app.providers.simulated import SimulatedMarketData, SimulatedNews
from trading_app.symbols import InvalidSymbol, resolve_symbols

AT = datetime(2025, 6, 11, 17, 0, tzinfo=UTC)  # a Wednesday, market open


def test_daily_bars_deterministic_per_seed_and_symbol():
    md = SimulatedMarketData()
    a = md.daily_bars("AAPL", 300, end=AT)
    b = SimulatedMarketData().daily_bars("AAPL", 300, end=AT)
    pd.testing.assert_frame_equal(a, b)
    assert len(a) == 300 and list(a.columns) == ["open", "high", "low", "close", "volume"]
    assert not a["close"].equals(md.daily_bars("MSFT", 300, end=AT)["close"])
    with override_settings(NEXUS_SIM_SEED=7):
        c = SimulatedMarketData().daily_bars("AAPL", 300, end=AT)
    assert not np.allclose(a["close"].to_numpy(), c["close"].to_numpy())
    assert (a["high"] >= a[["open", "close"]].max(axis=1) - 1e-9).all()
    assert (a["low"] <= a[["open", "close"]].min(axis=1) + 1e-9).all()


def test_history_prefix_stable_as_time_passes():
    md = SimulatedMarketData()
    early = md.daily_bars("NVDA", 50, end=datetime(2025, 3, 3, 22, tzinfo=UTC))
    later = md.daily_bars("NVDA", 400, end=datetime(2025, 9, 3, 22, tzinfo=UTC))
    common = later.loc[early.index]
    np.testing.assert_allclose(common["close"].to_numpy(), early["close"].to_numpy())


def test_market_calendar_no_weekends_or_holidays():
    bars = SimulatedMarketData().daily_bars("AAPL", 400, end=datetime(2025, 12, 31, 22, tzinfo=UTC))
    days = {ts.tz_convert("America/New_York").date() for ts in bars.index}
    assert datetime(2025, 12, 25).date() not in days  # Christmas
    assert datetime(2025, 7, 4).date() not in days  # Independence Day
    assert all(d.weekday() < 5 for d in days)
    # half day: the close of 2025-11-28 is 13:00 New York time
    half = [ts for ts in bars.index if ts.tz_convert("America/New_York").date() == datetime(2025, 11, 28).date()]
    assert half and half[0].tz_convert("America/New_York").hour == 13


def test_clock_and_intraday():
    clock = simulated.market_clock(AT)
    assert clock["is_open"] is True
    assert simulated.market_clock(datetime(2025, 6, 14, 17, tzinfo=UTC))["is_open"] is False  # Saturday
    md = SimulatedMarketData()
    bars = md.intraday_bars("AAPL", minutes=1, limit=1000, end=datetime(2025, 6, 11, 21, tzinfo=UTC))
    assert len(bars) == 390
    daily = md.daily_bars("AAPL", 1, end=datetime(2025, 6, 11, 21, tzinfo=UTC))
    assert bars["close"].iloc[-1] == pytest.approx(daily["close"].iloc[-1])
    assert bars["open"].iloc[0] == pytest.approx(daily["open"].iloc[-1])
    five = md.intraday_bars("AAPL", minutes=5, limit=1000, end=datetime(2025, 6, 11, 21, tzinfo=UTC))
    assert len(five) == 78


def test_latest_price_and_ticks_deterministic():
    md = SimulatedMarketData()
    assert md.latest_price("AAPL", at=AT) == md.latest_price("AAPL", at=AT)
    t1 = md.ticks("AAPL", 50, start=AT)
    assert t1 == md.ticks("AAPL", 50, start=AT)
    assert len(t1) == 50 and all(t["price"] > 0 and t["size"] >= 1 for t in t1)


def test_jump_injection_moves_prices_from_its_time():
    md = SimulatedMarketData()
    before = md.latest_price("TSLA", at=AT)
    simulated.inject_jump("TSLA", 0.05, at=AT - timedelta(minutes=1))
    md2 = SimulatedMarketData()
    after = md2.latest_price("TSLA", at=AT)
    assert after == pytest.approx(before * 1.05, rel=1e-4)
    # bars before the jump are untouched
    old = md.daily_bars("TSLA", 10, end=AT - timedelta(days=3))
    np.testing.assert_allclose(md2.daily_bars("TSLA", 10, end=AT - timedelta(days=3))["close"], old["close"])
    simulated.clear_injections()
    assert SimulatedMarketData().latest_price("TSLA", at=AT) == pytest.approx(before)


def test_volume_spike_and_volatility_regime():
    md = SimulatedMarketData()
    end = datetime(2025, 6, 11, 21, tzinfo=UTC)
    base = md.daily_bars("AMZN", 5, end=end)
    simulated.inject_volume_spike("AMZN", 3.0, at=datetime(2025, 6, 11, 15, tzinfo=UTC), duration=60)
    spiked = SimulatedMarketData().daily_bars("AMZN", 5, end=end)
    assert spiked["volume"].iloc[-1] == pytest.approx(base["volume"].iloc[-1] * 3, rel=1e-6)
    assert spiked["volume"].iloc[-2] == base["volume"].iloc[-2]

    calm = md.daily_bars("META", 120, end=end)["close"].pct_change().std()
    simulated.set_volatility_regime("META", 3.0, start=end - timedelta(days=200), end=end)
    wild = SimulatedMarketData().daily_bars("META", 120, end=end)["close"].pct_change().std()
    assert wild > 2 * calm


def test_vix_series_and_market_wide_regime():
    md = SimulatedMarketData()
    vix = md.daily_bars("VIX", 500, end=AT)["close"]
    assert 5 < vix.min() and vix.max() < 80 and 10 < vix.mean() < 30
    level = md.vix(at=AT)
    simulated.set_volatility_regime("*", 2.0, start=AT - timedelta(days=2), end=AT + timedelta(days=1))
    assert SimulatedMarketData().vix(at=AT) == pytest.approx(level * 2, rel=1e-3)


@pytest.mark.parametrize("bad", ["ZZZZ", "INVALID", "AAPL1", "", "zz", 42])
def test_unknown_symbols_are_invalid_symbol(bad):
    with pytest.raises(InvalidSymbol) as err:
        SimulatedMarketData().daily_bars(bad, 10, end=AT)
    assert err.value.error_class == "invalid_symbol"
    assert err.value.transient is False


def test_symbol_resolution():
    assert resolve_symbols(["aapl", "MSFT", "AAPL"]) == ["AAPL", "MSFT"]
    assert resolve_symbols("aapl,brk.b") == ["AAPL", "BRK.B"]
    assert resolve_symbols(None) == ["AAPL"]


def test_news_deterministic_with_sources_and_breaking():
    news = SimulatedNews()
    end = datetime(2025, 6, 11, 20, tzinfo=UTC)
    a = news.get_news(["AAPL", "MSFT"], limit=500, start=end - timedelta(days=7), end=end)
    assert a == SimulatedNews().get_news(["AAPL", "MSFT"], limit=500, start=end - timedelta(days=7), end=end)
    assert len(a) > 50
    sources = {i["source"] for i in a}
    assert {"Reuters", "Bloomberg"} <= sources
    assert any(i["breaking"] for i in a)
    assert all(set(i["symbols"]) <= {"AAPL", "MSFT"} for i in a)
    assert [i["published_at"] for i in a] == sorted((i["published_at"] for i in a), reverse=True)
    fda = news.get_news(["AAPL", "MSFT"], limit=500, start=end - timedelta(days=7), end=end, keywords=["FDA"])
    assert fda and all("fda" in i["headline"].lower() for i in fda)


def test_injected_headline_is_returned():
    simulated.inject_headline("Apple beats estimates, shares surge", ["AAPL"], source="Bloomberg", breaking=True)
    items = SimulatedNews().get_news(["AAPL"], limit=100)
    assert any(i["headline"] == "Apple beats estimates, shares surge" and i["breaking"] for i in items)


@pytest.mark.django_db
def test_known_symbols_trade_near_their_reference_price_and_unknown_ones_get_a_plausible_deterministic_one():
    md = simulated.SimulatedMarketData()
    at = simulated.REFERENCE_SESSION.tz_localize("America/New_York") + pd.Timedelta(hours=16, minutes=30)
    for sym in ("AAPL", "MSFT", "GOOGL", "AMZN", "TSLA", "NVDA", "META", "JPM"):
        ref = simulated.REFERENCE_PRICES[sym]
        assert md.latest_price(sym, at=at.to_pydatetime()) == pytest.approx(ref, rel=1e-6), sym
        # a random walk around it, not a different company: within a factor of 2 three months either side
        for days in (-90, 90):
            price = md.latest_price(sym, at=(at + pd.Timedelta(days=days)).to_pydatetime())
            assert ref / 2 < price < ref * 2, (sym, days, price)
    assert 150 < md.latest_price("AAPL", at=at.to_pydatetime()) and 150 < md.latest_price("JPM", at=at.to_pydatetime())
    unknown = simulated.reference_price("QWXY")
    assert 20 <= unknown <= 500 and unknown == simulated.reference_price("QWXY")
    assert md.latest_price("QWXY", at=at.to_pydatetime()) == pytest.approx(unknown, rel=1e-6)
