"""Bars the user imported (``manage.py import_bars``): one row per symbol, interval and bar start.

A bar spans ``[timestamp, timestamp + interval)``: the backtest sees it open at ``timestamp`` and
close one interval later (a daily bar dated D closes at D + 1 day), so a signal from its close
fills at the next bar's open. ``frame`` reads them back in the shape the replay uses.
"""
from __future__ import annotations

from datetime import datetime, timedelta

import pandas as pd
from django.db import models

INTERVALS = {"1d": pd.Timedelta(days=1), "1h": pd.Timedelta(hours=1), "1m": pd.Timedelta(minutes=1)}
COLUMNS = ["open", "high", "low", "close", "volume"]
# How far before ``start`` a source loads bars for the warm-up: technical_analysis asks for at most 2000.
WARMUP = {"1d": timedelta(days=2_900), "1h": timedelta(days=420), "1m": timedelta(days=10)}


class StoredBar(models.Model):
    symbol = models.CharField(max_length=32)
    interval = models.CharField(max_length=4, choices=[(k, k) for k in INTERVALS])
    timestamp = models.DateTimeField(help_text="the bar's start, UTC")
    open = models.FloatField()
    high = models.FloatField()
    low = models.FloatField()
    close = models.FloatField()
    volume = models.FloatField()
    source = models.CharField(max_length=100, blank=True, default="", help_text="where it came from (file name)")

    class Meta:
        constraints = [models.UniqueConstraint(fields=["symbol", "interval", "timestamp"], name="stored_bar_unique")]
        ordering = ["symbol", "interval", "timestamp"]

    def __str__(self) -> str:
        return f"{self.symbol} {self.interval} {self.timestamp.isoformat()}"


def to_frame(rows, interval: str) -> pd.DataFrame:
    """(timestamp, open, high, low, close, volume) rows -> the replay's frame: OHLCV and ``start``
    columns, indexed by the bar's end (UTC)."""
    df = pd.DataFrame(list(rows), columns=["timestamp", *COLUMNS])
    if df.empty:
        return pd.DataFrame(columns=[*COLUMNS, "start"], index=pd.DatetimeIndex([], tz="UTC"))
    starts = pd.DatetimeIndex(pd.to_datetime(df["timestamp"], utc=True))
    df = df[COLUMNS].astype(float)
    df.index = starts + INTERVALS[interval]
    return df.assign(start=starts)


def frame(symbol: str, interval: str, since: datetime | None = None, until: datetime | None = None) -> pd.DataFrame:
    qs = StoredBar.objects.filter(symbol=symbol, interval=interval)
    if since is not None:
        qs = qs.filter(timestamp__gte=since)
    if until is not None:
        qs = qs.filter(timestamp__lt=until)
    return to_frame(qs.order_by("timestamp").values_list("timestamp", *COLUMNS), interval)


def missing(symbols: list[str], interval: str, start: datetime, end: datetime) -> list[str]:
    """The symbols with no stored ``interval`` bar starting in ``[start, end)``."""
    have = set(StoredBar.objects.filter(symbol__in=symbols, interval=interval, timestamp__gte=start,
                                        timestamp__lt=end).values_list("symbol", flat=True).distinct())
    return [s for s in symbols if s not in have]
