"""Simulated news: seeded headlines per symbol and hour, plus injected headlines (Django cache)."""
from __future__ import annotations

import hashlib
from datetime import datetime
from functools import lru_cache

import numpy as np
import pandas as pd
from django.core.cache import cache

from trading_app.providers.simulated._clock import as_utc, current_seed, seed_for, sim_now
from trading_app.providers.simulated._injections import (
    MAX_INJECTIONS,
    generation,
    load_injections,
    save_injections,
)
from trading_app.symbols import validate_simulated

NEWS_KEY = "trading:sim:headlines"
SOURCES = ["Reuters", "Bloomberg", "CNBC", "The Wall Street Journal", "MarketWatch", "Barron's",
           "Financial Times", "Dow Jones Newswires"]
COMPANIES = {
    "AAPL": "Apple", "MSFT": "Microsoft", "GOOGL": "Alphabet", "GOOG": "Alphabet", "AMZN": "Amazon",
    "TSLA": "Tesla", "NVDA": "Nvidia", "META": "Meta Platforms", "JPM": "JPMorgan Chase",
    "NFLX": "Netflix", "AMD": "AMD", "INTC": "Intel", "BA": "Boeing", "PFE": "Pfizer", "MRNA": "Moderna",
    "XOM": "Exxon Mobil", "SPY": "S&P 500 ETF", "QQQ": "Nasdaq-100 ETF", "DIS": "Disney", "KO": "Coca-Cola",
}
DEFAULT_WATCHLIST = ["AAPL", "MSFT", "GOOGL", "AMZN", "TSLA", "NVDA", "META", "JPM"]
POSITIVE = [
    "{c} beats earnings estimates as revenue surges {n}%",
    "{c} shares rally after analyst upgrade to buy",
    "{c} raises full-year guidance on strong demand",
    "{c} announces ${n} billion share buyback",
    "{c} wins FDA approval for new treatment",
    "{c} agrees to acquisition that analysts call a bullish move",
    "{c} posts record quarterly profit, stock jumps",
    "{c} dividend hike signals confidence, shares climb {n}%",
]
NEGATIVE = [
    "{c} misses earnings expectations, shares plunge {n}%",
    "{c} downgraded to sell on weak outlook",
    "{c} cuts guidance as demand slows",
    "{c} faces regulatory probe, stock slumps",
    "{c} recalls products after safety concerns",
    "{c} FDA rejects application; shares tumble",
    "{c} hit by lawsuit over accounting, bearish sentiment grows",
    "{c} warns of losses amid layoffs",
]
NEUTRAL = [
    "{c} to report earnings next week",
    "{c} shares unchanged ahead of Fed decision",
    "{c} schedules annual shareholder meeting",
    "{c} names new chief financial officer",
    "What to watch for {c} this week",
    "{c} trading volume in line with average",
]


def inject_headline(headline: str, symbols: list[str] | None = None, source: str = "Reuters",
                    breaking: bool = False, at: datetime | None = None, summary: str = "") -> dict:
    """Add a headline the simulated news provider returns (all processes; bumps the generation)."""
    item = {
        "id": "inj-" + hashlib.sha1(f"{headline}{source}{at}{symbols}".encode()).hexdigest()[:16],
        "headline": headline, "summary": summary, "source": source,
        "symbols": [validate_simulated(s) for s in (symbols or [])],
        "published_at": as_utc(at).isoformat(), "breaking": bool(breaking),
        "url": "https://news.sim.invalid/injected", "provider": "simulated",
    }
    try:
        items = list(cache.get(NEWS_KEY) or [])
    except Exception:
        items = []
    items.append(item)
    cache.set(NEWS_KEY, items[-MAX_INJECTIONS:], None)
    save_injections(load_injections())  # bump the generation: cached news is stale
    return item


def clear_headlines() -> None:
    cache.delete(NEWS_KEY)
    save_injections(load_injections())


class SimulatedNews:
    """Seeded headlines: per symbol and hour, a Poisson number of articles (rate 0.5/h) with a
    template (positive, negative or neutral), a source (Reuters, Bloomberg, ...), a timestamp and a
    10% chance of being breaking news. Same seed, same headlines."""

    name = "simulated"
    rate_per_hour = 0.5
    with_injected = True  # a backtest replays the seeded headlines only (reproducible)
    now = staticmethod(sim_now)

    def generation(self) -> int:
        return generation()

    def _hour(self, symbol: str, hour: pd.Timestamp) -> list[dict]:
        # copies: callers add fields (sentiment) to the articles they get
        return [{**a, "symbols": list(a["symbols"])}
                for a in _seeded_hour(symbol, hour, self.rate_per_hour, current_seed())]

    def get_news(self, symbols: list[str], limit: int = 20, start: datetime | None = None,
                 end: datetime | None = None, keywords: list[str] | None = None) -> list[dict]:
        symbols = [validate_simulated(s) for s in symbols] or list(DEFAULT_WATCHLIST)
        t_end = as_utc(end)
        t_start = as_utc(start) if start else t_end - pd.Timedelta(hours=24)
        items: list[dict] = []
        hour = t_start.floor("h")
        while hour <= t_end:
            for sym in symbols:
                items.extend(self._hour(sym, hour))
            hour += pd.Timedelta(hours=1)
        try:
            injected = list(cache.get(NEWS_KEY) or []) if self.with_injected else []
        except Exception:
            injected = []
        wanted = set(symbols)
        items.extend(i for i in injected if not i["symbols"] or wanted & set(i["symbols"]))
        items = [i for i in items if t_start <= pd.Timestamp(i["published_at"]) <= t_end]
        if keywords:
            kws = [k.lower() for k in keywords]
            items = [i for i in items if any(k in (i["headline"] + " " + i["summary"]).lower() for k in kws)]
        items.sort(key=lambda i: i["published_at"], reverse=True)
        return items[: int(limit)]


@lru_cache(maxsize=20_000)  # a pure function of its arguments: a backtest's lookbacks and sweeps re-read hours
def _seeded_hour(symbol: str, hour: pd.Timestamp, rate_per_hour: float, seed: int) -> tuple[dict, ...]:
    """The seeded articles of one symbol and hour (``seed`` is ``current_seed()``, part of the key)."""
    rng = np.random.default_rng(seed_for(symbol, "news", int(hour.timestamp())))
    out = []
    for k in range(int(rng.poisson(rate_per_hour))):
        tone = rng.choice(3, p=[0.4, 0.3, 0.3])
        bank = (POSITIVE, NEGATIVE, NEUTRAL)[tone]
        template = bank[int(rng.integers(len(bank)))]
        headline = template.format(c=COMPANIES.get(symbol, symbol), n=int(rng.integers(2, 15)))
        breaking = bool(rng.random() < 0.1)
        published = hour + pd.Timedelta(seconds=int(rng.integers(0, 3600)))
        ident = f"sim-{symbol}-{int(hour.timestamp())}-{k}"
        out.append({
            "id": ident,
            "headline": ("BREAKING: " if breaking else "") + headline,
            "summary": f"{headline}. (simulated article)",
            "source": SOURCES[int(rng.integers(len(SOURCES)))],
            "symbols": [symbol],
            "published_at": published.isoformat(),
            "breaking": breaking,
            "url": f"https://news.sim.invalid/{symbol}/{ident}",
            "provider": "simulated",
        })
    return tuple(out)
