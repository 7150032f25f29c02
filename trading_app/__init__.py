"""Nexus trading domain: providers, indicators, sentiment, risk, brokers and step types.

Plugs into the engine only through one declaration, ``plugin.PLUGIN`` (``workflows_app.registry.Plugin``,
loaded at start): step types and actions, trigger types and event kinds, an error classifier, named
queues, dead-letter policies, counters (trades_executed, provider_cache_hits/misses), a /health/ part,
a dashboard panel and beat jobs. Its operations join the engine's operation catalogue (``operations``).

Map of the package, lower layers first (a module imports only modules listed before it):

- ``conf``        settings (Django settings with typed defaults); ``trading_mode()`` from settings.
- ``symbols``     symbol rules (what is an invalid_symbol); ``errors`` provider errors -> step errors.
- ``risk``        position sizing, the operator's ceilings, the order check, the exposure report.
- ``models``      the trading records; ``brokers`` what every broker takes and raises.
- ``killswitch``  the global and per-account kill switches; ``trading_mode()`` with the switch.
- ``sentiment``   VADER + finance lexicon, built once per process.
- ``indicators``  stockstats per symbol, vectorised multi-symbol path, ``IncrementalIndicators``.
- ``signals``     the transparent BUY/SELL/HOLD score.
- ``providers``   market data / news factories; ``simulated/`` (seeded market + news, XNYS calendar,
                  injections), ``alpaca_adapter`` (data, news), ``alpaca_broker``, ``alpaca_client``,
                  ``newsapi_adapter``, ``http``, ``cache`` (Redis TTLs).
- ``paper_ledger``, ``paper``  the built-in paper broker's bookkeeping, and the broker (orders,
                  fills, positions, brackets).
- ``accounts``    which account an execution trades on, and the broker bound to it (``get_broker``).
- ``steps/``      step handlers, params schemas and their ``STEP_TYPES`` by concern (analysis, orders,
                  protection, saga, notifications, actions).
- ``triggers``    market and news trigger types; ``pollers`` the beat pollers that feed them.
- ``adaptive``, ``demo``, ``examples``  the adaptive step, demo mode, the specification's examples.
- ``dashboard``, ``metrics``, ``plugin``  the P&L panel, /metrics collectors; ``plugin`` collects it all.
- ``operations``, ``api_views``/``api_urls``, ``management/commands/trading.py``  the trading faces.
- ``tasks``       beat housekeeping (open paper orders, Alpaca order sync, account snapshots).
"""
