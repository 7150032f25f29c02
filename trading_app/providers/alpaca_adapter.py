"""Alpaca market data and news (alpaca-py); the broker is ``alpaca_broker``.

Calls go through ``alpaca_client.AlpacaCaller`` (bounded retries of 429/503, errors mapped to step
errors); alpaca-py is imported where it is used (optional and heavy, see ``alpaca_client``).
"""
from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pandas as pd

from trading_app.providers.alpaca_client import AlpacaCaller, no_sdk_retry, require_keys
from trading_app.providers.simulated import market_clock
from trading_app.symbols import InvalidSymbol, normalise


class AlpacaMarketData(AlpacaCaller):
    name = "alpaca"

    def __init__(self, client, feed: str = "iex"):
        self.client = no_sdk_retry(client)
        self.feed = feed

    @classmethod
    def from_settings(cls) -> AlpacaMarketData:
        from alpaca.data.historical import StockHistoricalDataClient

        key, secret = require_keys("alpaca market data")
        return cls(StockHistoricalDataClient(key, secret, raw_data=True))

    def generation(self) -> int:
        return 0

    def validate_symbol(self, symbol: str) -> str:
        return normalise(symbol)

    def daily_bars(self, symbol: str, limit: int = 300, end: datetime | None = None) -> pd.DataFrame:
        from alpaca.data.requests import StockBarsRequest
        from alpaca.data.timeframe import TimeFrame

        end = end or datetime.now(UTC)
        start = end - timedelta(days=int(limit * 1.6) + 10)
        req = StockBarsRequest(symbol_or_symbols=symbol, timeframe=TimeFrame.Day, start=start, end=end,
                               feed=self.feed)
        data = self._call(f"alpaca bars {symbol}", lambda: self.client.get_stock_bars(req))
        return self._frame(symbol, data, limit)

    def daily_bars_many(self, symbols: list[str], limit: int = 300, end: datetime | None = None) -> dict:
        """One request (paginated by the SDK) for many symbols' daily bars."""
        from alpaca.data.requests import StockBarsRequest
        from alpaca.data.timeframe import TimeFrame

        end = end or datetime.now(UTC)
        start = end - timedelta(days=int(limit * 1.6) + 10)
        req = StockBarsRequest(symbol_or_symbols=list(symbols), timeframe=TimeFrame.Day, start=start, end=end,
                               feed=self.feed)
        data = self._call(f"alpaca bars {len(symbols)} symbols", lambda: self.client.get_stock_bars(req))
        return {sym: self._frame(sym, data, limit) for sym in symbols}

    def intraday_bars(self, symbol: str, minutes: int = 1, limit: int = 390, end: datetime | None = None):
        from alpaca.data.requests import StockBarsRequest
        from alpaca.data.timeframe import TimeFrame, TimeFrameUnit

        end = end or datetime.now(UTC)
        start = end - timedelta(days=5)
        req = StockBarsRequest(symbol_or_symbols=symbol, timeframe=TimeFrame(minutes, TimeFrameUnit.Minute),
                               start=start, end=end, feed=self.feed)
        data = self._call(f"alpaca intraday bars {symbol}", lambda: self.client.get_stock_bars(req))
        return self._frame(symbol, data, limit)

    @staticmethod
    def _frame(symbol: str, data, limit: int) -> pd.DataFrame:
        rows = (data or {}).get(symbol) or []
        if not rows:
            raise InvalidSymbol(symbol, "no bars returned (unknown or untraded symbol)")
        df = pd.DataFrame(rows).rename(columns={"t": "timestamp", "o": "open", "h": "high", "l": "low", "c": "close",
                                                "v": "volume"})
        df["timestamp"] = pd.to_datetime(df["timestamp"], utc=True)
        df = df.set_index("timestamp")[["open", "high", "low", "close", "volume"]].astype(float)
        return df.tail(int(limit))

    def latest_price(self, symbol: str, at: datetime | None = None) -> float:
        from alpaca.data.requests import StockLatestTradeRequest

        req = StockLatestTradeRequest(symbol_or_symbols=symbol, feed=self.feed)
        data = self._call(f"alpaca latest trade {symbol}", lambda: self.client.get_stock_latest_trade(req))
        trade = (data or {}).get(symbol)
        if not trade:
            raise InvalidSymbol(symbol, "no trade returned (unknown symbol)")
        return float(trade["p"])

    def market_clock(self, at: datetime | None = None) -> dict:
        return market_clock(at)  # XNYS calendar (exchange_calendars): same answer, no request


# --- news ---------------------------------------------------------------------------------------
class AlpacaNews(AlpacaCaller):
    name = "alpaca"

    def __init__(self, client):
        self.client = no_sdk_retry(client)

    @classmethod
    def from_settings(cls) -> AlpacaNews:
        from alpaca.data.historical.news import NewsClient

        key, secret = require_keys("alpaca news")
        return cls(NewsClient(key, secret, raw_data=True))

    def get_news(self, symbols, limit=20, start=None, end=None, keywords=None) -> list[dict]:
        from alpaca.data.requests import NewsRequest

        req = NewsRequest(symbols=",".join(symbols) if symbols else None, start=start, end=end,
                          limit=int(limit), sort="desc")
        data = self._call("alpaca news", lambda: self.client.get_news(req))
        items = []
        for n in (data or {}).get("news", []):
            headline = n.get("headline") or ""
            items.append({
                "id": f"alpaca-{n.get('id')}", "headline": headline, "summary": n.get("summary") or "",
                "source": n.get("source") or n.get("author") or "", "symbols": n.get("symbols") or [],
                "published_at": n.get("created_at"), "url": n.get("url") or "", "provider": "alpaca",
                "breaking": headline.upper().startswith("BREAKING"),
            })
        if keywords:
            kws = [k.lower() for k in keywords]
            items = [i for i in items if any(k in (i["headline"] + " " + i["summary"]).lower() for k in kws)]
        return items[: int(limit)]
