"""The simulated market data provider: per-symbol seeded daily walks scaled to reference prices,
Brownian-bridge minute bars inside each session, seeded ticks, and VIX (see the package docstring)."""
from __future__ import annotations

import math
import zlib
from datetime import datetime
from functools import lru_cache

import numpy as np
import pandas as pd

from trading_app.providers.simulated._clock import (
    as_ns,
    as_utc,
    current_seed,
    market_clock,
    schedule,
    seed_for,
    session_index,
    sim_now,
)
from trading_app.providers.simulated._injections import Injected, generation, load_injections
from trading_app.symbols import VIX, validate_simulated

# Each symbol's close on this session is its reference price (prices around it are a random walk away).
REFERENCE_SESSION = pd.Timestamp("2025-12-01")
REFERENCE_PRICES = {  # USD, realistic late-2025 levels (a plausibility table, not quotes)
    "AAPL": 280.0, "MSFT": 490.0, "GOOGL": 300.0, "GOOG": 300.0, "AMZN": 230.0, "NVDA": 180.0,
    "META": 640.0, "TSLA": 430.0, "JPM": 310.0, "V": 330.0, "UNH": 330.0, "XOM": 118.0, "JNJ": 200.0,
    "WMT": 105.0, "PG": 148.0, "MA": 550.0, "HD": 355.0, "KO": 70.0, "PEP": 148.0, "BAC": 52.0,
    "DIS": 105.0, "NFLX": 110.0, "AMD": 220.0, "INTC": 40.0, "BA": 190.0, "PFE": 25.0, "MRNA": 25.0,
    "SPY": 680.0, "QQQ": 610.0, "SH": 36.0,
}
BAR_COLUMNS = ["open", "high", "low", "close", "volume"]


def reference_price(symbol: str) -> float:
    """The symbol's close on REFERENCE_SESSION: the table's, else a deterministic plausible price."""
    if symbol in REFERENCE_PRICES:
        return REFERENCE_PRICES[symbol]
    rng = np.random.default_rng([zlib.crc32(symbol.encode()), 7])
    return round(float(math.exp(rng.uniform(math.log(20), math.log(500)))), 2)


@lru_cache(maxsize=1)
def _reference_index() -> int:
    sessions, _, _ = schedule()
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


# --- market data provider ------------------------------------------------------------------------
class SimulatedMarketData:
    name = "simulated"
    now = staticmethod(sim_now)

    def __init__(self):
        self._items: list[dict] | None = None

    # injections are read once per provider instance (one Redis GET)
    def _inj(self, symbol: str) -> Injected:
        if self._items is None:
            self._items = load_injections()
        return Injected(symbol, self._items)

    def generation(self) -> int:
        return generation()

    def validate_symbol(self, symbol: str) -> str:
        return validate_simulated(symbol)

    def market_clock(self, at: datetime | None = None) -> dict:
        return market_clock(at)

    def _daily_arrays(self, symbol: str, n: int, inj: Injected, apply_price: bool = True):
        seed = current_seed()
        open_, high, low, close, volume, rets, sd = _base_daily(symbol, seed, n)
        _, opens, closes = schedule()
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
        ts = as_utc(end)
        i, is_open = session_index(ts)
        n = i + 1
        inj = self._inj(symbol)
        open_, high, low, close, volume = self._daily_arrays(symbol, n, inj)
        sessions, opens, closes = schedule()
        close = close.copy()
        high = high.copy()
        low = low.copy()
        volume = volume.copy()
        if is_open:
            price = self.latest_price(symbol, at=ts)
            close[-1] = price
            high[-1] = max(high[-1], price, open_[-1])
            low[-1] = min(low[-1], price, open_[-1])
            elapsed = (as_ns(ts) - opens[i]) / (closes[i] - opens[i])
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

    def _minute_path(self, symbol: str, i: int, inj: Injected) -> tuple[np.ndarray, np.ndarray, float]:
        """Base minute-close path (n_minutes + 1 points, first = open) of session i, and its times."""
        seed = current_seed()
        sd = _base_daily(symbol, seed, 1)[6]
        open_, _h, _l, close, _v = self._daily_arrays(symbol, i + 1, inj, apply_price=False)
        _, opens, closes = schedule()
        start, end = opens[i], closes[i]
        minutes = int((end - start) / np.timedelta64(1, "m"))
        rng = np.random.default_rng(seed_for(symbol, "intraday", i))
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
        ts = as_utc(at)
        i, is_open = session_index(ts)
        inj = self._inj(symbol)
        t = as_ns(ts)
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
        ts = as_utc(end)
        i, is_open = session_index(ts)
        inj = self._inj(symbol)
        path, times, day_volume = self._minute_path(symbol, i, inj)
        rng = np.random.default_rng(seed_for(symbol, "intraday-vol", i))
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
        t0 = as_utc(start)
        inj = self._inj(symbol)
        seed = current_seed()
        sd_day = _base_daily(symbol, seed, 1)[6]
        sd_tick = sd_day / math.sqrt(23400 / max(interval, 1e-3))
        rng = np.random.default_rng(seed_for(symbol, "ticks", int(t0.timestamp())))
        base_price = self.latest_price(symbol, at=t0) / inj.price_factor(np.array([as_ns(t0)]))[0]
        times = as_ns(t0) + (np.arange(count) * interval * 1e9).astype("timedelta64[ns]")
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
