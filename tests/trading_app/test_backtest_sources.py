"""The backtest's data sources: the argument validated (field named; stored bars missing in the range
name their symbols; Alpaca needs its keys), stored bars served as of the clock (no look-ahead, the
warm-up from bars before start), and Alpaca's historical bars fetched through the project's client,
following next_page_token, against recorded responses (tests/trading_app/fixtures)."""
import json
from datetime import UTC, datetime
from pathlib import Path

import pandas as pd
import pytest

from trading_app import operations as trading
from trading_app.backtest.alpaca_bars import AlpacaBars
from trading_app.backtest.bars import StoredBar
from trading_app.backtest.data import SimClock
from trading_app.backtest.sources import BarsHistory, BarsMarketData, open_history
from workflows_app.errors import OperationError

FIXTURES = Path(__file__).parent / "fixtures"
DATA = "https://data.alpaca.markets"
SPEC = {"name": "bt-sources", "steps": [
    {"name": "market_analysis", "type": "technical_analysis", "params": {"symbols": ["AAPL", "MSFT"]}}],
    "triggers": [{"type": "schedule", "cron": "0 0 * * 2-6", "timezone": "UTC"}]}


def _store(symbol: str, days) -> None:
    StoredBar.objects.bulk_create(StoredBar(symbol=symbol, interval="1d", timestamp=d.to_pydatetime(), open=10 + i,
                                            high=11 + i, low=9 + i, close=10.5 + i, volume=100)
                                  for i, d in enumerate(days))


def _refusal(**kw) -> OperationError:
    with pytest.raises(OperationError) as err:
        trading.workflow_backtest(workflow_id="bt-sources", start="2024-03-01", end="2024-04-01", **kw)
    return err.value


@pytest.mark.django_db
def test_data_source_refusals_name_the_field(settings):
    from workflows_app import operations

    operations.workflow_create(**SPEC)
    bad = _refusal(data_source="yahoo")
    assert bad.details["field"] == "data_source" and "data_source" in bad.message
    _store("AAPL", pd.bdate_range("2024-03-01", "2024-03-29", tz="UTC"))
    missing = _refusal(data_source="stored")
    assert missing.details == {"field": "data_source", "symbols": ["MSFT"]}
    assert "no stored 1d bars between 2024-03-01T00:00:00+00:00 and 2024-04-01T00:00:00+00:00 for MSFT" \
        in missing.message
    settings.APCA_API_KEY_ID = settings.APCA_API_SECRET_KEY = ""
    keys = _refusal(data_source="alpaca")
    assert keys.details["field"] == "data_source" and "APCA_API_KEY_ID" in keys.message


@pytest.mark.django_db
def test_stored_bars_as_of_the_clock_with_warm_up():
    days = pd.bdate_range("2024-01-01", "2024-03-29", tz="UTC")
    _store("AAPL", days)
    start, end = datetime(2024, 3, 1, tzinfo=UTC), datetime(2024, 3, 15, tzinfo=UTC)
    clock = SimClock(datetime(2024, 3, 6, tzinfo=UTC))  # Wednesday 00:00: Tuesday's bar has just closed
    history, md = open_history("stored", ["AAPL"], start, end, "1d", clock)
    frame = history.frames["AAPL"]
    assert frame["start"].iloc[0] == pd.Timestamp("2024-03-01", tz="UTC") and frame.index[-1] <= pd.Timestamp(end)
    assert history.bars_total() == 10  # 1-14 March, weekdays
    daily = md.daily_bars("AAPL", limit=300, end=datetime(2024, 12, 31, tzinfo=UTC))  # asks for later: gets none
    assert daily.index[-1] == pd.Timestamp("2024-03-05", tz="UTC")
    assert daily.index[0] == days[0] and len(daily) == list(days).index(pd.Timestamp("2024-03-05", tz="UTC")) + 1
    i = len(daily) - 1
    assert md.latest_price("AAPL") == 10.5 + i  # at the boundary: the bar that closed, not the next one's open
    clock.now = datetime(2024, 3, 6, 12, tzinfo=UTC)
    assert md.latest_price("AAPL") == 10 + i + 1  # inside Wednesday's bar: its open, never its close
    assert len(md.daily_bars("AAPL")) == len(daily)


@pytest.fixture
def alpaca(settings, requests_mock):
    settings.APCA_API_KEY_ID, settings.APCA_API_SECRET_KEY = "PKTEST", "secret"
    settings.NEXUS_PROVIDER_RETRY_ATTEMPTS = 0
    pages = [json.loads((FIXTURES / f"alpaca_bars_aapl_page{n}.json").read_text()) for n in (1, 2)]
    return requests_mock.get(f"{DATA}/v2/stocks/bars", [{"json": page} for page in pages])


def test_alpaca_bars_follow_the_page_token_into_the_bar_shape(alpaca):
    since, until = datetime(2024, 1, 1, tzinfo=UTC), datetime(2024, 1, 9, tzinfo=UTC)
    df = AlpacaBars.from_settings(since, until).frame("AAPL", "1d")  # asks from since - the daily warm-up
    assert alpaca.call_count == 2
    first, second = (r.qs for r in alpaca.request_history)
    assert first["start"] == ["2016-01-23t00:00:00+00:00"] and first["end"] == ["2024-01-09t00:00:00+00:00"]
    assert first["symbols"] == ["aapl"] and first["timeframe"] == ["1day"] and first["adjustment"] == ["all"]
    token = json.loads((FIXTURES / "alpaca_bars_aapl_page1.json").read_text())["next_page_token"]
    assert "page_token" not in first and second["page_token"] == [token.lower()]  # (requests-mock lowercases)
    assert list(df.columns) == ["open", "high", "low", "close", "volume", "start"] and len(df) == 5
    assert df["start"].iloc[0] == pd.Timestamp("2024-01-02T05:00:00Z") and df.index[0] == pd.Timestamp("2024-01-03T05:00:00Z")
    assert df["close"].tolist() == [185.64, 184.25, 181.91, 181.18, 185.56]
    md = BarsMarketData(lambda s, i: df, SimClock(datetime(2024, 1, 5, 6, tzinfo=UTC)))
    assert md.daily_bars("AAPL")["close"].tolist() == [185.64, 184.25, 181.91]  # 4 January's closed at 05:00
    replayed = BarsHistory(["AAPL"], datetime(2024, 1, 4, tzinfo=UTC), until, "1d", lambda s, i: df)
    assert replayed.bars_total() == 3


def test_alpaca_source_opens_through_the_client(alpaca):
    history, md = open_history("alpaca", ["AAPL"], datetime(2024, 1, 4, tzinfo=UTC),
                               datetime(2024, 1, 9, tzinfo=UTC), "1d", SimClock(datetime(2024, 1, 4, tzinfo=UTC)))
    assert history.bars_total() == 3 and alpaca.call_count == 2
    # 4 January 00:00 UTC: the bar dated 3 January 05:00 is in progress - its open, not its close
    assert md.latest_price("AAPL") == 184.22 and alpaca.call_count == 2  # fetched once per symbol and interval


@pytest.mark.django_db(transaction=True)
@pytest.mark.slow
def test_a_backtest_on_alpaca_bars_on_a_real_worker(celery_worker, alpaca):
    """The worker fetches the bars when the run starts (the in-process worker sees the recorded responses)."""
    from tests.support.waiting import wait_for
    from trading_app.backtest.record import Backtest
    from workflows_app import operations

    operations.workflow_create(name="bt-alpaca", steps=[{"name": "risk", "type": "risk_check", "params": {}}],
                               triggers=[{"type": "schedule", "cron": "0 0 * * 2-6", "timezone": "UTC"}])
    started = trading.workflow_backtest(workflow_id="bt-alpaca", start="2024-01-04", end="2024-01-09",
                                        symbols=["AAPL"], data_source="alpaca")
    assert started["arguments"]["data_source"] == "alpaca"
    wait_for(lambda: Backtest.objects.get(pk=started["backtest_id"]).is_final, timeout=300, interval=0.5,
             message="the backtest to finish")
    run = Backtest.objects.get(pk=started["backtest_id"])
    assert run.status == "succeeded", run.error
    assert run.bars_total == run.bars_done == 3 and alpaca.call_count == 2  # 4, 5 and 8 January; two pages
    assert run.metrics["decisions"] == 2 and run.metrics["final_equity"] == 100_000.0  # 5 and 6 January 00:00
    assert run.metrics["benchmark_return"] == pytest.approx(185.56 / 182.15 - 1, abs=1e-6)
