"""Alpaca's historical bars for a backtest (``data_source: "alpaca"``, needs the Alpaca keys).

One ``GET /v2/stocks/bars`` per symbol and interval through the project's Alpaca client
(``AlpacaMarketData``: its SDK client with bounded retries and timeouts); the SDK follows
``next_page_token`` until the range is done, and ``limit`` bounds the total a run can pull. Each
bar (``t`` its start, ``o h l c v``) becomes the same shape as an imported bar (``bars.to_frame``).
"""
from __future__ import annotations

from datetime import datetime

import pandas as pd

from trading_app import conf
from trading_app.backtest.bars import WARMUP, to_frame
from trading_app.providers.alpaca_adapter import AlpacaMarketData

WARMUP_BARS = 3_000  # on top of the replayed bars: the indicators' history before start


class AlpacaBars:
    """Bars from ``start`` minus the interval's warm-up (``bars.WARMUP``) to ``end``."""

    def __init__(self, market_data: AlpacaMarketData, start: datetime, end: datetime):
        self.md, self.start, self.end = market_data, start, end

    @classmethod
    def from_settings(cls, start: datetime, end: datetime) -> AlpacaBars:
        return cls(AlpacaMarketData.from_settings(), start, end)

    def frame(self, symbol: str, interval: str) -> pd.DataFrame:
        from alpaca.data.requests import StockBarsRequest
        from alpaca.data.timeframe import TimeFrame, TimeFrameUnit

        unit = {"1d": TimeFrame.Day, "1h": TimeFrame.Hour, "1m": TimeFrame(1, TimeFrameUnit.Minute)}[interval]
        limit = int(conf.get("NEXUS_BACKTEST_MAX_BARS")) + WARMUP_BARS
        req = StockBarsRequest(symbol_or_symbols=symbol, timeframe=unit, start=self.start - WARMUP[interval], end=self.end,
                               limit=limit, feed=self.md.feed, adjustment="all")
        data = self.md._call(f"alpaca bars {symbol} {interval}", lambda: self.md.client.get_stock_bars(req))
        rows = (data or {}).get(symbol) or []
        return to_frame(((r["t"], r["o"], r["h"], r["l"], r["c"], r["v"]) for r in rows), interval)
