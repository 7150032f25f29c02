"""Money at a glance: the P&L selectors against a hand-computed scenario (tests/trading_app/
money_scenario.py), the ``pnl_summary`` operation, the dashboard's money panels (staff only), and the
kill switch: one row from the migrations, a singleton in the admin, every toggle audited."""
from __future__ import annotations

from decimal import Decimal

import pytest
from django.db import connection
from django.db.migrations.executor import MigrationExecutor
from django.db.migrations.recorder import MigrationRecorder
from django.test import Client

from tests.support.api import assert_error, client_for, make_user
from tests.trading_app import money_scenario
from trading_app import operations, pnl
from trading_app.models import BrokerAccount, KillSwitch
from workflows_app.errors import OperationError
from workflows_app.models import AuditEvent

pytestmark = pytest.mark.django_db
D = Decimal


@pytest.fixture
def scenario():
    return money_scenario.build()


def _one(rows, **match):
    found = [r for r in rows if all(r[k] == v for k, v in match.items())]
    assert len(found) == 1, (match, rows)
    return found[0]


def test_account_and_workflow_pnl_match_the_hand_computed_scenario(scenario):
    accts = BrokerAccount.objects.filter(name="pnl-test")
    figures = pnl.summary(accts)
    acct = _one(figures["accounts"], account="pnl-test")
    assert (D(acct["realized_pnl"]), D(acct["unrealized_pnl"]), D(acct["fees"])) == (D("-125"), D("225"), D("8"))
    assert D(acct["net_pnl"]) == D("92") and D(acct["equity"]) == D("100092")

    momentum = _one(figures["workflows"], workflow="momentum")
    assert (D(momentum["realized_pnl"]), D(momentum["unrealized_pnl"]), D(momentum["fees"])) == (D(75), D(225), D(3))
    assert D(momentum["net_pnl"]) == D("297") and (momentum["closed_trades"], momentum["open_trades"]) == (0, 1)
    meanrev = _one(figures["workflows"], workflow="meanrev")
    assert (D(meanrev["realized_pnl"]), D(meanrev["fees"]), D(meanrev["net_pnl"])) == (D(-200), D(4), D(-204))
    manual = _one(figures["workflows"], workflow=pnl.MANUAL)
    assert (D(manual["unrealized_pnl"]), D(manual["net_pnl"])) == (D(0), D(-1))
    # one workflow per symbol here: the workflows' sums are the ledger's to the cent
    for key in ("realized_pnl", "unrealized_pnl", "fees", "net_pnl"):
        assert sum(D(w[key]) for w in figures["workflows"]) == D(acct[key])


def test_trades_carry_entry_exit_fees_and_the_execution_that_made_them(scenario):
    figures = pnl.summary(BrokerAccount.objects.filter(name="pnl-test"))
    assert figures["trade_count"] == 3
    aapl = _one(figures["trades"], symbol="AAPL")
    assert (aapl["status"], aapl["side"], D(aapl["qty"]), D(aapl["open_qty"])) == ("open", "long", D(20), D(15))
    assert (D(aapl["entry_price"]), D(aapl["exit_price"]), D(aapl["realized_pnl"])) == (D(105), D(120), D(75))
    assert aapl["execution_id"] == str(scenario["momentum"].pk)
    assert aapl["execution_url"] == f"/ui/executions/{scenario['momentum'].pk}/"
    msft = _one(figures["trades"], symbol="MSFT")
    assert (msft["status"], D(msft["entry_price"]), D(msft["exit_price"])) == ("closed", D(50), D("49.5"))
    assert (D(msft["realized_pnl"]), D(msft["fees"]), D(msft["net_pnl"])) == (D(-200), D(4), D(-204))
    assert msft["exit_at"] is not None and msft["execution_id"] == str(scenario["meanrev"].pk)
    tsla = _one(figures["trades"], symbol="TSLA")
    assert tsla["workflow"] == pnl.MANUAL and tsla["execution_url"] is None

    positions = {p["symbol"]: p for p in figures["open_positions"]}
    assert set(positions) == {"AAPL", "TSLA"}
    assert [D(s) for s in positions["TSLA"]["stops"]] == [D(190)]
    assert [D(t) for t in positions["TSLA"]["targets"]] == [D(220)]
    assert positions["AAPL"]["stops"] == [] and D(positions["AAPL"]["unrealized_pnl"]) == D(225)


def test_a_fill_that_flips_the_book_closes_the_trade_and_opens_the_next():
    acct = BrokerAccount.objects.create(name="flip", starting_cash=D(10000), cash=D(10000), slippage_bps=D(0),
                                        commission_per_share=D("0.005"), commission_min=D(1), allow_short=True)
    from django.utils import timezone

    now = timezone.now()
    money_scenario._fill(acct, None, 101, "AAPL", "buy", "10", "100", now)
    money_scenario._fill(acct, None, 102, "AAPL", "sell", "15", "110", now)
    closed, short = pnl.trades(BrokerAccount.objects.filter(pk=acct.pk))
    assert (closed.side, closed.open_qty, closed.realized, closed.fees) == ("long", 0, D(100), D(2))
    assert (short.side, short.open_qty, short.entry_price, short.fees) == ("short", D(-5), D(110), D(0))
    acct.refresh_from_db()
    assert acct.realized_pnl == closed.realized  # the ledger realised the same


def test_pnl_summary_operation_filters_and_bounds(scenario):
    staff = make_user("root", staff=True)
    reply = operations.pnl_summary(account="pnl-test", workflow="momentum", limit=1, user=staff)
    assert reply["success"] and [t["symbol"] for t in reply["trades"]] == ["AAPL"]
    assert [w["workflow"] for w in reply["workflows"]] == ["momentum"]
    with pytest.raises(OperationError) as err:
        operations.pnl_summary(limit=501, user=staff)
    assert err.value.details["field"] == "limit"
    alice = make_user("alice")
    with pytest.raises(OperationError) as err:
        operations.pnl_summary(account="pnl-test", user=alice)
    assert err.value.code == "ACCOUNT_NOT_FOUND"
    own = operations.pnl_summary(user=alice)
    assert {a["account"] for a in own["accounts"]} == {BrokerAccount.objects.get(default_for=alice).name}
    assert own["trades"] == []
    rest = client_for(staff).post("/api/v1/operations/pnl_summary/", {"account": "pnl-test", "limit": 5},
                                  format="json")
    assert rest.status_code == 200 and rest.json()["trade_count"] == 3
    BrokerAccount.objects.create(name="backtest-pnl", broker="backtest", kind=BrokerAccount.Kind.BACKTEST,
                                 starting_cash=Decimal("1000"), cash=Decimal("1000"))
    listed = {a["account"] for a in operations.pnl_summary(user=staff)["accounts"]}
    assert "pnl-test" in listed and "backtest-pnl" not in listed  # a backtest reports through backtest_results
    assert [a["account"] for a in operations.pnl_summary(account="backtest-pnl", user=staff)["accounts"]] == \
        ["backtest-pnl"]


def test_dashboard_data_carries_the_money_panels_for_staff_only(scenario):
    client = Client()
    assert client.get("/dashboard/data.json").status_code == 401
    client.force_login(make_user("alice"))
    assert client.get("/dashboard/data.json").status_code == 403
    client.force_login(make_user("root", staff=True))
    panels = {p["name"]: p for p in client.get("/dashboard/data.json").json()["panels"]}
    money, trades = panels["trading"], panels["trades"]
    assert "error" not in money and "error" not in trades, (money.get("error"), trades.get("error"))
    row = next(r for r in money["rows"] if r[0] == "pnl-test")
    assert row[1:6] == ["100,092.00", "-125.00", "225.00", "8.00", "92.00"]
    assert money["metrics"]["kill_switch"] == "off"
    assert [a["name"] for a in money["actions"]] == ["kill-switch-on"]
    equity = money["charts"][0]["figure"]
    assert equity["layout"]["yaxis"]["autorange"] is True and "pnl-test" in [d["name"] for d in equity["data"]]
    workflows = {r[1]: r for r in money["tables"][0]["rows"]}
    assert workflows["momentum"][5] == "297.00"
    trade_rows = trades["tables"][0]["rows"]
    link = next(r[-1] for r in trade_rows if r[2] == "AAPL")
    assert link["href"] == f"/ui/executions/{scenario['momentum'].pk}/"
    positions = {r[1]: r for r in trades["tables"][1]["rows"]}
    assert positions["TSLA"][6:] == ["190.00", "220.00"]
    candles = {c["name"]: c["figure"] for c in trades["charts"]}
    assert set(candles) == {"candles-AAPL", "candles-MSFT", "candles-TSLA"}
    kinds = [d["type"] for d in candles["candles-AAPL"]["data"]]
    assert kinds[0] == "candlestick" and len(candles["candles-AAPL"]["data"][0]["x"]) == 60
    assert [d["name"] for d in candles["candles-AAPL"]["data"][1:]] == ["buy fills", "sell fills"]
    assert candles["candles-AAPL"]["data"][1]["y"] == [110.0, 100.0]


def test_kill_switch_row_comes_from_the_migrations():
    assert ("trading_app", "0006_kill_switch_row") in MigrationRecorder(connection).applied_migrations()
    KillSwitch.objects.all().delete()  # (a transactional test's flush may have removed it: rolled back here)
    state = MigrationExecutor(connection).loader.project_state(("trading_app", "0006_kill_switch_row")).apps
    from importlib import import_module

    import_module("trading_app.migrations.0006_kill_switch_row").create_row(state, None)
    assert list(KillSwitch.objects.values_list("pk", "active")) == [(1, False)]


def test_kill_switch_admin_is_a_singleton_and_toggles_are_audited():
    root = get_superuser()
    client = Client()
    client.force_login(root)
    changelist = client.get("/admin/trading_app/killswitch/")
    assert changelist.status_code == 302 and changelist["Location"] == "/admin/trading_app/killswitch/1/change/"
    assert client.get("/admin/trading_app/killswitch/add/").status_code == 403
    assert client.get("/admin/trading_app/killswitch/1/delete/").status_code == 403
    page = client.get("/admin/trading_app/killswitch/1/change/")
    assert page.status_code == 200 and b"Add kill switch" not in page.content
    saved = client.post("/admin/trading_app/killswitch/1/change/", {"active": "on", "reason": "admin test"})
    assert saved.status_code == 302 and KillSwitch.objects.get(pk=1).active
    api = client_for(root)
    assert api.post("/api/v1/trading/kill-switch/", {"active": False, "reason": "resume"}, format="json").json()[
        "kill_switch"]["active"] is False
    assert_error(client_for(make_user("alice")).post("/api/v1/trading/kill-switch/", {"active": True},
                                                     format="json"), 403, "PERMISSION_DENIED")
    trail = list(AuditEvent.objects.filter(event="kill_switch_set").order_by("id").values_list("data", flat=True))
    assert [(d["active"], d["was_active"], d["reason"], d["by"]) for d in trail] == [
        (True, False, "admin test", "boss"), (False, True, "resume", "boss")]


def get_superuser():
    from django.contrib.auth import get_user_model

    return get_user_model().objects.create_superuser("boss", password="pw-boss", email="")


def test_kill_switch_admin_opens_the_switch_even_without_its_row():
    KillSwitch.objects.all().delete()
    client = Client()
    client.force_login(get_superuser())
    assert client.get("/admin/trading_app/killswitch/1/change/").status_code == 200
    assert list(KillSwitch.objects.values_list("pk", "active")) == [(1, False)]


def test_a_halted_governor_is_shown_with_a_reset_that_needs_a_reason(scenario):
    from trading_app.models import RiskState

    RiskState.objects.create(account=scenario["account"], state="halted", reason="daily_loss at 0.03 above 0.02",
                             breached_limit="daily_loss")
    client = Client()
    root = make_user("root", staff=True)
    client.force_login(root)
    money = next(p for p in client.get("/dashboard/data.json").json()["panels"] if p["name"] == "trading")
    assert "Risk governor of pnl-test: halted (daily_loss at 0.03 above 0.02)" in money["notes"]
    reset = next(a for a in money["actions"] if a["name"] == "risk-reset-pnl-test")
    assert reset["reason_required"] and reset["url"] == "/api/v1/trading/risk/reset/"
    api = client_for(root)
    assert_error(api.post(reset["url"], {**reset["body"], "reason": ""}, format="json"), 400)
    done = api.post(reset["url"], {**reset["body"], "reason": "reviewed"}, format="json")
    assert done.status_code == 200 and done.json()["state"] == "active"
    money = next(p for p in client.get("/dashboard/data.json").json()["panels"] if p["name"] == "trading")
    assert [a["name"] for a in money["actions"]] == ["kill-switch-on"]
