"""Offline providers: a seeded market simulator and a seeded headline generator.

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
from __future__ import annotations

import hashlib
import math
import zlib
from datetime import UTC, datetime
from functools import lru_cache

import numpy as np
import pandas as pd
from django.core.cache import cache

from trading_app import conf
from trading_app.symbols import VIX, validate_simulated

ANCHOR = pd.Timestamp("2019-01-02")
# Each symbol's close on this session is its reference price (prices around it are a random walk away).
REFERENCE_SESSION = pd.Timestamp("2025-12-01")
REFERENCE_PRICES = {  # USD, realistic late-2025 levels (a plausibility table, not quotes)
    "AAPL": 280.0, "MSFT": 490.0, "GOOGL": 300.0, "GOOG": 300.0, "AMZN": 230.0, "NVDA": 180.0,
    "META": 640.0, "TSLA": 430.0, "JPM": 310.0, "V": 330.0, "UNH": 330.0, "XOM": 118.0, "JNJ": 200.0,
    "WMT": 105.0, "PG": 148.0, "MA": 550.0, "HD": 355.0, "KO": 70.0, "PEP": 148.0, "BAC": 52.0,
    "DIS": 105.0, "NFLX": 110.0, "AMD": 220.0, "INTC": 40.0, "BA": 190.0, "PFE": 25.0, "MRNA": 25.0,
    "SPY": 680.0, "QQQ": 610.0, "SH": 36.0,
}
INJECTIONS_KEY = "trading:sim:injections"
GENERATION_KEY = "trading:sim:generation"
MAX_INJECTIONS = 500
BAR_COLUMNS = ["open", "high", "low", "close", "volume"]


# --- calendar -----------------------------------------------------------------------------------
@lru_cache(maxsize=1)
def calendar():
    import warnings

    import exchange_calendars as xcals

    with warnings.catch_warnings():  # exchange_calendars on pandas 3 warns about Series.values (its code)
        warnings.simplefilter("ignore", FutureWarning)
        warnings.simplefilter("ignore", DeprecationWarning)
        try:
            from pandas.errors import Pandas4Warning

            warnings.simplefilter("ignore", Pandas4Warning)
        except ImportError:  # pandas < 3
            pass
        return xcals.get_calendar("XNYS")


@lru_cache(maxsize=1)
def _schedule() -> tuple[pd.DatetimeIndex, np.ndarray, np.ndarray]:
    sched = calendar().schedule
    sched = sched[sched.index >= ANCHOR]
    opens = sched["open"].to_numpy(dtype="datetime64[ns]")
    closes = sched["close"].to_numpy(dtype="datetime64[ns]")
    return sched.index, opens, closes


def sim_now() -> datetime:
    """The simulator's clock: NEXUS_SIM_NOW (ISO time, pins the simulation for demos and tests) or now."""
    pinned = conf.get("NEXUS_SIM_NOW")
    if pinned:
        ts = pd.Timestamp(str(pinned))
        return (ts.tz_localize("UTC") if ts.tzinfo is None else ts.tz_convert("UTC")).to_pydatetime()
    return datetime.now(UTC)


def _ts(at: datetime | None) -> pd.Timestamp:
    if at is None:
        at = sim_now()
    ts = pd.Timestamp(at)
    if ts.tzinfo is None:
        ts = ts.tz_localize("UTC")
    return ts.tz_convert("UTC")


def _ns(ts: pd.Timestamp) -> np.datetime64:
    return np.datetime64(ts.tz_convert("UTC").tz_localize(None), "ns")


def session_index(at: datetime | None = None) -> tuple[int, bool]:
    """(index of the latest session that has opened at ``at``, whether the market is open at ``at``)."""
    _, opens, closes = _schedule()
    t = _ns(_ts(at))
    i = int(np.searchsorted(opens, t, side="right")) - 1
    if i < 0:
        raise ValueError("time before the simulated history")
    return i, bool(t < closes[i])


def market_clock(at: datetime | None = None) -> dict:
    ts = _ts(at)
    sessions, opens, closes = _schedule()
    i, is_open = session_index(ts)
    next_open = pd.Timestamp(opens[min(i + 1, len(opens) - 1)], tz="UTC")
    return {
        "timestamp": ts.isoformat(),
        "is_open": is_open,
        "session": sessions[i].date().isoformat(),
        "next_open": next_open.isoformat(),
        "next_close": pd.Timestamp(closes[i if is_open else min(i + 1, len(closes) - 1)], tz="UTC").isoformat(),
    }


# --- seeds ----------------------------------------------------------------------------------------
def _seed(*parts) -> list[int]:
    return [int(conf.get("NEXUS_SIM_SEED"))] + [
        p if isinstance(p, int) else zlib.crc32(str(p).encode()) for p in parts
    ]


def reference_price(symbol: str) -> float:
    """The symbol's close on REFERENCE_SESSION: the table's, else a deterministic plausible price."""
    if symbol in REFERENCE_PRICES:
        return REFERENCE_PRICES[symbol]
    rng = np.random.default_rng([zlib.crc32(symbol.encode()), 7])
    return round(float(math.exp(rng.uniform(math.log(20), math.log(500)))), 2)


@lru_cache(maxsize=1)
def _reference_index() -> int:
    sessions, _, _ = _schedule()
    return int(sessions.searchsorted(REFERENCE_SESSION))


@lru_cache(maxsize=4096)
def _symbol_profile(symbol: str, seed: int) -> dict:
    rng = np.random.default_rng([seed, zlib.crc32(symbol.encode()), 1])
    if symbol == VIX:
        return {"start": 18.0, "mu": 0.0, "sigma": 0.08, "volume": 0.0}
    return {
        "start": float(math.exp(rng.uniform(math.log(20), math.log(500)))),  # rescaled in _base_daily
        "mu": float(rng.uniform(0.02, 0.15)),
        "sigma": float(rng.uniform(0.15, 0.45)),
        "volume": float(math.exp(rng.uniform(math.log(1e6), math.log(5e7)))),
    }


@lru_cache(maxsize=600)  # ~100 KB per entry: bounded memory in long-running workers
def _base_daily(symbol: str, seed: int, n: int) -> tuple[np.ndarray, ...]:
    """Base (un-injected) daily open/high/low/close/volume and daily returns for the first n sessions."""
    prof = _symbol_profile(symbol, seed)
    rng = np.random.default_rng([seed, zlib.crc32(symbol.encode()), 2])
    total = n
    if symbol != VIX:  # the walk runs at least to the reference session, so that it can be scaled there
        total = max(n, _reference_index() + 1)
    z = rng.standard_normal((total, 4))  # one row per session: prefix-stable as n grows
    if symbol == VIX:
        # OU on log level, mean log(18), reversion 0.06/day.
        logs = np.empty(n)
        x = math.log(prof["start"])
        for i in range(n):
            x += 0.06 * (math.log(18.0) - x) + prof["sigma"] * z[i, 0]
            logs[i] = x
        close = np.exp(logs)
        rets = np.diff(logs, prepend=math.log(prof["start"]))
        sd = prof["sigma"]
    else:
        sd = prof["sigma"] / math.sqrt(252)
        rets = (prof["mu"] / 252 - 0.5 * sd * sd) + sd * z[:, 0]
        close = prof["start"] * np.exp(np.cumsum(rets))
    prev = np.concatenate([[prof["start"]], close[:-1]])
    open_ = prev * np.exp(0.3 * sd * z[:, 1])
    high = np.maximum(open_, close) * np.exp(np.abs(0.5 * sd * z[:, 2]))
    low = np.minimum(open_, close) * np.exp(-np.abs(0.5 * sd * z[:, 3]))
    volume = prof["volume"] * np.exp(0.3 * z[:, 3]) * (1 + np.abs(rets) / max(sd, 1e-9))
    if symbol != VIX:
        scale = reference_price(symbol) / close[_reference_index()]
        open_, high, low, close = open_ * scale, high * scale, low * scale, close * scale
    return open_[:n], high[:n], low[:n], close[:n], volume[:n], rets[:n], sd


# --- injections --------------------------------------------------------------------------------
def _load_injections() -> list[dict]:
    try:
        return list(cache.get(INJECTIONS_KEY) or [])
    except Exception:  # cache down: no injections
        return []


def _save_injections(items: list[dict]) -> None:
    cache.set(INJECTIONS_KEY, items[-MAX_INJECTIONS:], None)
    try:
        cache.add(GENERATION_KEY, 0, None)
        cache.incr(GENERATION_KEY)
    except ValueError:
        cache.set(GENERATION_KEY, 1, None)


def generation() -> int:
    try:
        return int(cache.get(GENERATION_KEY) or 0)
    except Exception:
        return 0


def _add(item: dict) -> dict:
    items = _load_injections()
    items.append(item)
    _save_injections(items)
    return item


def inject_jump(symbol: str, pct: float, at: datetime | None = None) -> dict:
    """Every price of ``symbol`` at or after ``at`` (default now) is multiplied by ``1 + pct``."""
    sym = validate_simulated(symbol) if symbol != "*" else "*"
    return _add({"kind": "jump", "symbol": sym, "pct": float(pct), "at": _ts(at).isoformat()})


def inject_volume_spike(symbol: str, multiplier: float, at: datetime | None = None,
                        duration: float = 3600.0) -> dict:
    """Volumes of ``symbol``'s bars and ticks in [at, at + duration s] are multiplied."""
    sym = validate_simulated(symbol)
    start = _ts(at)
    return _add({"kind": "volume", "symbol": sym, "multiplier": float(multiplier),
                 "at": start.isoformat(), "until": (start + pd.Timedelta(seconds=duration)).isoformat()})


def set_volatility_regime(symbol: str, multiplier: float, start: datetime | None = None,
                          end: datetime | None = None) -> dict:
    """Returns of ``symbol`` (``"*"`` = all symbols and VIX) are scaled by ``multiplier`` in [start, end]."""
    sym = validate_simulated(symbol) if symbol != "*" else "*"
    begin = _ts(start) if start else _ts(None) - pd.Timedelta(days=30)
    until = _ts(end) if end else pd.Timestamp.max.tz_localize("UTC")
    return _add({"kind": "volatility", "symbol": sym, "multiplier": float(multiplier),
                 "at": begin.isoformat(), "until": until.isoformat()})


def clear_injections(symbol: str | None = None) -> None:
    items = [] if symbol is None else [i for i in _load_injections() if i["symbol"] != symbol.upper()]
    _save_injections(items)


def injections() -> list[dict]:
    return _load_injections()


class _Injected:
    """Injections relevant to one symbol, with fast lookups."""

    def __init__(self, symbol: str, items: list[dict]):
        mine = [i for i in items if i["symbol"] in (symbol, "*")]
        self.jumps = sorted((_ns(pd.Timestamp(i["at"])), 1.0 + i["pct"]) for i in mine if i["kind"] == "jump")
        self.volumes = [(_ns(pd.Timestamp(i["at"])), _ns(pd.Timestamp(i["until"])), i["multiplier"])
                        for i in mine if i["kind"] == "volume"]
        self.vols = [(_ns(pd.Timestamp(i["at"])), _ns(pd.Timestamp(i["until"])), i["multiplier"])
                     for i in mine if i["kind"] == "volatility"]
        if symbol == VIX:
            self.vols = []
            self.vix_regimes = [(_ns(pd.Timestamp(i["at"])), _ns(pd.Timestamp(i["until"])), i["multiplier"])
                                for i in items if i["kind"] == "volatility" and i["symbol"] in ("*", VIX)]
        else:
            self.vix_regimes = []

    def price_factor(self, times: np.ndarray) -> np.ndarray:
        factor = np.ones(len(times))
        for at, mult in self.jumps:
            factor[times >= at] *= mult
        for start, end, mult in self.vix_regimes:
            factor[(times >= start) & (times <= end)] *= mult
        return factor

    def volume_factor(self, starts: np.ndarray, ends: np.ndarray) -> np.ndarray:
        factor = np.ones(len(starts))
        for at, until, mult in self.volumes:
            factor[(ends >= at) & (starts <= until)] *= mult
        return factor

    def vol_factor(self, starts: np.ndarray, ends: np.ndarray) -> np.ndarray:
        factor = np.ones(len(starts))
        for at, until, mult in self.vols:
            factor[(ends >= at) & (starts <= until)] *= mult
        return factor


# --- market data provider ------------------------------------------------------------------------
class SimulatedMarketData:
    name = "simulated"
    now = staticmethod(sim_now)

    def __init__(self):
        self._items: list[dict] | None = None

    # injections are read once per provider instance (one Redis GET)
    def _inj(self, symbol: str) -> _Injected:
        if self._items is None:
            self._items = _load_injections()
        return _Injected(symbol, self._items)

    def generation(self) -> int:
        return generation()

    def validate_symbol(self, symbol: str) -> str:
        return validate_simulated(symbol)

    def market_clock(self, at: datetime | None = None) -> dict:
        return market_clock(at)

    def _daily_arrays(self, symbol: str, n: int, inj: _Injected, apply_price: bool = True):
        seed = int(conf.get("NEXUS_SIM_SEED"))
        open_, high, low, close, volume, rets, sd = _base_daily(symbol, seed, n)
        _, opens, closes = _schedule()
        starts, ends = opens[:n], closes[:n]
        vf = inj.vol_factor(starts, ends)
        if (vf != 1.0).any() and symbol != VIX:
            # re-scale the de-meaned returns inside the regime windows
            drift = rets.mean()
            new_rets = drift + (rets - drift) * vf
            scale = np.exp(np.cumsum(new_rets - rets))
            open_, high, low, close = open_ * scale, high * scale, low * scale, close * scale
            high = high * np.exp((vf - 1) * 0.5 * sd * 0.5)
            low = low * np.exp(-(vf - 1) * 0.5 * sd * 0.5)
        if not apply_price:
            return open_, high, low, close, volume
        pf_close = inj.price_factor(ends)
        pf_open = inj.price_factor(starts)
        close = close * pf_close
        open_ = open_ * pf_open
        high = np.maximum(high * np.maximum(pf_close, pf_open), np.maximum(open_, close))
        low = np.minimum(low * np.minimum(pf_close, pf_open), np.minimum(open_, close))
        volume = volume * inj.volume_factor(starts, ends)
        return open_, high, low, close, volume

    def daily_bars(self, symbol: str, limit: int = 300, end: datetime | None = None) -> pd.DataFrame:
        """The last ``limit`` daily bars up to ``end`` (default now), indexed by session close (UTC).

        While a session is open its bar is partial: the close is the current price.
        """
        symbol = validate_simulated(symbol)
        ts = _ts(end)
        i, is_open = session_index(ts)
        n = i + 1
        inj = self._inj(symbol)
        open_, high, low, close, volume = self._daily_arrays(symbol, n, inj)
        sessions, opens, closes = _schedule()
        close = close.copy()
        high = high.copy()
        low = low.copy()
        volume = volume.copy()
        if is_open:
            price = self.latest_price(symbol, at=ts)
            close[-1] = price
            high[-1] = max(high[-1], price, open_[-1])
            low[-1] = min(low[-1], price, open_[-1])
            elapsed = (_ns(ts) - opens[i]) / (closes[i] - opens[i])
            volume[-1] *= max(float(elapsed), 0.01)
        first = max(0, n - int(limit))
        index = pd.DatetimeIndex(closes[first:n]).tz_localize("UTC")
        df = pd.DataFrame(
            {"open": open_[first:n], "high": high[first:n], "low": low[first:n], "close": close[first:n],
             "volume": np.floor(volume[first:n])},
            index=index,
        )
        df.index.name = "timestamp"
        return df

    def _minute_path(self, symbol: str, i: int, inj: _Injected) -> tuple[np.ndarray, np.ndarray, float]:
        """Base minute-close path (n_minutes + 1 points, first = open) of session i, and its times."""
        seed = int(conf.get("NEXUS_SIM_SEED"))
        sd = _base_daily(symbol, seed, 1)[6]
        open_, _h, _l, close, _v = self._daily_arrays(symbol, i + 1, inj, apply_price=False)
        _, opens, closes = _schedule()
        start, end = opens[i], closes[i]
        minutes = int((end - start) / np.timedelta64(1, "m"))
        rng = np.random.default_rng(_seed(symbol, "intraday", i))
        vf = inj.vol_factor(np.array([start]), np.array([end]))[0]
        steps = rng.standard_normal(minutes) * (sd * vf / math.sqrt(minutes))
        w = np.concatenate([[0.0], np.cumsum(steps)])
        frac = np.linspace(0.0, 1.0, minutes + 1)
        bridge = w - frac * w[-1]
        logp = math.log(open_[i]) + frac * (math.log(close[i]) - math.log(open_[i])) + bridge
        times = start + np.arange(minutes + 1) * np.timedelta64(1, "m")
        return np.exp(logp), times, float(_v[i])

    def latest_price(self, symbol: str, at: datetime | None = None) -> float:
        symbol = validate_simulated(symbol)
        ts = _ts(at)
        i, is_open = session_index(ts)
        inj = self._inj(symbol)
        t = _ns(ts)
        if not is_open:
            close = self._daily_arrays(symbol, i + 1, inj, apply_price=False)[3][i]
            return float(round(close * inj.price_factor(np.array([t]))[0], 4))
        path, times, _ = self._minute_path(symbol, i, inj)
        pos = (t - times[0]) / np.timedelta64(1, "m")
        k = min(int(pos), len(path) - 2)
        frac = pos - k
        base = path[k] + (path[k + 1] - path[k]) * frac
        return float(round(base * inj.price_factor(np.array([t]))[0], 4))

    def intraday_bars(self, symbol: str, minutes: int = 1, limit: int = 390,
                      end: datetime | None = None) -> pd.DataFrame:
        """Minute bars (aggregated to ``minutes``) of the latest session up to ``end``."""
        symbol = validate_simulated(symbol)
        ts = _ts(end)
        i, is_open = session_index(ts)
        inj = self._inj(symbol)
        path, times, day_volume = self._minute_path(symbol, i, inj)
        rng = np.random.default_rng(_seed(symbol, "intraday-vol", i))
        n = len(path) - 1
        u = np.linspace(-1, 1, n)
        profile = 1.0 + 1.5 * u * u  # U-shaped volume over the session
        vols = day_volume * profile / profile.sum() * np.exp(0.3 * rng.standard_normal(n))
        bar_end = times[1:]
        pf = inj.price_factor(bar_end)
        pf_open = inj.price_factor(times[:-1])
        o = path[:-1] * pf_open
        c = path[1:] * pf
        wiggle = np.exp(np.abs(rng.standard_normal(n)) * 0.0005)
        df = pd.DataFrame({
            "open": o, "high": np.maximum(o, c) * wiggle, "low": np.minimum(o, c) / wiggle, "close": c,
            "volume": np.floor(vols * inj.volume_factor(times[:-1], bar_end)),
        }, index=pd.DatetimeIndex(bar_end).tz_localize("UTC"))
        if is_open:
            df = df[df.index <= ts]
        if minutes > 1:
            df = df.resample(f"{minutes}min", label="right", closed="right").agg(
                {"open": "first", "high": "max", "low": "min", "close": "last", "volume": "sum"}).dropna()
        df.index.name = "timestamp"
        return df.tail(int(limit))

    def ticks(self, symbol: str, count: int = 100, start: datetime | None = None,
              interval: float = 1.0) -> list[dict]:
        """A seeded tick stream: ``count`` trades ``interval`` seconds apart from ``start`` (default now).

        Starts at ``latest_price(start)``; per-tick volatility follows the symbol's daily volatility
        (scaled by any regime); injected jumps and volume spikes apply by timestamp.
        """
        symbol = validate_simulated(symbol)
        t0 = _ts(start)
        inj = self._inj(symbol)
        seed = int(conf.get("NEXUS_SIM_SEED"))
        sd_day = _base_daily(symbol, seed, 1)[6]
        sd_tick = sd_day / math.sqrt(23400 / max(interval, 1e-3))
        rng = np.random.default_rng(_seed(symbol, "ticks", int(t0.timestamp())))
        base_price = self.latest_price(symbol, at=t0) / inj.price_factor(np.array([_ns(t0)]))[0]
        times = _ns(t0) + (np.arange(count) * interval * 1e9).astype("timedelta64[ns]")
        vf = inj.vol_factor(times, times)
        logp = math.log(base_price) + np.cumsum(rng.standard_normal(count) * sd_tick * vf)
        prices = np.exp(logp) * inj.price_factor(times)
        prof = _symbol_profile(symbol, seed)
        sizes = np.maximum(1, np.floor(rng.exponential(prof["volume"] / 23400 * interval + 1, count)))
        sizes = sizes * inj.volume_factor(times, times)
        return [
            {"symbol": symbol, "timestamp": pd.Timestamp(t, tz="UTC").isoformat(),
             "price": round(float(p), 4), "size": int(s)}
            for t, p, s in zip(times, prices, sizes, strict=True)
        ]

    def vix(self, at: datetime | None = None) -> float:
        """The simulated VIX level at ``at``: its last daily close (scaled by market-wide regimes)."""
        bars = self.daily_bars(VIX, limit=1, end=at)
        return float(round(bars["close"].iloc[-1], 2))


# --- news ------------------------------------------------------------------------------------
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
        "published_at": _ts(at).isoformat(), "breaking": bool(breaking),
        "url": "https://news.sim.invalid/injected", "provider": "simulated",
    }
    try:
        items = list(cache.get(NEWS_KEY) or [])
    except Exception:
        items = []
    items.append(item)
    cache.set(NEWS_KEY, items[-MAX_INJECTIONS:], None)
    _save_injections(_load_injections())  # bump the generation: cached news is stale
    return item


def clear_headlines() -> None:
    cache.delete(NEWS_KEY)
    _save_injections(_load_injections())


class SimulatedNews:
    """Seeded headlines: per symbol and hour, a Poisson number of articles (rate 0.5/h) with a
    template (positive, negative or neutral), a source (Reuters, Bloomberg, ...), a timestamp and a
    10% chance of being breaking news. Same seed, same headlines."""

    name = "simulated"
    rate_per_hour = 0.5
    now = staticmethod(sim_now)

    def generation(self) -> int:
        return generation()

    def _hour(self, symbol: str, hour: pd.Timestamp) -> list[dict]:
        rng = np.random.default_rng(_seed(symbol, "news", int(hour.timestamp())))
        out = []
        for k in range(int(rng.poisson(self.rate_per_hour))):
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
        return out

    def get_news(self, symbols: list[str], limit: int = 20, start: datetime | None = None,
                 end: datetime | None = None, keywords: list[str] | None = None) -> list[dict]:
        symbols = [validate_simulated(s) for s in symbols] or list(DEFAULT_WATCHLIST)
        t_end = _ts(end)
        t_start = _ts(start) if start else t_end - pd.Timedelta(hours=24)
        items: list[dict] = []
        hour = t_start.floor("h")
        while hour <= t_end:
            for sym in symbols:
                items.extend(self._hour(sym, hour))
            hour += pd.Timedelta(hours=1)
        try:
            injected = list(cache.get(NEWS_KEY) or [])
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


