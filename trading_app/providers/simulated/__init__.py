"""Offline providers: a seeded market simulator and a seeded headline generator (the public front;
``_clock``, ``_injections``, ``_market`` and ``_news`` hold the parts).

Market data
-----------
* One random stream per symbol, seeded from ``NEXUS_SIM_SEED`` and the symbol's name (crc32), so
  a symbol's history is the same in every process and on every run.
* Daily closes are a geometric random walk over the XNYS sessions (exchange_calendars: weekends and
  holidays have no bar) from ``ANCHOR`` onwards; each symbol draws its own drift and volatility.
  The walk is scaled so that its close on ``REFERENCE_SESSION`` is the symbol's reference price:
  ``REFERENCE_PRICES`` for the watchlist and other well-known symbols (realistic late-2025 levels),
  a deterministic log-uniform price in [20, 500] from the symbol's name for any other symbol.
  Open/high/low and volume are drawn around the close. History is long (> 1,500
  sessions), so indicators have far more than the 250 bars they need to warm up.
* Intraday minute bars are a Brownian bridge in log space from the session's open to its close
  (seeded by symbol and session), so intraday and daily data agree on open and close.
* ``latest_price(at)`` interpolates the minute path inside a session; outside a session it is the
  last close. ``ticks()`` is a seeded per-second random walk starting from that price.
* The clock is real time unless ``NEXUS_SIM_NOW`` pins it (``sim_now()``).
* ``VIX`` is a mean-reverting (Ornstein-Uhlenbeck) series around 18 rather than a random walk.

Injections (for tests, demos and triggers; stored in the Django cache, so every process sees them):
``inject_jump(symbol, pct, at)`` multiplies every price at or after ``at`` by ``1 + pct``;
``inject_volume_spike(symbol, multiplier, at, duration)`` multiplies the volume of bars and ticks in
that window; ``set_volatility_regime(symbol, multiplier, start, end)`` scales the returns (and
raises VIX when the symbol is ``"*"`` or ``"VIX"``). ``clear_injections()`` removes them all.

Unknown symbols follow ``trading_app.symbols`` (``ZZ*`` and malformed symbols are invalid).
"""
from trading_app.providers.simulated._clock import ANCHOR, calendar, market_clock, session_index, sim_now
from trading_app.providers.simulated._injections import (
    GENERATION_KEY,
    INJECTIONS_KEY,
    MAX_INJECTIONS,
    clear_injections,
    generation,
    inject_jump,
    inject_volume_spike,
    injections,
    set_volatility_regime,
)
from trading_app.providers.simulated._market import (
    REFERENCE_PRICES,
    REFERENCE_SESSION,
    SimulatedMarketData,
    reference_price,
)
from trading_app.providers.simulated._news import (
    COMPANIES,
    DEFAULT_WATCHLIST,
    NEWS_KEY,
    SOURCES,
    SimulatedNews,
    clear_headlines,
    inject_headline,
)

__all__ = [
    "ANCHOR", "COMPANIES", "DEFAULT_WATCHLIST", "GENERATION_KEY", "INJECTIONS_KEY", "MAX_INJECTIONS", "NEWS_KEY",
    "REFERENCE_PRICES", "REFERENCE_SESSION", "SOURCES", "SimulatedMarketData", "SimulatedNews", "calendar",
    "clear_headlines", "clear_injections", "generation", "inject_headline", "inject_jump", "inject_volume_spike",
    "injections", "market_clock", "reference_price", "session_index", "set_volatility_regime", "sim_now",
]
