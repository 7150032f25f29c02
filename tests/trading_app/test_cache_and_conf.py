import pytest

from trading_app import conf, killswitch
from trading_app.accounts import get_broker
from trading_app.providers import cache as pcache
from trading_app.providers import get_market_data, get_news_provider, simulated
from workflows_app.registry import registry


class CountingProvider:
    name = "counting"

    def __init__(self):
        self.calls = 0

    def validate_symbol(self, s):
        return s

    def daily_bars(self, symbol, limit=300, end=None):
        self.calls += 1
        return {"symbol": symbol, "limit": limit}

    def latest_price(self, symbol, at=None):
        self.calls += 1
        return 1.0


def test_cached_provider_fetches_once_within_ttl_and_counts():
    hits0, misses0 = pcache.cache_hits(), pcache.cache_misses()
    inner = CountingProvider()
    md = pcache.CachedMarketData(inner, "counting")
    assert md.daily_bars("AAPL", 10) == md.daily_bars("AAPL", 10)
    md.daily_bars("MSFT", 10)
    assert inner.calls == 2
    assert pcache.cache_hits() - hits0 == 1 and pcache.cache_misses() - misses0 == 2
    assert registry.counters["provider_cache_hits"](None) >= 1
    md.latest_price("AAPL")
    md.latest_price("AAPL")
    assert inner.calls == 3  # quotes have their own (short) TTL: second call is a hit


def test_ttl_zero_disables_cache(settings):
    settings.NEXUS_CACHE_TTL_BARS = 0
    inner = CountingProvider()
    md = pcache.CachedMarketData(inner, "counting")
    md.daily_bars("AAPL")
    md.daily_bars("AAPL")
    assert inner.calls == 2


def test_simulated_cache_invalidated_by_injection(settings):
    settings.NEXUS_SIM_NOW = "2025-09-17T17:00:00Z"
    md = get_market_data(test_mode=True)
    before = md.daily_bars("AAPL", 5)["close"].iloc[-1]
    simulated.inject_jump("AAPL", 0.1)
    after = get_market_data(test_mode=True).daily_bars("AAPL", 5)["close"].iloc[-1]
    assert after == pytest.approx(before * 1.1, rel=1e-6)


def test_environment_reaches_conf_through_settings_only(settings, monkeypatch):
    from nexus_project.settings.base import app_settings_from

    if hasattr(settings, "NEXUS_MAX_POSITION_PCT"):
        del settings.NEXUS_MAX_POSITION_PCT
    monkeypatch.setenv("NEXUS_MAX_POSITION_PCT", "0.25")
    assert conf.get("NEXUS_MAX_POSITION_PCT") == 0.10  # conf never reads the environment itself
    # settings hand the variable on as a string setting of its name; conf converts it to its type
    handed_on = app_settings_from({"NEXUS_MAX_POSITION_PCT": "0.25", "APCA_API_KEY_ID": "k", "HOME": "/root"})
    assert handed_on == {"NEXUS_MAX_POSITION_PCT": "0.25", "APCA_API_KEY_ID": "k"}
    settings.NEXUS_MAX_POSITION_PCT = handed_on["NEXUS_MAX_POSITION_PCT"]
    assert conf.get("NEXUS_MAX_POSITION_PCT") == 0.25
    settings.NEXUS_MAX_POSITION_PCT = 0.3
    assert conf.get("NEXUS_MAX_POSITION_PCT") == 0.3


@pytest.mark.django_db
def test_trading_mode_for_health(settings):
    mode = killswitch.trading_mode()
    assert mode["mode"] == "paper" and mode["live_trading_enabled"] is False and mode["kill_switch_active"] is False
    settings.NEXUS_BROKER = "alpaca"
    settings.ALPACA_PAPER = False
    mode = conf.trading_mode()
    assert mode["mode"] == "alpaca-paper" and "warning" in mode
    settings.NEXUS_ALLOW_LIVE_TRADING = True
    assert conf.trading_mode()["mode"] == "live"


def test_factories_default_offline():
    assert get_market_data().name == "simulated"
    assert get_news_provider().name == "simulated"
    assert get_broker().name == "paper"


def test_unknown_provider_name(settings):
    settings.NEXUS_BROKER = "robinhood"
    with pytest.raises(ValueError):
        get_broker()
    assert get_broker(test_mode=True).name == "paper"


def test_daily_bars_many_one_round_trip_counts_each_symbol():
    hits0, misses0 = pcache.cache_hits(), pcache.cache_misses()
    inner = CountingProvider()
    md = pcache.CachedMarketData(inner, "counting")
    first = md.daily_bars_many(["AAPL", "MSFT"], 10)
    assert inner.calls == 2 and first["MSFT"] == {"symbol": "MSFT", "limit": 10}
    again = md.daily_bars_many(["AAPL", "MSFT", "NVDA"], 10)
    assert inner.calls == 3 and again["AAPL"] == first["AAPL"]
    assert md.daily_bars("NVDA", 10) == {"symbol": "NVDA", "limit": 10} and inner.calls == 3  # same keys
    assert pcache.cache_misses() - misses0 == 3 and pcache.cache_hits() - hits0 == 3
