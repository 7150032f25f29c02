"""manage.py import_bars: CSV and Parquet files stored all or nothing; every bad row refused with its
line and field; ceilings on size and rows; --replace; timestamps as ISO 8601 or epoch, naive in --timezone."""
from datetime import UTC, datetime
from io import StringIO

import pandas as pd
import pytest
from django.core.management import CommandError, call_command

from trading_app.backtest.bars import StoredBar, frame

pytestmark = pytest.mark.django_db

GOOD = """timestamp,open,high,low,close,volume
2024-01-02,100,101,99,100.5,1000
2024-01-03T00:00:00Z,100.5,102,100,101.5,1200
1704326400,101.5,103,101,102,900
"""


def _write(tmp_path, text: str, name: str = "bars.csv") -> str:
    path = tmp_path / name
    path.write_text(text)
    return str(path)


def _run(*args) -> str:
    out = StringIO()
    call_command("import_bars", *args, stdout=out)
    return out.getvalue()


def test_csv_imported_with_every_timestamp_form(tmp_path):
    reply = _run(_write(tmp_path, GOOD), "--symbol", "aapl")
    assert '"stored": 3' in reply and '"symbol": "AAPL"' in reply
    rows = list(StoredBar.objects.filter(symbol="AAPL", interval="1d").values_list("timestamp", "close", "source"))
    assert [r[0] for r in rows] == [datetime(2024, 1, d, tzinfo=UTC) for d in (2, 3, 4)]  # 1704326400 = 4 Jan
    assert rows[2][1] == 102.0 and rows[0][2] == "import:bars.csv"
    df = frame("AAPL", "1d")  # indexed by the bar's end: a daily bar dated D closes at D + 1 day
    assert df.index[0] == pd.Timestamp("2024-01-03", tz="UTC") and df["start"].iloc[0] == pd.Timestamp("2024-01-02", tz="UTC")


def test_bad_rows_named_by_line_and_field_and_nothing_stored(tmp_path):
    text = GOOD + ("2024-01-05,abc,103,101,102,900\n"     # line 5: open not a number
                   "2024-01-08,101,99,100,100,900\n"      # line 6: high < low
                   "2024-01-09,101,102,100,101,-5\n"      # line 7: negative volume
                   "2024-01-03,101,102,100,101,5\n"       # line 8: repeats line 3
                   "yesterday,101,102,100,101,5\n")       # line 9: not a time
    with pytest.raises(CommandError) as err:
        _run(_write(tmp_path, text), "--symbol", "AAPL")
    msg = str(err.value)
    assert "5 problem(s), nothing stored" in msg
    assert "line 5: open: 'abc' is not a number" in msg
    assert "line 6: high: 99.0 is below low 100.0" in msg
    assert "line 7: volume: -5.0 is negative" in msg
    assert "line 8: timestamp: 2024-01-03T00:00:00+00:00 repeats line 3" in msg
    assert "line 9: timestamp: not ISO 8601" in msg
    assert StoredBar.objects.count() == 0


def test_missing_column_and_ceilings(tmp_path, settings):
    with pytest.raises(CommandError, match="missing column.*volume"):
        _run(_write(tmp_path, "timestamp,open,high,low,close\n2024-01-02,1,1,1,1\n"), "--symbol", "AAPL")
    settings.NEXUS_IMPORT_BARS_MAX_ROWS = 2
    with pytest.raises(CommandError, match="more than NEXUS_IMPORT_BARS_MAX_ROWS=2 rows"):
        _run(_write(tmp_path, GOOD), "--symbol", "AAPL")
    settings.NEXUS_IMPORT_BARS_MAX_ROWS = 100
    settings.NEXUS_IMPORT_BARS_MAX_BYTES = 50
    with pytest.raises(CommandError, match="over NEXUS_IMPORT_BARS_MAX_BYTES=50"):
        _run(_write(tmp_path, GOOD), "--symbol", "AAPL")
    assert StoredBar.objects.count() == 0


def test_existing_timestamps_refused_unless_replace(tmp_path):
    path = _write(tmp_path, GOOD)
    _run(path, "--symbol", "AAPL")
    with pytest.raises(CommandError, match="3 bar.s. of AAPL 1d already stored .first 2024-01-02.*--replace"):
        _run(path, "--symbol", "AAPL")
    reply = _run(_write(tmp_path, "timestamp,open,high,low,close,volume\n2024-02-01,5,6,4,5,1\n", "b.csv"),
                 "--symbol", "AAPL", "--replace")
    assert '"replaced": 3' in reply
    assert list(StoredBar.objects.values_list("close", flat=True)) == [5.0]


def test_parquet_with_naive_timestamps_in_a_timezone(tmp_path, settings):
    df = pd.DataFrame({"Timestamp": pd.to_datetime(["2024-01-02 09:30", "2024-01-02 10:30"]),
                       "Open": [10.0, 11.0], "High": [11.5, 12.0], "Low": [9.5, 10.5], "Close": [11.0, 11.5],
                       "Volume": [100, 200]})
    path = tmp_path / "bars.parquet"
    df.to_parquet(path)
    _run(str(path), "--symbol", "MSFT", "--interval", "1h", "--timezone", "America/New_York")
    stamps = list(StoredBar.objects.filter(symbol="MSFT", interval="1h").values_list("timestamp", flat=True))
    assert stamps == [datetime(2024, 1, 2, 14, 30, tzinfo=UTC), datetime(2024, 1, 2, 15, 30, tzinfo=UTC)]
    settings.NEXUS_IMPORT_BARS_MAX_ROWS = 1
    with pytest.raises(CommandError, match="more than NEXUS_IMPORT_BARS_MAX_ROWS=1 rows"):
        _run(str(path), "--symbol", "MSFT", "--interval", "1h", "--replace")
    with pytest.raises(CommandError, match="timezone: 'Mars/Olympus' is not an IANA time zone"):
        _run(str(path), "--symbol", "MSFT", "--timezone", "Mars/Olympus")
