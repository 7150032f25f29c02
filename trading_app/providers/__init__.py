"""Provider interfaces and factories: market data, news and brokers, chosen by settings.

``get_market_data(test_mode)``, ``get_news_provider(test_mode)`` and ``get_broker(test_mode)``
return the configured implementation; ``test_mode=True`` always returns the simulated market data,
the simulated news and the built-in paper broker, whatever keys are configured.
"""
from __future__ import annotations

from trading_app import conf


def get_market_data(test_mode: bool = False):
    from trading_app.providers.cache import CachedMarketData

    name = conf.provider_name("market_data", test_mode)
    if name == "alpaca":
        from trading_app.providers.alpaca_adapter import AlpacaMarketData

        return CachedMarketData(AlpacaMarketData.from_settings(), "alpaca")
    if name != "simulated":
        raise ValueError(f"unknown NEXUS_MARKET_DATA_PROVIDER {name!r} (simulated, alpaca)")
    from trading_app.providers.simulated import SimulatedMarketData

    return CachedMarketData(SimulatedMarketData(), "simulated")


def get_news_provider(test_mode: bool = False):
    from trading_app.providers.cache import CachedNews

    name = conf.provider_name("news", test_mode)
    if name == "newsapi":
        from trading_app.providers.newsapi_adapter import NewsApiNews

        return CachedNews(NewsApiNews.from_settings(), "newsapi")
    if name == "alpaca":
        from trading_app.providers.alpaca_adapter import AlpacaNews

        return CachedNews(AlpacaNews.from_settings(), "alpaca")
    if name != "simulated":
        raise ValueError(f"unknown NEXUS_NEWS_PROVIDER {name!r} (simulated, newsapi, alpaca)")
    from trading_app.providers.simulated import SimulatedNews

    return CachedNews(SimulatedNews(), "simulated")


def get_broker(test_mode: bool = False):
    name = conf.provider_name("broker", test_mode)
    if name == "alpaca":
        from trading_app.providers.alpaca_adapter import AlpacaBroker

        return AlpacaBroker.from_settings()
    if name != "paper":
        raise ValueError(f"unknown NEXUS_BROKER {name!r} (paper, alpaca)")
    from trading_app.paper import PaperBroker

    return PaperBroker(market_data=get_market_data(test_mode))
