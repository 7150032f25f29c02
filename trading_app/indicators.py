"""Technical indicators: stockstats per symbol, a vectorised multi-symbol path, and O(1) per-tick state.

Three entry points, all with stockstats' definitions (the tests check they agree to 1e-9):

* ``compute(bars, indicators)`` - one symbol's full set through stockstats: RSI(14), MACD line /
  signal / histogram (12, 26, 9), SMA 20/50/200, EMA 12/26, Bollinger(20, 2), ATR(14), 20-bar average
  volume. Returns the latest values plus ``macd_state`` (bullish when the MACD line is above its
  signal line) and whether a crossover happened on the last bar.
* ``rsi_macd_many(closes)`` - RSI + MACD for many symbols at once: closes are stacked into one
  (bars x symbols) frame and pandas' EWM runs over all columns in one pass. The multi-symbol
  ``technical_analysis`` step uses it; stockstats is called per symbol only for the other indicators.
* ``IncrementalIndicators`` - per-symbol state updated per tick in O(1): Wilder RSI and EMA-based
  MACD (exactly pandas' ``adjust=True`` EWM, kept as running numerator/denominator pairs, so after
  ``from_history(closes)`` it equals stockstats on the same closes), plus a rolling average volume.
  ``IndicatorBook`` keeps one state per symbol for trigger evaluators.

Warm-up: EWM-based values depend on the whole history; with >= 250 bars (the step fetches 300 by
default) the remaining weight of the first bar is below 1e-12 for MACD and 1e-7 for RSI.
"""
from __future__ import annotations

import math
from collections import deque
from collections.abc import Iterable, Mapping

import numpy as np
import pandas as pd

RSI_PERIOD = 14
MACD_FAST, MACD_SLOW, MACD_SIGNAL = 12, 26, 9
MIN_HISTORY = 250

INDICATOR_ALIASES = {
    "RSI": "rsi", "MACD": "macd", "SMA": "sma", "EMA": "ema", "BOLLINGER": "bollinger", "BB": "bollinger",
    "BOLL": "bollinger", "BBANDS": "bollinger", "ATR": "atr", "VOLUME": "volume", "AVG_VOLUME": "volume",
}
ALL_INDICATORS = ["rsi", "macd", "sma", "ema", "bollinger", "atr", "volume"]


def normalise_indicators(names: Iterable[str]) -> list[str]:
    out = []
    for name in names:
        key = INDICATOR_ALIASES.get(str(name).strip().upper())
        if key is None:
            raise ValueError(f"unknown indicator {name!r}; known: RSI, MACD, SMA, EMA, BOLLINGER, ATR, VOLUME")
        if key not in out:
            out.append(key)
    return out


def macd_state(macd: float, signal: float) -> str:
    return "bullish" if macd >= signal else "bearish"


def _r(x, nd=4):
    x = float(x)
    return None if math.isnan(x) else round(x, nd)


# --- one symbol, stockstats -------------------------------------------------------------------
def compute(bars: pd.DataFrame, indicators: Iterable[str] = ALL_INDICATORS) -> dict:
    """Latest indicator values for one symbol's OHLCV bars (stockstats)."""
    from stockstats import wrap

    wanted = normalise_indicators(indicators)
    df = wrap(bars[["open", "high", "low", "close", "volume"]].astype(float).reset_index(drop=True))
    out: dict = {"bars": len(df), "close": _r(df["close"].iloc[-1])}
    if len(df) < MIN_HISTORY:
        out["warning"] = f"only {len(df)} bars (< {MIN_HISTORY}): EWM-based values may not have warmed up"
    if "rsi" in wanted:
        out["rsi"] = _r(df[f"rsi_{RSI_PERIOD}"].iloc[-1], 2)
    if "macd" in wanted:
        macd, sig, hist = df["macd"], df["macds"], df["macdh"]
        state = macd_state(macd.iloc[-1], sig.iloc[-1])
        prev = macd_state(macd.iloc[-2], sig.iloc[-2]) if len(df) > 1 else state
        out["macd"] = state
        out["macd_line"] = _r(macd.iloc[-1])
        out["macd_signal"] = _r(sig.iloc[-1])
        out["macd_hist"] = _r(hist.iloc[-1])
        out["macd_crossover"] = None if prev == state else state
    if "sma" in wanted:
        for n in (20, 50, 200):
            out[f"sma_{n}"] = _r(df[f"close_{n}_sma"].iloc[-1])
    if "ema" in wanted:
        for n in (12, 26):
            out[f"ema_{n}"] = _r(df[f"close_{n}_ema"].iloc[-1])
    if "bollinger" in wanted:
        out["bollinger"] = {"middle": _r(df["boll"].iloc[-1]), "upper": _r(df["boll_ub"].iloc[-1]),
                            "lower": _r(df["boll_lb"].iloc[-1])}
        width = out["bollinger"]["upper"] - out["bollinger"]["lower"]
        out["bollinger"]["percent_b"] = _r((out["close"] - out["bollinger"]["lower"]) / width) if width else None
    if "atr" in wanted:
        out["atr"] = _r(df[f"atr_{RSI_PERIOD}"].iloc[-1])
    if "volume" in wanted:
        avg = float(df["volume_20_sma"].iloc[-1])
        out["avg_volume"] = _r(avg, 1)
        out["volume"] = _r(df["volume"].iloc[-1], 1)
        out["volume_ratio"] = _r(out["volume"] / avg, 3) if avg else None
    return out


def atr(bars: pd.DataFrame, period: int = RSI_PERIOD) -> float:
    """Wilder ATR (stockstats' definition) of the latest bar."""
    high, low, close = (bars[c].to_numpy(dtype=float) for c in ("high", "low", "close"))
    prev = np.concatenate([[close[0]], close[:-1]])
    tr = np.maximum.reduce([high - low, np.abs(high - prev), np.abs(low - prev)])
    return float(pd.Series(tr).ewm(alpha=1.0 / period, adjust=True).mean().iloc[-1])


# --- many symbols, vectorised ----------------------------------------------------------------------
def rsi_macd_frame(closes: pd.DataFrame) -> dict[str, pd.DataFrame]:
    """RSI + MACD over a (bars x symbols) frame of closes; stockstats' formulas, all columns at once."""
    values = closes.to_numpy(dtype=float)
    diff = np.zeros_like(values)
    diff[1:] = values[1:] - values[:-1]
    up = pd.DataFrame(np.where(diff > 0, diff, 0.0)).ewm(alpha=1.0 / RSI_PERIOD, adjust=True).mean().to_numpy()
    down = pd.DataFrame(np.where(diff < 0, -diff, 0.0)).ewm(alpha=1.0 / RSI_PERIOD, adjust=True).mean().to_numpy()
    total = up + down
    with np.errstate(divide="ignore", invalid="ignore"):
        rsi = np.clip(np.where(total != 0, 100.0 * up / total, 50.0), 0.0, 100.0)
    rsi[0] = 50.0
    frame = pd.DataFrame(values)
    macd = (frame.ewm(span=MACD_FAST, adjust=True).mean() - frame.ewm(span=MACD_SLOW, adjust=True).mean())
    signal = macd.ewm(span=MACD_SIGNAL, adjust=True).mean()
    cols, idx = closes.columns, closes.index
    return {
        "rsi": pd.DataFrame(rsi, index=idx, columns=cols),
        "macd": pd.DataFrame(macd.to_numpy(), index=idx, columns=cols),
        "macds": pd.DataFrame(signal.to_numpy(), index=idx, columns=cols),
    }


def atr_last(high: np.ndarray, low: np.ndarray, close: np.ndarray, period: int = RSI_PERIOD) -> np.ndarray:
    """Latest Wilder ATR of each column of (bars x symbols) arrays (same definition as ``atr``)."""
    prev = np.vstack([close[:1], close[:-1]])
    tr = np.maximum(np.maximum(high - low, np.abs(high - prev)), np.abs(low - prev))
    return pd.DataFrame(tr).ewm(alpha=1.0 / period, adjust=True).mean().to_numpy()[-1]


def batch_indicators(bars: Mapping[str, pd.DataFrame]) -> dict[str, dict]:
    """What the multi-symbol step needs per symbol - RSI, MACD, ATR, last price - in vectorised passes."""
    out = rsi_macd_many({s: b["close"] for s, b in bars.items()})
    by_len: dict[int, list[str]] = {}
    for sym, b in bars.items():
        by_len.setdefault(len(b), []).append(sym)
    for n, symbols in by_len.items():
        if n < 2:
            for sym in symbols:
                out[sym]["atr"] = None
                out[sym]["price"] = round(float(bars[sym]["close"].iloc[-1]), 4) if n else None
            continue
        cols = {c: np.column_stack([bars[s][c].to_numpy(dtype=float) for s in symbols])
                for c in ("high", "low", "close")}
        atrs = atr_last(cols["high"], cols["low"], cols["close"])
        for j, sym in enumerate(symbols):
            out[sym]["atr"] = round(float(atrs[j]), 4)
            out[sym]["price"] = round(float(cols["close"][-1, j]), 4)
    return out


def rsi_macd_many(closes: Mapping[str, Iterable[float]]) -> dict[str, dict]:
    """Latest RSI and MACD for each symbol of ``{symbol: closes}`` (one vectorised pass per length)."""
    by_len: dict[int, dict[str, np.ndarray]] = {}
    for sym, series in closes.items():
        arr = np.asarray(series.to_numpy() if hasattr(series, "to_numpy") else series, dtype=float)
        by_len.setdefault(len(arr), {})[sym] = arr
    out: dict[str, dict] = {}
    for n, group in by_len.items():
        if n == 0:
            for sym in group:
                out[sym] = {"rsi": None, "macd": None}
            continue
        symbols = list(group)
        stacked = np.column_stack([group[s] for s in symbols])
        frames = rsi_macd_frame(pd.DataFrame(stacked, columns=symbols))
        rsi = frames["rsi"].to_numpy()
        macd = frames["macd"].to_numpy()
        sig = frames["macds"].to_numpy()
        last_r, last_m, last_s = rsi[-1], macd[-1], sig[-1]
        prev_m, prev_s = (macd[-2], sig[-2]) if n > 1 else (last_m, last_s)
        for j, sym in enumerate(symbols):
            state = macd_state(last_m[j], last_s[j])
            prev = macd_state(prev_m[j], prev_s[j])
            out[sym] = {
                "rsi": round(float(last_r[j]), 2),
                "macd": state,
                "macd_line": round(float(last_m[j]), 4),
                "macd_signal": round(float(last_s[j]), 4),
                "macd_hist": round(float(last_m[j] - last_s[j]), 4),
                "macd_crossover": None if prev == state else state,
                "bars": n,
            }
    return out


# --- incremental, per tick ------------------------------------------------------------------
class _Ewm:
    """pandas ``ewm(adjust=True).mean()`` as a running (numerator, denominator) pair: O(1) per value."""

    __slots__ = ("decay", "num", "den")

    def __init__(self, alpha: float):
        self.decay = 1.0 - alpha
        self.num = 0.0
        self.den = 0.0

    def push(self, x: float) -> float:
        self.num = x + self.decay * self.num
        self.den = 1.0 + self.decay * self.den
        return self.num / self.den

    def peek(self, x: float) -> float:
        return (x + self.decay * self.num) / (1.0 + self.decay * self.den)

    @property
    def value(self) -> float:
        return self.num / self.den if self.den else float("nan")


class IncrementalIndicators:
    """One symbol's RSI / MACD / average volume, updated in O(1) per price.

    >>> state = IncrementalIndicators.from_history(daily_closes)   # warm up (stockstats-equal)
    >>> state.update(189.5, volume=1200)                           # each tick (or bar close)
    >>> state.rsi, state.macd_state, state.volume_ratio(5000)

    Each ``update`` is one new observation (a tick or a bar close, as the caller decides);
    ``preview(price)`` returns what the values would be without changing the state.
    """

    __slots__ = ("_up", "_down", "_fast", "_slow", "_signal", "_vols", "_vol_sum", "_vol_n",
                 "last_price", "prev_price", "count", "rsi", "macd_line", "macd_signal", "last_volume")

    def __init__(self, rsi_period: int = RSI_PERIOD, fast: int = MACD_FAST, slow: int = MACD_SLOW,
                 signal: int = MACD_SIGNAL, volume_period: int = 20):
        self._up = _Ewm(1.0 / rsi_period)
        self._down = _Ewm(1.0 / rsi_period)
        self._fast = _Ewm(2.0 / (fast + 1))
        self._slow = _Ewm(2.0 / (slow + 1))
        self._signal = _Ewm(2.0 / (signal + 1))
        self._vols: deque = deque(maxlen=volume_period)
        self._vol_sum = 0.0
        self._vol_n = volume_period
        self.last_price: float | None = None
        self.prev_price: float | None = None
        self.last_volume: float | None = None
        self.count = 0
        self.rsi = 50.0
        self.macd_line = 0.0
        self.macd_signal = 0.0

    @classmethod
    def from_history(cls, closes: Iterable[float], volumes: Iterable[float] | None = None, **kw):
        state = cls(**kw)
        closes = list(map(float, closes))
        vols = list(map(float, volumes)) if volumes is not None else [None] * len(closes)
        for price, vol in zip(closes, vols, strict=True):
            state.update(price, vol)
        return state

    def update(self, price: float, volume: float | None = None) -> IncrementalIndicators:
        prev = self.last_price
        change = 0.0 if prev is None else price - prev
        up = self._up.push(change if change > 0 else 0.0)
        down = self._down.push(-change if change < 0 else 0.0)
        total = up + down
        self.rsi = 50.0 if prev is None else (min(100.0, 100.0 * up / total) if total else 50.0)
        macd = self._fast.push(price) - self._slow.push(price)
        self.macd_line = macd
        self.macd_signal = self._signal.push(macd)
        self.prev_price = prev
        self.last_price = price
        self.count += 1
        if volume is not None:
            vols = self._vols
            if len(vols) == vols.maxlen:
                self._vol_sum -= vols[0]
            vols.append(volume)
            self._vol_sum += volume
            self.last_volume = volume
        return self

    def preview(self, price: float) -> dict:
        prev = self.last_price
        change = 0.0 if prev is None else price - prev
        up = self._up.peek(change if change > 0 else 0.0)
        down = self._down.peek(-change if change < 0 else 0.0)
        total = up + down
        rsi = 50.0 if prev is None else (min(100.0, 100.0 * up / total) if total else 50.0)
        macd = self._fast.peek(price) - self._slow.peek(price)
        signal = self._signal.peek(macd)
        return {"rsi": rsi, "macd_line": macd, "macd_signal": signal, "macd": macd_state(macd, signal)}

    @property
    def macd_hist(self) -> float:
        return self.macd_line - self.macd_signal

    @property
    def macd_state(self) -> str:
        return macd_state(self.macd_line, self.macd_signal)

    @property
    def avg_volume(self) -> float | None:
        return self._vol_sum / len(self._vols) if self._vols else None

    def volume_ratio(self, volume: float) -> float | None:
        avg = self.avg_volume
        return volume / avg if avg else None

    def change_since(self, reference: float) -> float | None:
        """Relative move of the last price from ``reference`` (0.02 = +2%)."""
        if self.last_price is None or not reference:
            return None
        return self.last_price / reference - 1.0

    def snapshot(self) -> dict:
        return {
            "price": self.last_price, "prev_price": self.prev_price, "count": self.count,
            "rsi": round(self.rsi, 4), "macd": self.macd_state, "macd_line": round(self.macd_line, 6),
            "macd_signal": round(self.macd_signal, 6), "macd_hist": round(self.macd_hist, 6),
            "avg_volume": self.avg_volume, "last_volume": self.last_volume,
        }


class IndicatorBook:
    """Per-symbol ``IncrementalIndicators`` for trigger evaluators (one book per process/evaluator).

    ``book.update("AAPL", price, volume)`` warms the symbol on first use from ``warm_bars`` daily
    bars of the market-data provider (``market_data`` = a provider, or None for no warm-up), then
    applies the tick and returns the state.
    """

    def __init__(self, market_data=None, warm_bars: int = 300):
        self.market_data = market_data
        self.warm_bars = warm_bars
        self.states: dict[str, IncrementalIndicators] = {}

    def get(self, symbol: str) -> IncrementalIndicators:
        state = self.states.get(symbol)
        if state is None:
            if self.market_data is not None and self.warm_bars:
                bars = self.market_data.daily_bars(symbol, limit=self.warm_bars)
                state = IncrementalIndicators.from_history(bars["close"], bars["volume"])
            else:
                state = IncrementalIndicators()
            self.states[symbol] = state
        return state

    def update(self, symbol: str, price: float, volume: float | None = None) -> IncrementalIndicators:
        return self.get(symbol).update(price, volume)
