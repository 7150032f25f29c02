"""Backtests through every face on a real Celery worker (Redis broker, no eager mode): REST starts
one and returns its id at once, the worker replays it, status and results (JSON, CSV) read it back;
bad arguments are refused naming the field with nothing stored; MCP lists the tools; the CLI starts one."""
import json
from io import StringIO

import pytest
from django.core.management import call_command

from tests.support.api import API, assert_error
from tests.support.waiting import wait_for
from trading_app.backtest.record import Backtest
from trading_app.models import BrokerAccount, Order

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.slow]

STEPS = [
    {"name": "analyze_news", "type": "news_analysis", "params": {"symbols": ["AAPL", "MSFT"], "store": False}},
    {"name": "market_analysis", "type": "technical_analysis", "params": {"indicators": ["RSI", "MACD"]}},
    {"name": "generate_signals", "type": "signal_generation", "params": {"threshold": 0.3}},
    {"name": "execute_trades", "type": "trade_execution", "params": {"risk_limit": 0.02}},
]
SPEC = {"name": "bt-spec", "steps": STEPS,
        "triggers": [{"type": "schedule", "cron": "0 9 * * 1-5", "timezone": "America/New_York"}]}


def _create(client, spec=SPEC) -> str:
    response = client.post(f"{API}/workflows/", spec, format="json")
    assert response.status_code == 201, response.content[:500]
    return response.json()["workflow_id"]


def _finished(client, backtest_id: str) -> dict:
    def done():
        reply = client.get(f"{API}/backtests/{backtest_id}/").json()
        return reply if reply["status"] in ("succeeded", "failed") else None
    return wait_for(done, timeout=300, interval=0.5, message="the backtest to finish")


def test_backtest_over_rest_on_a_real_worker(celery_worker, api_a, api_b):
    workflow_id = _create(api_a)
    live_orders = Order.objects.count()
    response = api_a.post(f"{API}/workflows/{workflow_id}/backtest/",
                          {"start": "2024-01-02", "end": "2024-03-01", "interval": "1d",
                           "fill_model": {"slippage_bps": 10}, "overrides": {"steps[2].params.threshold": 0.25}},
                          format="json")
    assert response.status_code == 202, response.content[:500]
    started = response.json()
    assert started["status"] == "queued" and started["arguments"]["symbols"] == ["AAPL", "MSFT"]
    assert started["arguments"]["fill_model"]["slippage_bps"] == 10.0
    final = _finished(api_a, started["backtest_id"])
    assert final["status"] == "succeeded", final
    assert final["bars_done"] == final["bars_total"] > 0 and final["eta_seconds"] is None
    m = final["metrics"]
    # every weekday from 2 January to 29 February 2024 at 9:00 New York; a cron knows no holidays
    # (MLK Day and Presidents' Day fire too, as they do live)
    assert m["decisions"] == 43
    assert m["fills"] > 0 and m["fees"] > 0 and 0 <= m["max_drawdown"] < 1 and m["benchmark_return"] is not None

    results = api_a.get(f"{API}/backtests/{started['backtest_id']}/results/").json()
    bt = Backtest.objects.get(pk=started["backtest_id"])
    assert bt.definition["steps"][2]["params"]["threshold"] == 0.25  # the override, this run only
    trade = results["trades"][0]
    decision = next(d for d in results["decisions_made"] if d["n"] == trade["decision"])
    assert trade["client_order_id"] in decision["orders"]
    assert decision["trigger"]["type"] == "schedule" and "generate_signals" in decision["steps"]
    assert decision["at"] < trade["at"]  # decided at 9:00, filled at a later bar's open
    assert results["equity_curve"][0]["equity"] == 100_000.0
    # every order of the run is on its own account; no live or paper order was placed
    assert set(Order.objects.exclude(account=bt.account).values_list("pk", flat=True)).__len__() == live_orders
    assert bt.account.kind == "backtest" and not Order.objects.filter(account=bt.account, broker="paper").exists()

    csv = api_a.get(f"{API}/backtests/{started['backtest_id']}/trades.csv")
    assert csv.status_code == 200 and csv["Content-Type"].startswith("text/csv")
    lines = csv.content.decode().strip().splitlines()
    assert lines[0].startswith("at,symbol,side") and len(lines) == 1 + len(results["trades"])
    assert api_a.get(f"{API}/backtests/{started['backtest_id']}/equity.csv").status_code == 200
    download = api_a.get(f"{API}/backtests/{started['backtest_id']}/results/?download=1")
    assert "attachment" in download["Content-Disposition"] and json.loads(download.content)["success"]
    # someone else's backtest is not found
    assert_error(api_b.get(f"{API}/backtests/{started['backtest_id']}/"), 404, "BACKTEST_NOT_FOUND")


@pytest.mark.parametrize("body, field", [
    ({"start": "2024-03-01", "end": "2024-01-02"}, "end"),
    ({"start": "2010-01-04", "end": "2010-02-01"}, "start"),  # before the simulator's history (+ warm-up)
    ({"start": "2024-01-02", "end": "2024-03-01", "interval": "5m"}, "interval"),
    ({"start": "2024-01-02", "end": "2024-03-01", "fill_model": {"volume_share": 2}}, "fill_model"),
    ({"start": "2024-01-02", "end": "2024-03-01", "overrides": {"steps[9].params.x": 1}}, "overrides"),
    ({"start": "2024-01-02", "end": "2024-03-01", "overrides": {"steps[2].params.threshold": 3}}, "overrides"),
    ({"start": "2024-01-02", "end": "2024-03-01", "symbols": ["TOOLONGSYM"]}, "symbols"),
    ({"start": "2020-06-01", "end": "2024-06-01", "interval": "1m"}, "end"),  # over NEXUS_BACKTEST_MAX_BARS
    ({"start": "2024-01-02", "end": "2024-03-01", "sweep": {"steps[2].params.threshold": 0.5}}, "sweep"),
    ({"start": "2024-01-02", "end": "2024-03-01", "sweep": {"steps[2].params.threshold": list(range(9)),
                                                            "steps[3].params.risk_limit": list(range(9))}}, "sweep"),
    ({"start": "2024-01-02", "end": "2024-03-01", "bogus": 1}, "bogus"),
])
def test_bad_arguments_are_refused_naming_the_field_and_nothing_is_stored(api_a, body, field):
    workflow_id = _create(api_a)
    error = assert_error(api_a.post(f"{API}/workflows/{workflow_id}/backtest/", body, format="json"), 400,
                         "INVALID_INPUT_DATA")
    assert error["details"]["field"] == field and field in error["message"], error
    assert not Backtest.objects.exists() and not BrokerAccount.objects.filter(kind="backtest").exists()


def test_backtest_tools_and_cli(celery_worker, settings):
    from workflows_app.operations.catalogue import catalogue

    assert {"workflow_backtest", "backtest_status", "backtest_results"} <= {op.name for op in catalogue.tools()}
    from workflows_app import operations

    operations.workflow_create(**SPEC)
    out = StringIO()
    call_command("backtest", "bt-spec", "--start", "2024-02-01", "--end", "2024-02-15", "--wait", "--json",
                 stdout=out, stderr=StringIO())
    reply = json.loads(out.getvalue())
    assert reply["status"] == "succeeded" and reply["metrics"]["decisions"] == 10, reply

    # the run's account and orders are read through the backtest only: the live faces (here as the
    # CLI, which sees every account) neither list them nor let them crowd out the live accounts
    bt = Backtest.objects.get(pk=reply["backtest_id"])
    assert Order.objects.filter(account=bt.account).exists()
    assert bt.account.name not in {a["name"] for a in operations.trading_accounts()["accounts"]}
    assert not {o["account"] for o in operations.trading_orders(limit=100)["orders"]} & {bt.account.name}
    assert bt.account.name not in {a["name"] for a in operations.risk_status()["accounts"]}
    from trading_app.plugin import trading_health
    assert bt.account.name not in trading_health()["risk_governor"]


def test_admin_charts_and_action(celery_worker):
    """The Backtest admin draws the equity/drawdown and candle charts with Plotly (served from the
    installed package); the workflow admin's action starts a backtest."""
    from django.contrib.staticfiles import finders
    from django.test import Client

    from trading_app import operations as trading
    from workflows_app import operations

    assert finders.find("vendor/plotly/plotly.min.js")
    created = operations.workflow_create(**{**SPEC, "name": "bt-admin"})
    started = trading.workflow_backtest(workflow_id="bt-admin", start="2024-02-01", end="2024-03-01")
    wait_for(lambda: Backtest.objects.get(pk=started["backtest_id"]).is_final, timeout=300, interval=0.5,
             message="the backtest to finish")
    from django.contrib.auth import get_user_model

    client = Client()
    client.force_login(get_user_model().objects.create_superuser("admin", "admin@example.com", "pw"))
    page = client.get(f"/admin/trading_app/backtest/{started['backtest_id']}/change/")
    assert page.status_code == 200
    html = page.content.decode()
    assert "vendor/plotly/plotly.min.js" in html and "Plotly.newPlot" in html
    assert '"type":"candlestick"' in html and "buy fills" in html
    before = Backtest.objects.count()
    reply = client.post("/admin/workflows_app/workflow/", {"action": "backtest_last_year",
                                                           "_selected_action": [created["workflow_id"]]})
    assert reply.status_code == 302
    assert Backtest.objects.count() == before + 1
    latest = Backtest.objects.order_by("-created_at").first()
    wait_for(lambda: Backtest.objects.get(pk=latest.pk).status != "queued", timeout=300, interval=0.5,
             message="the worker to take the action's backtest")
    wait_for(lambda: Backtest.objects.get(pk=latest.pk).is_final, timeout=600, interval=1.0,
             message="the action's backtest to finish")


def test_a_sweep_runs_one_backtest_per_point_and_ranks_them(celery_worker, api_a):
    workflow_id = _create(api_a)
    response = api_a.post(f"{API}/workflows/{workflow_id}/backtest/",
                          {"start": "2024-02-01", "end": "2024-03-01", "rank_by": "total_return",
                           "sweep": {"steps[2].params.threshold": [0.2, 0.95], "steps[3].params.risk_limit": [0.01]}},
                          format="json")
    assert response.status_code == 202, response.content[:500]
    parent = response.json()
    assert parent["points"] == 2
    final = _finished(api_a, parent["backtest_id"])
    assert final["status"] == "succeeded" and final["points_done"] == 2, final
    ranking = final["metrics"]["ranking"]
    assert [r["rank"] for r in ranking] == [1, 2] and final["metrics"]["rank_by"] == "total_return"
    assert ranking[0]["total_return"] >= ranking[1]["total_return"]
    points = {json.dumps(r["point"], sort_keys=True) for r in ranking}
    assert points == {json.dumps({"steps[2].params.threshold": t, "steps[3].params.risk_limit": 0.01}, sort_keys=True)
                      for t in (0.2, 0.95)}
    children = Backtest.objects.filter(parent_id=parent["backtest_id"])
    assert len({c.account_id for c in children}) == 2
    by_threshold = {c.definition["steps"][2]["params"]["threshold"]: c for c in children}
    assert by_threshold[0.95].metrics["fills"] <= by_threshold[0.2].metrics["fills"]
    # a bad point is refused before anything is stored
    error = assert_error(api_a.post(f"{API}/workflows/{workflow_id}/backtest/",
                                    {"start": "2024-02-01", "end": "2024-03-01",
                                     "sweep": {"steps[2].params.threshold": [0.5, 2.0]}}, format="json"), 400)
    assert error["details"]["field"] == "overrides"
    assert Backtest.objects.count() == 3
