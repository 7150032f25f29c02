import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from stockstats import wrap

from trading_app import indicators
from trading_app.providers.simulated import SimulatedMarketData


@pytest.fixture(scope="module")
def bars():
    from datetime import UTC, datetime

    return SimulatedMarketData().daily_bars("MSFT", 300, end=datetime(2025, 6, 11, 21, tzinfo=UTC))


def reference(bars):
    return wrap(bars.reset_index(drop=True).copy())


def test_compute_matches_stockstats(bars):
    ref = reference(bars)
    out = indicators.compute(bars, indicators.ALL_INDICATORS)
    assert out["rsi"] == pytest.approx(ref["rsi_14"].iloc[-1], abs=0.01)
    assert out["macd_line"] == pytest.approx(ref["macd"].iloc[-1], abs=1e-4)
    assert out["macd_signal"] == pytest.approx(ref["macds"].iloc[-1], abs=1e-4)
    assert out["macd"] == ("bullish" if ref["macd"].iloc[-1] >= ref["macds"].iloc[-1] else "bearish")
    assert out["sma_20"] == pytest.approx(ref["close_20_sma"].iloc[-1], abs=1e-4)
    assert out["bollinger"]["upper"] == pytest.approx(ref["boll_ub"].iloc[-1], abs=1e-4)
    assert out["atr"] == pytest.approx(ref["atr_14"].iloc[-1], abs=1e-4)
    assert out["avg_volume"] == pytest.approx(ref["volume_20_sma"].iloc[-1], abs=0.1)
    assert indicators.atr(bars) == pytest.approx(ref["atr_14"].iloc[-1], abs=1e-9)
    assert out["bars"] >= indicators.MIN_HISTORY and "warning" not in out


def test_vectorised_many_matches_stockstats():
    md = SimulatedMarketData()
    from datetime import UTC, datetime

    end = datetime(2025, 6, 11, 21, tzinfo=UTC)
    data = {s: md.daily_bars(s, 300, end=end) for s in ["AAPL", "MSFT", "NVDA"]}
    data["SHORT"] = data["AAPL"].tail(80)  # a different length goes through its own pass
    many = indicators.rsi_macd_many({s: b["close"] for s, b in data.items()})
    for sym, b in data.items():
        ref = reference(b)
        assert many[sym]["rsi"] == pytest.approx(ref["rsi_14"].iloc[-1], abs=0.005)
        assert many[sym]["macd_line"] == pytest.approx(ref["macd"].iloc[-1], abs=5e-5)
        assert many[sym]["macd_signal"] == pytest.approx(ref["macds"].iloc[-1], abs=5e-5)


def test_incremental_equals_stockstats_after_history_and_ticks(bars):
    closes = bars["close"].tolist()
    state = indicators.IncrementalIndicators.from_history(closes[:250], bars["volume"].tolist()[:250])
    for price, vol in zip(closes[250:], bars["volume"].tolist()[250:], strict=True):
        preview = state.preview(price)
        state.update(price, vol)
        assert preview["rsi"] == pytest.approx(state.rsi)
    ref = reference(bars)
    assert state.rsi == pytest.approx(ref["rsi_14"].iloc[-1], abs=1e-9)
    assert state.macd_line == pytest.approx(ref["macd"].iloc[-1], abs=1e-9)
    assert state.macd_signal == pytest.approx(ref["macds"].iloc[-1], abs=1e-9)
    assert state.avg_volume == pytest.approx(ref["volume_20_sma"].iloc[-1])
    assert state.macd_state in ("bullish", "bearish")
    assert state.volume_ratio(2 * state.avg_volume) == pytest.approx(2.0)
    assert state.snapshot()["count"] == 300


@settings(max_examples=30, deadline=None)
@given(st.lists(st.floats(min_value=1.0, max_value=1000.0), min_size=2, max_size=120))
def test_incremental_property_matches_stockstats(prices):
    state = indicators.IncrementalIndicators.from_history(prices)
    df = pd.DataFrame({"open": prices, "high": prices, "low": prices, "close": prices, "volume": [1.0] * len(prices)})
    ref = wrap(df)
    assert state.rsi == pytest.approx(ref["rsi_14"].iloc[-1], abs=1e-6)
    assert state.macd_line == pytest.approx(ref["macd"].iloc[-1], rel=1e-9, abs=1e-9)
    assert 0.0 <= state.rsi <= 100.0


def test_indicator_book_warms_from_provider():
    book = indicators.IndicatorBook(SimulatedMarketData(), warm_bars=300)
    state = book.update("AAPL", 200.0, 1000)
    assert state.count == 301 and book.get("AAPL") is state


def test_indicator_names():
    assert indicators.normalise_indicators(["RSI", "macd", "Bollinger"]) == ["rsi", "macd", "bollinger"]
    with pytest.raises(ValueError):
        indicators.normalise_indicators(["FOO"])
    assert np.isfinite(indicators.IncrementalIndicators().update(1.0).rsi)


def test_batch_indicators_match_per_symbol():
    from datetime import UTC, datetime

    md = SimulatedMarketData()
    end = datetime(2025, 6, 11, 21, tzinfo=UTC)
    bars = {s: md.daily_bars(s, 300, end=end) for s in ["AAPL", "MSFT"]}
    bars["ONE"] = bars["AAPL"].tail(1)
    out = indicators.batch_indicators(bars)
    for sym in ("AAPL", "MSFT"):
        assert out[sym]["atr"] == pytest.approx(indicators.atr(bars[sym]), abs=1e-4)
        assert out[sym]["price"] == pytest.approx(bars[sym]["close"].iloc[-1], abs=1e-4)
    assert out["ONE"]["atr"] is None
