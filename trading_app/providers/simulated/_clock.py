"""The simulator's clock and calendar: XNYS sessions (exchange_calendars) from ``ANCHOR`` on, and
``sim_now()`` (real time unless ``NEXUS_SIM_NOW`` pins it)."""
from __future__ import annotations

import zlib
from contextvars import ContextVar
from datetime import UTC, datetime
from functools import lru_cache

import numpy as np
import pandas as pd

from trading_app import conf

ANCHOR = pd.Timestamp("2019-01-02")
# A backtest replays the history of its own seed (``seeded``) without changing the process's setting.
_SEED: ContextVar[int | None] = ContextVar("nexus_sim_seed", default=None)


def current_seed() -> int:
    """The simulator's seed: a backtest's own (``seeded``), else NEXUS_SIM_SEED."""
    seed = _SEED.get()
    return int(conf.get("NEXUS_SIM_SEED")) if seed is None else seed


class seeded:
    """``with seeded(7): ...`` - the simulator draws from seed 7 in this context only."""

    def __init__(self, seed: int | None):
        self.seed, self.token = seed, None

    def __enter__(self):
        self.token = _SEED.set(self.seed)
        return self

    def __exit__(self, *exc):
        _SEED.reset(self.token)


@lru_cache(maxsize=1)
def calendar():
    import warnings

    import exchange_calendars as xcals  # heavy (builds every exchange's calendar): loaded once, on first use

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
def schedule() -> tuple[pd.DatetimeIndex, np.ndarray, np.ndarray]:
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


def as_utc(at: datetime | None) -> pd.Timestamp:
    if at is None:
        at = sim_now()
    ts = pd.Timestamp(at)
    if ts.tzinfo is None:
        ts = ts.tz_localize("UTC")
    return ts.tz_convert("UTC")


def as_ns(ts: pd.Timestamp) -> np.datetime64:
    return np.datetime64(ts.tz_convert("UTC").tz_localize(None), "ns")


def session_index(at: datetime | None = None) -> tuple[int, bool]:
    """(index of the latest session that has opened at ``at``, whether the market is open at ``at``)."""
    _, opens, closes = schedule()
    t = as_ns(as_utc(at))
    i = int(np.searchsorted(opens, t, side="right")) - 1
    if i < 0:
        raise ValueError("time before the simulated history")
    return i, bool(t < closes[i])


def market_clock(at: datetime | None = None) -> dict:
    ts = as_utc(at)
    sessions, opens, closes = schedule()
    i, is_open = session_index(ts)
    next_open = pd.Timestamp(opens[min(i + 1, len(opens) - 1)], tz="UTC")
    return {
        "timestamp": ts.isoformat(),
        "is_open": is_open,
        "session": sessions[i].date().isoformat(),
        "next_open": next_open.isoformat(),
        "next_close": pd.Timestamp(closes[i if is_open else min(i + 1, len(closes) - 1)], tz="UTC").isoformat(),
    }


def seed_for(*parts) -> list[int]:
    """A random seed from ``NEXUS_SIM_SEED`` and the parts (strings hashed with crc32): same parts, same stream."""
    return [current_seed()] + [
        p if isinstance(p, int) else zlib.crc32(str(p).encode()) for p in parts
    ]
