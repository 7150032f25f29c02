"""Import bars from a CSV or Parquet file: every row checked, then all stored in one transaction or none.

Columns (a header row; names case-insensitive; other columns are ignored): ``timestamp`` (the bar's
start: ISO 8601 - a date, or a date and time with or without an offset - or epoch seconds, or epoch
milliseconds when above 10^11), ``open``, ``high``, ``low``, ``close``, ``volume``. A timestamp
without an offset is read in ``tz`` (default UTC). A row is refused, with its line number and field,
when a price or the volume is missing or not a finite number, a price is not positive, ``high`` is
below ``low`` (or ``open``/``close`` lie outside them), the volume is negative, or its timestamp
repeats an earlier row's. Ceilings: ``NEXUS_IMPORT_BARS_MAX_BYTES`` and ``NEXUS_IMPORT_BARS_MAX_ROWS``.
"""
from __future__ import annotations

import math
import os
import zoneinfo
from dataclasses import dataclass, field
from datetime import UTC, date, datetime

import pandas as pd
from django.db import transaction

from trading_app import conf
from trading_app.backtest.bars import COLUMNS, INTERVALS, StoredBar

REQUIRED = ["timestamp", *COLUMNS]
SHOWN = 20  # errors listed; the count says how many more
BATCH = 2_000  # rows per INSERT


@dataclass
class ImportProblem(Exception):
    problems: list[str] = field(default_factory=list)
    total: int = 0

    def __str__(self) -> str:
        more = f"\n... and {self.total - len(self.problems)} more" if self.total > len(self.problems) else ""
        return f"{self.total} problem(s), nothing stored:\n" + "\n".join(self.problems) + more


def read(path: str, fmt: str) -> tuple[pd.DataFrame, int, str]:
    """(the table as strings/values, the line number of its first row, 'line'/'row'), within the ceilings."""
    size = os.path.getsize(path)
    if size > int(conf.get("NEXUS_IMPORT_BARS_MAX_BYTES")):
        raise ImportProblem([f"file: {size} bytes, over NEXUS_IMPORT_BARS_MAX_BYTES="
                             f"{conf.get('NEXUS_IMPORT_BARS_MAX_BYTES')}"], 1)
    limit = int(conf.get("NEXUS_IMPORT_BARS_MAX_ROWS"))
    if fmt == "parquet":
        import pyarrow.parquet as pq  # the row count from the footer, before anything is read

        if pq.ParquetFile(path).metadata.num_rows > limit:
            raise ImportProblem([f"file: more than NEXUS_IMPORT_BARS_MAX_ROWS={limit} rows"], 1)
        df, first, unit = pd.read_parquet(path), 1, "row"
    else:  # read one row past the ceiling: enough to know it is over without reading it all
        df, first, unit = pd.read_csv(path, dtype=str, keep_default_na=False, nrows=limit + 1), 2, "line"
    if len(df) > limit:
        raise ImportProblem([f"file: more than NEXUS_IMPORT_BARS_MAX_ROWS={limit} rows"], 1)
    df.columns = [str(c).strip().lower() for c in df.columns]
    absent = [c for c in REQUIRED if c not in df.columns]
    if absent:
        raise ImportProblem([f"header: missing column(s) {', '.join(absent)} (need {', '.join(REQUIRED)})"], 1)
    return df, first, unit


def parse_timestamp(value, tz: zoneinfo.ZoneInfo) -> datetime:
    """A bar start in UTC from ISO 8601 text, a datetime, or epoch seconds / milliseconds (ValueError)."""
    if isinstance(value, pd.Timestamp | datetime):
        at = value.to_pydatetime() if isinstance(value, pd.Timestamp) else value
    elif isinstance(value, date):
        at = datetime(value.year, value.month, value.day)
    else:
        text = str(value).strip()
        try:
            number = float(text)
        except ValueError:
            number = None
        if number is not None:
            if not math.isfinite(number):
                raise ValueError(f"{text!r} is not a time")
            return datetime.fromtimestamp(number / 1000 if abs(number) > 1e11 else number, UTC)
        at = datetime.fromisoformat(text)  # raises ValueError with the text
    return (at if at.tzinfo else at.replace(tzinfo=tz)).astimezone(UTC)


def _number(value) -> float | None:
    try:
        x = float(str(value).strip()) if not isinstance(value, int | float) else float(value)
    except ValueError:
        return None
    return x if math.isfinite(x) else None


def check_row(row: dict, tz) -> tuple[datetime | None, dict, list[str]]:
    """(timestamp, prices, problems as 'field: why') for one row."""
    problems: list[str] = []
    try:
        at = parse_timestamp(row["timestamp"], tz)
    except (ValueError, OverflowError, OSError) as exc:
        at = None
        problems.append(f"timestamp: not ISO 8601 or epoch seconds ({str(exc)[:80]})")
    values = {}
    for name in COLUMNS:
        x = _number(row[name])
        if x is None:
            problems.append(f"{name}: {str(row[name])[:40]!r} is not a number")
        elif name != "volume" and x <= 0:
            problems.append(f"{name}: {x} is not a positive price")
        elif name == "volume" and x < 0:
            problems.append(f"volume: {x} is negative")
        values[name] = x
    o, h, lo, c = (values[k] for k in ("open", "high", "low", "close"))
    if None not in (o, h, lo, c):
        if h < lo:
            problems.append(f"high: {h} is below low {lo}")
        elif not (lo <= o <= h and lo <= c <= h):
            problems.append(f"open/close: outside low..high ({lo}..{h})")
    return at, values, problems


def validate(df: pd.DataFrame, first: int, unit: str, tz) -> list[tuple[datetime, dict]]:
    """The rows as (timestamp, values), or ImportProblem listing every bad row (line and field)."""
    out, seen, problems = [], {}, []
    for i, row in enumerate(df[REQUIRED].to_dict("records")):
        line = first + i
        at, values, bad = check_row(row, tz)
        if at is not None and at in seen:
            bad.append(f"timestamp: {at.isoformat()} repeats {unit} {seen[at]}")
        elif at is not None:
            seen[at] = line
        problems += [f"{unit} {line}: {p}" for p in bad]
        out.append((at, values))
    if problems:
        raise ImportProblem(problems[:SHOWN], len(problems))
    if not out:
        raise ImportProblem(["file: no rows"], 1)
    return out


def import_bars(path: str, symbol: str, interval: str = "1d", fmt: str = "csv", tz: str = "UTC",
                replace: bool = False, source: str | None = None) -> dict:
    """Store the file's bars for ``symbol`` (all or nothing). ``replace`` first deletes the symbol's stored
    bars at this interval; without it a timestamp already stored is refused."""
    if interval not in INTERVALS:
        raise ImportProblem([f"interval: {interval!r} is not one of {', '.join(INTERVALS)}"], 1)
    try:
        zone = zoneinfo.ZoneInfo(tz)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError):
        raise ImportProblem([f"timezone: {tz!r} is not an IANA time zone"], 1) from None
    df, first, unit = read(path, fmt)
    rows = validate(df, first, unit, zone)
    label = (source or f"import:{os.path.basename(path)}")[:100]
    mine = {at for at, _ in rows}
    with transaction.atomic():
        existing = StoredBar.objects.filter(symbol=symbol, interval=interval)
        deleted = existing.delete()[0] if replace else 0
        if not replace:
            clash = sorted(t for t in existing.filter(timestamp__gte=min(mine), timestamp__lte=max(mine))
                           .values_list("timestamp", flat=True) if t in mine)
            if clash:
                raise ImportProblem([f"timestamp: {len(clash)} bar(s) of {symbol} {interval} already stored "
                                     f"(first {clash[0].isoformat()}); use --replace"], 1)
        for i in range(0, len(rows), BATCH):  # model objects a batch at a time: memory stays flat
            StoredBar.objects.bulk_create([StoredBar(symbol=symbol, interval=interval, timestamp=at, source=label,
                                                     **values) for at, values in rows[i:i + BATCH]])
    return {"symbol": symbol, "interval": interval, "stored": len(rows), "replaced": deleted,
            "first": min(mine).isoformat(), "last": max(mine).isoformat(), "source": label}
