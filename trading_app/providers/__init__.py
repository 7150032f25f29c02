"""Market data and news providers, chosen by settings.

``get_market_data(test_mode)`` and ``get_news_provider(test_mode)`` return the configured
implementation behind its cache; ``test_mode=True`` always returns the simulated market data and
the simulated news, whatever keys are configured. Inside ``binding.bound(...)`` (a backtest) both
return the bound providers. Brokers are built from accounts
(``trading_app.accounts``): the paper broker and the Alpaca broker both read market data from here.
"""
from __future__ import annotations

from trading_app import conf
from trading_app.providers import binding
from trading_app.providers.alpaca_adapter import AlpacaMarketData, AlpacaNews
from trading_app.providers.cache import CachedMarketData, CachedNews
from trading_app.providers.newsapi_adapter import NewsApiNews
from trading_app.providers.simulated import SimulatedMarketData, SimulatedNews


def get_market_data(test_mode: bool = False):
    if (held := binding.current()) is not None and held.market_data is not None:
        return held.market_data  # a backtest's view as of its simulated clock
    name = conf.provider_name("market_data", test_mode)
    if name == "alpaca":
        return CachedMarketData(AlpacaMarketData.from_settings(), "alpaca")
    if name != "simulated":
        raise ValueError(f"unknown NEXUS_MARKET_DATA_PROVIDER {name!r} (simulated, alpaca)")
    return CachedMarketData(SimulatedMarketData(), "simulated")


def get_news_provider(test_mode: bool = False):
    if (held := binding.current()) is not None and held.news is not None:
        return held.news
    name = conf.provider_name("news", test_mode)
    if name == "newsapi":
        return CachedNews(NewsApiNews.from_settings(), "newsapi")
    if name == "alpaca":
        return CachedNews(AlpacaNews.from_settings(), "alpaca")
    if name != "simulated":
        raise ValueError(f"unknown NEXUS_NEWS_PROVIDER {name!r} (simulated, newsapi, alpaca)")
    return CachedNews(SimulatedNews(), "simulated")
