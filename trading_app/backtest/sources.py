"""Where a backtest's bars come from (the ``data_source`` argument): ``simulated`` (the seeded
simulator, ``data.History``), ``stored`` (bars imported with ``manage.py import_bars``) or
``alpaca`` (Alpaca's historical bars, fetched when the run starts; ``alpaca_bars``).

Stored and Alpaca bars are served the same way, as of the clock: ``BarsHistory`` holds the
replayed bars (those starting in ``[start, end)``) and ``BarsMarketData`` answers the steps from
every bar of the symbol that *closed* by now - the warm-up is the bars before ``start``, a bar in
progress is not served (only its open, as the latest price), nothing after the clock ever is.
Daily requests (``daily_bars``) read the symbol's ``1d`` bars whatever the run's interval.
"""
from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime

import pandas as pd

from trading_app import conf
from trading_app.backtest import bars as stored
from trading_app.backtest.bars import COLUMNS, WARMUP
from trading_app.backtest.data import History, ReplayMarketData, SimClock
from trading_app.providers.simulated import market_clock
from trading_app.symbols import InvalidSymbol, normalise
from workflows_app.errors import OperationError, PermanentStepError

SOURCES = ("simulated", "stored", "alpaca")
Loader = Callable[[str, str], pd.DataFrame]  # (symbol, interval) -> the to_frame shape, every bar


class BarsHistory(History):
    """``History`` over loaded bars: the replayed ones are those starting in ``[start, end)``."""

    def __init__(self, symbols: list[str], start: datetime, end: datetime, interval: str, loader: Loader):
        self.symbols, self.interval = symbols, interval
        lo, hi = pd.Timestamp(start), pd.Timestamp(end)
        self.frames = {}
        for s in symbols:
            df = loader(s, interval)
            self.frames[s] = df[(df["start"] >= lo) & (df["start"] < hi)]


class BarsMarketData(ReplayMarketData):
    """The market-data interface over loaded bars, as of the clock."""

    name = "backtest"

    def __init__(self, loader: Loader, clock: SimClock, interval: str = "1d"):
        self.loader, self.clock, self.interval, self.inner = loader, clock, interval, self
        self.cache: dict[tuple[str, str], pd.DataFrame] = {}

    def _bars(self, symbol: str, interval: str) -> pd.DataFrame:
        key = (normalise(symbol), interval)
        if key not in self.cache:
            self.cache[key] = self.loader(*key)
        return self.cache[key]

    def _closed(self, symbol: str, interval: str, end: datetime | None, limit: int) -> pd.DataFrame:
        df = self._bars(symbol, interval)
        if df.empty:
            raise InvalidSymbol(symbol, f"no {interval} bars for this symbol in the backtest's data source")
        at = pd.Timestamp(self.clock.clamp(end))
        done = df[df.index <= at]
        return done.set_index("start")[COLUMNS].tail(int(limit)).rename_axis("timestamp")

    def validate_symbol(self, symbol: str) -> str:
        return normalise(symbol)

    def daily_bars(self, symbol: str, limit: int = 300, end: datetime | None = None) -> pd.DataFrame:
        return self._closed(symbol, "1d", end, limit)

    def daily_bars_many(self, symbols: list[str], limit: int = 300, end: datetime | None = None) -> dict:
        return {normalise(s): self.daily_bars(s, limit=limit, end=end) for s in symbols}

    def intraday_bars(self, symbol: str, minutes: int = 1, limit: int = 390,
                      end: datetime | None = None) -> pd.DataFrame:
        interval = "1h" if minutes >= 60 else "1m"
        return self._closed(symbol, interval, end, limit)

    def latest_price(self, symbol: str, at: datetime | None = None) -> float:
        """The last close by ``at`` (the run's bars, else daily ones); while a bar is in progress, its
        open (known since it opened)."""
        now = pd.Timestamp(self.clock.clamp(at))
        for interval in dict.fromkeys((self.interval, "1d")):
            df = self._bars(symbol, interval)
            running = df[(df["start"] < now) & (df.index > now)]
            closed = df[df.index <= now]
            if len(running) or len(closed):  # at an instant one bar closes and the next opens: the close
                return float(running["open"].iloc[-1] if len(running) else closed["close"].iloc[-1])
        raise InvalidSymbol(symbol, "no bars by this time in the backtest's data source")

    def market_clock(self, at: datetime | None = None) -> dict:
        return market_clock(self.clock.clamp(at))

    def vix(self, at: datetime | None = None) -> float:
        raise PermanentStepError("vix: no VIX in stored or Alpaca bars (use data_source simulated)",
                                 error_class="invalid_params")


def stored_loader(start: datetime, end: datetime) -> Loader:
    return lambda symbol, interval: stored.frame(symbol, interval, since=start - WARMUP[interval], until=end)


def open_history(source: str, symbols: list[str], start: datetime, end: datetime, interval: str,
                 clock: SimClock) -> tuple[History, ReplayMarketData]:
    """(the bars the replay walks, the as-of market-data view) for the run's data source."""
    if source == "simulated":
        history = History(symbols, start, end, interval)
        return history, ReplayMarketData(history.sim, clock)
    if source == "stored":
        loader = stored_loader(start, end)
    else:
        from trading_app.backtest.alpaca_bars import AlpacaBars

        loader = AlpacaBars.from_settings(start.astimezone(UTC), end.astimezone(UTC)).frame
    md = BarsMarketData(loader, clock, interval)
    return BarsHistory(symbols, start, end, interval, md._bars), md


def check_source(source: str, symbols: list[str], start: datetime, end: datetime, interval: str) -> None:
    """Refuse, naming the field, a source that cannot serve the run: stored bars missing in the range,
    Alpaca without its keys."""
    if source == "stored":
        absent = stored.missing(symbols, interval, start, end)
        if absent:
            raise OperationError("INVALID_INPUT_DATA", f"data_source: no stored {interval} bars between "
                                 f"{start.isoformat()} and {end.isoformat()} for {', '.join(absent)} (import them "
                                 "with manage.py import_bars)", {"field": "data_source", "symbols": absent})
    elif source == "alpaca":
        key, secret = conf.alpaca_keys()
        if not (key and secret):
            raise OperationError("INVALID_INPUT_DATA", "data_source: alpaca needs APCA_API_KEY_ID and "
                                 "APCA_API_SECRET_KEY", {"field": "data_source"})
