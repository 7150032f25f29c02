"""Injections into the simulated market (for tests, demos and triggers), stored in the Django cache so
every process sees them; each change bumps ``generation()`` (the provider cache keys carry it)."""
from __future__ import annotations

from datetime import datetime

import numpy as np
import pandas as pd
from django.core.cache import cache

from trading_app.providers.simulated._clock import as_ns, as_utc
from trading_app.symbols import VIX, validate_simulated

INJECTIONS_KEY = "trading:sim:injections"
GENERATION_KEY = "trading:sim:generation"
MAX_INJECTIONS = 500


def load_injections() -> list[dict]:
    try:
        return list(cache.get(INJECTIONS_KEY) or [])
    except Exception:  # cache down: no injections
        return []


def save_injections(items: list[dict]) -> None:
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
    items = load_injections()
    items.append(item)
    save_injections(items)
    return item


def inject_jump(symbol: str, pct: float, at: datetime | None = None) -> dict:
    """Every price of ``symbol`` at or after ``at`` (default now) is multiplied by ``1 + pct``."""
    sym = validate_simulated(symbol) if symbol != "*" else "*"
    return _add({"kind": "jump", "symbol": sym, "pct": float(pct), "at": as_utc(at).isoformat()})


def inject_volume_spike(symbol: str, multiplier: float, at: datetime | None = None,
                        duration: float = 3600.0) -> dict:
    """Volumes of ``symbol``'s bars and ticks in [at, at + duration s] are multiplied."""
    sym = validate_simulated(symbol)
    start = as_utc(at)
    return _add({"kind": "volume", "symbol": sym, "multiplier": float(multiplier),
                 "at": start.isoformat(), "until": (start + pd.Timedelta(seconds=duration)).isoformat()})


def set_volatility_regime(symbol: str, multiplier: float, start: datetime | None = None,
                          end: datetime | None = None) -> dict:
    """Returns of ``symbol`` (``"*"`` = all symbols and VIX) are scaled by ``multiplier`` in [start, end]."""
    sym = validate_simulated(symbol) if symbol != "*" else "*"
    begin = as_utc(start) if start else as_utc(None) - pd.Timedelta(days=30)
    until = as_utc(end) if end else pd.Timestamp.max.tz_localize("UTC")
    return _add({"kind": "volatility", "symbol": sym, "multiplier": float(multiplier),
                 "at": begin.isoformat(), "until": until.isoformat()})


def clear_injections(symbol: str | None = None) -> None:
    items = [] if symbol is None else [i for i in load_injections() if i["symbol"] != symbol.upper()]
    save_injections(items)


def injections() -> list[dict]:
    return load_injections()


class Injected:
    """Injections relevant to one symbol, with fast lookups."""

    def __init__(self, symbol: str, items: list[dict]):
        mine = [i for i in items if i["symbol"] in (symbol, "*")]
        self.jumps = sorted((as_ns(pd.Timestamp(i["at"])), 1.0 + i["pct"]) for i in mine if i["kind"] == "jump")
        self.volumes = [(as_ns(pd.Timestamp(i["at"])), as_ns(pd.Timestamp(i["until"])), i["multiplier"])
                        for i in mine if i["kind"] == "volume"]
        self.vols = [(as_ns(pd.Timestamp(i["at"])), as_ns(pd.Timestamp(i["until"])), i["multiplier"])
                     for i in mine if i["kind"] == "volatility"]
        if symbol == VIX:
            self.vols = []
            self.vix_regimes = [(as_ns(pd.Timestamp(i["at"])), as_ns(pd.Timestamp(i["until"])), i["multiplier"])
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


