"""Provider response caching on the Django cache (Redis), with a TTL per kind of data.

Two executions touching the same symbols within the TTL fetch once. Hits and misses are counted in
Redis (hourly buckets, so every worker's figures add up) and exposed as the engine counters
``provider_cache_hits`` / ``provider_cache_misses``. A cache outage never breaks a provider call:
it is counted as a miss and the provider is asked directly.

Simulated data is cached too (same code path as the real providers); its keys carry the
simulator's injection generation, so an injected jump or headline is visible at once.
"""
from __future__ import annotations

import hashlib
import json
import logging
from datetime import UTC, datetime, timedelta

from django.core.cache import cache

from trading_app import conf

logger = logging.getLogger("nexus.trading.cache")
_MISSING = object()
STATS_PREFIX = "trading:cache-stats"
STATS_BUCKET_TTL = 8 * 24 * 3600


def _bucket(now: datetime | None = None) -> str:
    return (now or datetime.now(UTC)).strftime("%Y%m%d%H")


def _count(kind: str, n: int = 1) -> None:
    if n <= 0:
        return
    key = f"{STATS_PREFIX}:{kind}:{_bucket()}"
    try:
        cache.add(key, 0, STATS_BUCKET_TTL)
        cache.incr(key, n)
    except Exception:  # pragma: no cover - cache down
        logger.debug("cache stats unavailable", exc_info=True)


def stat_count(kind: str, since: datetime | None = None) -> int:
    """Hits or misses counted since ``since`` (hour granularity; None = the retained 8 days)."""
    now = datetime.now(UTC)
    start = since.astimezone(UTC) if since else now - timedelta(seconds=STATS_BUCKET_TTL)
    start = start.replace(minute=0, second=0, microsecond=0)
    keys = []
    t = start
    while t <= now:
        keys.append(f"{STATS_PREFIX}:{kind}:{_bucket(t)}")
        t += timedelta(hours=1)
    try:
        values = cache.get_many(keys)
    except Exception:  # pragma: no cover
        return 0
    return int(sum(int(v) for v in values.values()))


def cache_hits(since=None) -> int:
    return stat_count("hits", since)


def cache_misses(since=None) -> int:
    return stat_count("misses", since)


def make_key(provider: str, kind: str, *parts) -> str:
    raw = json.dumps(parts, default=str, sort_keys=True)
    digest = hashlib.sha1(raw.encode()).hexdigest()[:24]
    return f"trading:prov:{provider}:{kind}:{digest}"


def cached_call(provider: str, kind: str, ttl_setting: str, parts: tuple, fn):
    ttl = int(conf.get(ttl_setting))
    key = make_key(provider, kind, *parts)
    if ttl <= 0:
        return fn()
    try:
        value = cache.get(key, _MISSING)
    except Exception:
        value = _MISSING
        logger.warning("provider cache unavailable; calling %s directly", provider, exc_info=True)
    if value is not _MISSING:
        _count("hits")
        return value
    _count("misses")
    value = fn()
    try:
        cache.set(key, value, ttl)
    except Exception:  # pragma: no cover
        logger.debug("provider cache set failed", exc_info=True)
    return value


def _minute(at: datetime | None) -> str | None:
    """Times in cache keys are floored to the minute (a moving 'now' still hits within the TTL)."""
    return at.replace(second=0, microsecond=0).isoformat() if at else None


def _now(inner) -> datetime:
    return inner.now() if hasattr(inner, "now") else datetime.now(UTC)


def _today(inner) -> str:
    now = inner.now() if hasattr(inner, "now") else datetime.now(UTC)
    return now.strftime("%Y-%m-%d")


class CachedMarketData:
    """Wraps a market-data provider; same interface."""

    def __init__(self, inner, name: str):
        self.inner = inner
        self.name = name

    def _gen(self) -> int:
        return getattr(self.inner, "generation", lambda: 0)()

    def validate_symbol(self, symbol: str) -> str:
        return self.inner.validate_symbol(symbol)

    def daily_bars(self, symbol: str, limit: int = 300, end: datetime | None = None):
        symbol = self.inner.validate_symbol(symbol)
        return cached_call(self.name, "bars", "NEXUS_CACHE_TTL_BARS",
                           (symbol, limit, _minute(end) or _today(self.inner), self._gen()),
                           lambda: self.inner.daily_bars(symbol, limit=limit, end=end))

    def daily_bars_many(self, symbols: list[str], limit: int = 300, end: datetime | None = None) -> dict:
        """``daily_bars`` for many symbols with one cache round trip (get_many / set_many)."""
        symbols = [self.inner.validate_symbol(s) for s in symbols]
        ttl = int(conf.get("NEXUS_CACHE_TTL_BARS"))
        stamp, gen = _minute(end) or _today(self.inner), self._gen()
        keys = {s: make_key(self.name, "bars", s, limit, stamp, gen) for s in symbols}
        found: dict = {}
        if ttl > 0:
            try:
                found = cache.get_many(list(keys.values()))
            except Exception:
                logger.warning("provider cache unavailable; calling %s directly", self.name, exc_info=True)
        out, fresh = {}, {}
        missing = [sym for sym, key in keys.items() if key not in found]
        fetched = {}
        if len(missing) > 1 and hasattr(self.inner, "daily_bars_many"):
            fetched = self.inner.daily_bars_many(missing, limit=limit, end=end)
        for sym, key in keys.items():
            if key in found:
                out[sym] = found[key]
            else:
                out[sym] = fresh[key] = fetched[sym] if sym in fetched else self.inner.daily_bars(
                    sym, limit=limit, end=end)
        _count("hits", len(keys) - len(fresh))
        _count("misses", len(fresh))
        if fresh and ttl > 0:
            try:
                cache.set_many(fresh, ttl)
            except Exception:  # pragma: no cover
                logger.debug("provider cache set failed", exc_info=True)
        return out

    def intraday_bars(self, symbol: str, minutes: int = 1, limit: int = 390, end: datetime | None = None):
        symbol = self.inner.validate_symbol(symbol)
        return cached_call(self.name, "intraday", "NEXUS_CACHE_TTL_INTRADAY",
                           (symbol, minutes, limit, _minute(end) or _minute(_now(self.inner)), self._gen()),
                           lambda: self.inner.intraday_bars(symbol, minutes=minutes, limit=limit, end=end))

    def latest_price(self, symbol: str, at: datetime | None = None) -> float:
        symbol = self.inner.validate_symbol(symbol)
        if at is not None or self.name == "simulated":
            # Simulated prices are a pure function of time: no point caching a moving quote.
            return self.inner.latest_price(symbol, at=at)
        return cached_call(self.name, "quote", "NEXUS_CACHE_TTL_QUOTE", (symbol, self._gen()),
                           lambda: self.inner.latest_price(symbol))

    def market_clock(self, at: datetime | None = None) -> dict:
        return cached_call(self.name, "clock", "NEXUS_CACHE_TTL_CLOCK", (_minute(at or _now(self.inner)),),
                           lambda: self.inner.market_clock(at=at))

    def __getattr__(self, item):
        return getattr(self.inner, item)


class CachedNews:
    def __init__(self, inner, name: str):
        self.inner = inner
        self.name = name

    def get_news(self, symbols: list[str], limit: int = 20, start: datetime | None = None,
                 end: datetime | None = None, keywords: list[str] | None = None) -> list[dict]:
        gen = getattr(self.inner, "generation", lambda: 0)()
        return cached_call(self.name, "news", "NEXUS_CACHE_TTL_NEWS",
                           (sorted(symbols), limit, _minute(start), _minute(end), keywords, gen),
                           lambda: self.inner.get_news(symbols, limit=limit, start=start, end=end,
                                                       keywords=keywords))

    def __getattr__(self, item):
        return getattr(self.inner, item)
