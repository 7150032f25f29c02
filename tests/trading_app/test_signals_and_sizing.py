import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from trading_app import risk
from trading_app.signals import rsi_component, score_signal


def test_specification_example_is_buy():
    out = score_signal(sentiment=0.72, rsi=58, macd="bullish", threshold=0.7)
    assert out["signal"] == "BUY" and out["rsi_reading"] == "standard"
    assert out["confidence"] == pytest.approx(0.848, abs=1e-3)
    assert out["components"] == {"sentiment": 0.72, "rsi": 0.8, "macd": 1.0}
    momentum = score_signal(sentiment=0.72, rsi=58, macd="bullish", threshold=0.7, rsi_reading="momentum")
    assert momentum["signal"] == "BUY" and momentum["confidence"] == pytest.approx(0.768, abs=1e-3)
    assert momentum["components"]["rsi"] == 0.4


def test_rsi_is_read_the_standard_way_by_default_overbought_weighs_against_buying():
    assert rsi_component(73) == pytest.approx(-0.2) and rsi_component(73, "momentum") == pytest.approx(0.8)
    assert rsi_component(85) == -1 and rsi_component(100) == -1 and rsi_component(70) == 0
    assert rsi_component(27) == pytest.approx(0.2) and rsi_component(15) == 1 and rsi_component(30) == 0
    assert rsi_component(60) == 1 and rsi_component(40) == -1 and rsi_component(50) == 0
    # the case: RSI 73 with otherwise neutral inputs no longer pushes toward BUY
    overbought = score_signal(sentiment=0.0, rsi=73, macd=None, threshold=0.1)
    assert overbought["score"] < 0 and overbought["signal"] != "BUY"
    with pytest.raises(ValueError):
        rsi_component(50, "sideways")


def test_hold_below_threshold_and_sell():
    hold = score_signal(sentiment=0.1, rsi=52, macd="bullish", threshold=0.7)
    assert hold["signal"] == "HOLD" and "below threshold" in hold["reason"] and hold["direction"] == "BUY"
    sell = score_signal(sentiment=-0.8, rsi=35, macd="bearish", threshold=0.7)
    assert sell["signal"] == "SELL" and sell["confidence"] >= 0.7


def test_missing_components_renormalise():
    out = score_signal(sentiment=None, rsi=None, macd="bullish", threshold=0.7)
    assert out["signal"] == "BUY" and out["confidence"] == 1.0 and out["weights"] == {"macd": 1.0}
    none = score_signal(sentiment=None, rsi=None, macd=None)
    assert none["signal"] == "HOLD" and none["confidence"] == 0.0


def test_rsi_component_momentum_reading_piecewise():
    m = "momentum"
    assert rsi_component(50, m) == 0 and rsi_component(70, m) == 1 and rsi_component(85, m) == pytest.approx(0)
    assert rsi_component(100, m) == -1 and rsi_component(30, m) == -1 and rsi_component(0, m) == 1


@settings(max_examples=300, deadline=None)
@given(
    equity=st.floats(1_000, 10_000_000), entry=st.floats(1, 5_000), stop_frac=st.floats(0.001, 0.5),
    risk_limit=st.floats(0.001, 0.2), slippage=st.floats(0, 50), cps=st.floats(0, 0.05), cmin=st.floats(0, 5),
    max_pos=st.floats(0.01, 1), gross=st.floats(0, 2), side=st.sampled_from(["buy", "sell"]),
)
def test_sizing_never_exceeds_risk_limit_or_caps(equity, entry, stop_frac, risk_limit, slippage, cps, cmin, max_pos,
                                                 gross, side):
    stop = entry * (1 - stop_frac) if side == "buy" else entry * (1 + stop_frac)
    s = risk.size_position(side=side, equity=equity, entry=entry, stop=stop, risk_limit=risk_limit,
                           slippage_bps=slippage, commission_per_share=cps, commission_min=cmin,
                           max_position_pct=max_pos, max_gross_exposure=1.0, gross_exposure=gross * equity * 0.5,
                           buying_power=equity)
    assert s.qty >= 0
    slip = slippage / 10_000
    if side == "buy":
        worst = s.qty * (entry * (1 + slip) - stop * (1 - slip))
    else:
        worst = s.qty * (stop * (1 + slip) - entry * (1 - slip))
    worst += 2 * max(cmin, cps * s.qty) if s.qty else 0
    assert worst <= risk_limit * equity + 1e-6
    assert s.max_loss == pytest.approx(worst, rel=1e-9, abs=1e-6)
    assert s.qty * entry * (1 + slip) <= max_pos * equity + 1e-6
    if s.qty == 0:
        assert s.reason


def test_sizing_example_and_caps():
    s = risk.size_position(side="buy", equity=100_000, entry=100, stop=95, risk_limit=0.02)
    assert s.qty == 400 and s.max_loss == pytest.approx(2000)
    capped = risk.size_position(side="buy", equity=100_000, entry=100, stop=95, risk_limit=0.02, max_position_pct=0.1)
    assert capped.qty == 100 and capped.capped_by == ["max_position_pct"]
    wrong = risk.size_position(side="buy", equity=100_000, entry=100, stop=105, risk_limit=0.02)
    assert wrong.qty == 0 and "wrong side" in wrong.reason


def test_exposure_report_breaches():
    rep = risk.exposure_report({"equity": 100_000}, [
        {"symbol": "AAPL", "market_value": 15_000}, {"symbol": "MSFT", "market_value": -5_000}],
        max_position_pct=0.1, max_gross_exposure=0.15, max_net_exposure=0.05)
    limits = {b["limit"] for b in rep["breaches"]}
    assert limits == {"max_position_pct", "max_gross_exposure", "max_net_exposure"}
    assert rep["gross_exposure"] == 0.2 and rep["net_exposure"] == 0.1 and not rep["within_limits"]
