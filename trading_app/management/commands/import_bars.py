"""Import OHLCV bars for backtests (``data_source: "stored"``); see ``trading_app.backtest.bar_import``.

    python manage.py import_bars FILE --symbol SYM [--interval 1d] [--format csv|parquet]
        [--timezone America/New_York] [--replace]
"""
from __future__ import annotations

import json

from django.core.management.base import BaseCommand, CommandError

from trading_app.backtest.bar_import import ImportProblem, import_bars
from trading_app.steps.common import _wellformed
from trading_app.symbols import normalise


class Command(BaseCommand):
    help = "Import bars (timestamp, open, high, low, close, volume) from a CSV or Parquet file; all or nothing."

    def add_arguments(self, parser):
        parser.add_argument("file")
        parser.add_argument("--symbol", required=True)
        parser.add_argument("--interval", default="1d", choices=["1d", "1h", "1m"])
        parser.add_argument("--format", default=None, choices=["csv", "parquet"],
                            help="Default: from the file's extension (.parquet / .pq), else csv.")
        parser.add_argument("--timezone", default="UTC", help="Zone of timestamps without an offset (IANA name).")
        parser.add_argument("--replace", action="store_true",
                            help="Delete the symbol's stored bars at this interval first.")

    def handle(self, *args, **o):
        if not _wellformed(o["symbol"]):
            raise CommandError(f"--symbol: {o['symbol']!r} is not a symbol")
        fmt = o["format"] or ("parquet" if o["file"].lower().endswith((".parquet", ".pq")) else "csv")
        try:
            out = import_bars(o["file"], normalise(o["symbol"]), interval=o["interval"], fmt=fmt,
                              tz=o["timezone"], replace=o["replace"])
        except FileNotFoundError:
            raise CommandError(f"file: {o['file']} does not exist") from None
        except ImportProblem as exc:
            raise CommandError(str(exc)) from None
        except (ValueError, OSError) as exc:  # unreadable CSV / Parquet
            raise CommandError(f"file: cannot read it as {fmt} ({str(exc)[:200]})") from None
        self.stdout.write(json.dumps(out))
