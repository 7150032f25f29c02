"""Nexus trading domain: providers, indicators, sentiment, risk, brokers and step types.

Plugs into the engine only through one declaration, ``plugin.PLUGIN`` (``workflows_app.registry.Plugin``,
loaded at start): step types and actions, trigger types and event kinds, an error classifier, named
queues, dead-letter policies, counters (trades_executed, provider_cache_hits/misses), a /health/ part,
a dashboard panel and beat jobs. Its operations join the engine's operation catalogue (``operations``).

Map of the package:

- ``conf``        settings (Django settings with typed defaults); ``trading_mode()``.
- ``symbols``     symbol rules (what is an invalid_symbol).
- ``providers``   market data / news / broker factories; ``simulated`` (seeded market + news, XNYS
                  calendar, injections), ``alpaca_adapter``, ``newsapi_adapter``, ``cache`` (Redis TTLs).
- ``sentiment``   VADER + finance lexicon, built once per process.
- ``indicators``  stockstats per symbol, vectorised multi-symbol path, ``IncrementalIndicators``.
- ``signals``     the transparent BUY/SELL/HOLD score.
- ``risk``        kill switch, position sizing, exposure report.
- ``paper``       the built-in paper broker (orders, fills, positions, brackets) on ``models``.
- ``steps``/``saga``  step handlers, params schemas and their ``STEP_TYPES``; ``plugin`` collects them.
- ``operations``, ``api_views``/``api_urls``, ``management/commands/trading.py``  the trading faces.
- ``tasks``       beat housekeeping (open paper orders, Alpaca order sync, account snapshots).
"""
