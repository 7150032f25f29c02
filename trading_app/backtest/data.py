"""History and the views a backtest's steps read: market data and news *as of* the simulated clock.

The source is the seeded simulator (deterministic history for any range, the run's own seed, no
injections). ``History`` holds the bars the replay walks (per symbol, at the run's interval) and
serves them to the broker, the trigger ticks and the equity curve. The step handlers read through
``ReplayMarketData`` / ``ReplayNews``: every request's ``end`` / ``at`` is clamped to the clock, so
a step asking for later data gets none (bars up to now, prices as of now, articles published by
now). Indicators warm up from the bars before ``start`` (they are there: the view serves history).
"""
from __future__ import annotations

from datetime import UTC, datetime, timedelta

import numpy as np
import pandas as pd

from trading_app.backtest.fills import Bar
from trading_app.providers.simulated import SimulatedMarketData, SimulatedNews, market_clock
from trading_app.providers.simulated._clock import ANCHOR, schedule
from trading_app.symbols import validate_simulated
from workflows_app.errors import OperationError

WARMUP_SESSIONS = 300  # daily bars before ``start`` the indicators warm up from (technical_analysis' default)


class SimClock:
    """The simulated clock: the replay moves it forward, the views read it."""

    def __init__(self, now: datetime):
        self.now = now

    def move(self, ts: float) -> None:
        self.now = datetime.fromtimestamp(ts, UTC)

    def clamp(self, at: datetime | None) -> datetime:
        if at is None:
            return self.now
        at = at if at.tzinfo else at.replace(tzinfo=UTC)
        return min(at, self.now)


def clean_simulator() -> SimulatedMarketData:
    sim = SimulatedMarketData()
    sim._items = []  # no injections: the seeded history only, the same on every run
    return sim


def check_history(start: datetime, warmup: int = WARMUP_SESSIONS) -> None:
    sessions, _, closes = schedule()
    first = int(np.searchsorted(closes, np.datetime64(start.astimezone(UTC).replace(tzinfo=None), "ns")))
    if first < warmup:
        earliest = sessions[min(warmup, len(sessions) - 1)].date().isoformat()
        raise OperationError("INVALID_INPUT_DATA", f"start must leave {warmup} sessions of warm-up after the "
                             f"simulator's history begins ({ANCHOR.date().isoformat()}): start on or after "
                             f"{earliest}", {"field": "start"})


class History:
    """The replayed bars per symbol at the interval: arrays of open/close times and OHLCV."""

    def __init__(self, symbols: list[str], start: datetime, end: datetime, interval: str):
        self.symbols, self.interval = symbols, interval
        self.sim = clean_simulator()
        self.frames = {s: self._load(s, pd.Timestamp(start), pd.Timestamp(end)) for s in symbols}

    def _load(self, symbol: str, start: pd.Timestamp, end: pd.Timestamp) -> pd.DataFrame:
        _, opens, closes = schedule()
        t0, t1 = (np.datetime64(t.tz_convert("UTC").tz_localize(None), "ns") for t in (start, end))
        lo, hi = int(np.searchsorted(closes, t0)), int(np.searchsorted(opens, t1))
        if self.interval == "1d":
            df = self.sim.daily_bars(symbol, limit=hi - lo + 2, end=end)
            df = df[(df.index >= start) & (df.index < end)]
            at = np.searchsorted(closes, df.index.tz_convert("UTC").tz_localize(None).to_numpy(dtype="datetime64[ns]"))
            return df.assign(start=pd.DatetimeIndex(opens[at]).tz_localize("UTC"))
        parts = [self._session(symbol, i) for i in range(lo, hi)]
        if not parts:
            return pd.DataFrame(columns=["open", "high", "low", "close", "volume", "start"])
        df = pd.concat(parts)
        return df[(df["start"] >= start) & (df.index < end)]

    def _session(self, symbol: str, i: int) -> pd.DataFrame:
        _, opens, closes = schedule()
        close = pd.Timestamp(closes[i], tz="UTC")
        df = self.sim.intraday_bars(symbol, minutes=1, limit=1000, end=close)
        if self.interval == "1h":
            df = df.resample("60min", label="right", closed="right").agg(
                {"open": "first", "high": "max", "low": "min", "close": "last", "volume": "sum"}).dropna()
            starts = np.maximum(df.index - pd.Timedelta(hours=1), pd.Timestamp(opens[i], tz="UTC"))
            return df.assign(start=starts)
        return df.assign(start=df.index - pd.Timedelta(minutes=1))

    def bars_total(self) -> int:
        return sum(len(f) for f in self.frames.values())

    def timeline(self) -> list[tuple[float, str, str, Bar]]:
        """(time, phase, symbol, bar) for every bar's open and close, in time order."""
        out = []
        for symbol, df in self.frames.items():
            starts = df["start"].map(lambda t: t.timestamp()).to_numpy() if len(df) else []
            ends = [t.timestamp() for t in df.index]
            for s, e, o, h, lo, c, v in zip(starts, ends, df["open"], df["high"], df["low"], df["close"],
                                            df["volume"], strict=True):
                bar = Bar(float(s), float(e), float(o), float(h), float(lo), float(c), float(v))
                out.append((bar.start, "open", symbol, bar))
                out.append((bar.end, "close", symbol, bar))
        return out


class ReplayMarketData:
    """The market-data interface the steps use, as of the clock (the simulator's own answers, never later)."""

    name = "backtest"

    def __init__(self, sim: SimulatedMarketData, clock: SimClock):
        self.sim, self.clock = sim, clock
        self.inner = self
        self._prices_at: datetime | None = None
        self._prices: dict[str, float] = {}

    def now(self) -> datetime:
        return self.clock.now

    def generation(self) -> int:
        return 0

    def validate_symbol(self, symbol: str) -> str:
        return validate_simulated(symbol)

    def daily_bars(self, symbol: str, limit: int = 300, end: datetime | None = None) -> pd.DataFrame:
        # While a session is open the simulator's last daily bar is partial (its close is the price
        # now), exactly as in paper mode; nothing after the clock is in it.
        return self.sim.daily_bars(symbol, limit=limit, end=self.clock.clamp(end))

    def daily_bars_many(self, symbols: list[str], limit: int = 300, end: datetime | None = None) -> dict:
        return {validate_simulated(s): self.daily_bars(s, limit=limit, end=end) for s in symbols}

    def intraday_bars(self, symbol: str, minutes: int = 1, limit: int = 390,
                      end: datetime | None = None) -> pd.DataFrame:
        at = self.clock.clamp(end)
        df = self.sim.intraday_bars(symbol, minutes=minutes, limit=limit, end=at)
        return df[df.index <= at]

    def latest_price(self, symbol: str, at: datetime | None = None) -> float:
        at = self.clock.clamp(at)
        # A decision asks each symbol's price several times at one instant (sizing, the governor's
        # reading, the order, the marks); the seeded simulator without injections answers alike.
        if self._prices_at != at:
            self._prices_at, self._prices = at, {}
        if symbol not in self._prices:
            self._prices[symbol] = self.sim.latest_price(symbol, at=at)
        return self._prices[symbol]

    def market_clock(self, at: datetime | None = None) -> dict:
        return market_clock(self.clock.clamp(at))

    def vix(self, at: datetime | None = None) -> float:
        return self.sim.vix(at=self.clock.clamp(at))

    def ticks(self, symbol: str, count: int = 100, start: datetime | None = None, interval: float = 1.0) -> list:
        return []  # the replay's ticks are its bars (trigger events); no sub-bar stream


class ReplayNews:
    """The news interface as of the clock: seeded headlines that became available by now, i.e.
    published at least ``delay`` seconds ago (0: the simulator's feed delivers at once)."""

    name = "backtest"

    def __init__(self, clock: SimClock, delay: float = 0.0):
        self.clock, self.delay = clock, timedelta(seconds=delay)
        self.inner = self
        self.source = SimulatedNews()
        self.source.with_injected = False

    def now(self) -> datetime:
        return self.clock.now

    def generation(self) -> int:
        return 0

    def get_news(self, symbols: list[str], limit: int = 20, start: datetime | None = None,
                 end: datetime | None = None, keywords: list[str] | None = None) -> list[dict]:
        until = self.clock.clamp(end) - self.delay
        since = min(self.clock.clamp(start), until) if start else None
        return self.source.get_news(symbols, limit=limit, start=since, end=until, keywords=keywords)
