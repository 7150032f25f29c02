import pytest
from django.contrib.auth import get_user_model
from rest_framework.test import APIClient

from trading_app import operations
from trading_app.brokers import OrderRequest
from trading_app.paper import PaperBroker
from workflows_app.errors import OperationError
from workflows_app.registry import registry

pytestmark = pytest.mark.django_db


@pytest.fixture
def client():
    user = get_user_model().objects.create_user("trader", password="pw", is_staff=False)
    c = APIClient()
    c.force_authenticate(user)
    return c


@pytest.fixture
def staff_client():
    user = get_user_model().objects.create_user("ops", password="pw", is_staff=True)
    c = APIClient()
    c.force_authenticate(user)
    return c


@pytest.fixture
def filled_order(settings):
    settings.NEXUS_SIM_NOW = "2025-09-17T17:00:00Z"
    return PaperBroker().submit_order(OrderRequest(symbol="AAPL", side="buy", qty=3, client_order_id="api-1"))


def test_account_positions_orders(client, staff_client, filled_order):
    acct = client.get("/api/v1/trading/account/").json()
    assert acct["success"] and acct["account"]["broker"] == "paper" and acct["mode"]["mode"] == "paper"
    assert acct["account"]["account"] == acct["account"]["name"] != "default"  # the trader's own account
    # the order went to the house account: the trader does not see it, staff do (by naming it)
    assert client.get("/api/v1/trading/positions/").json()["count"] == 0
    assert client.get("/api/v1/trading/positions/", {"account": "default"}).status_code == 404
    pos = staff_client.get("/api/v1/trading/positions/", {"account": "default"}).json()
    assert pos["count"] == 1 and pos["positions"][0]["symbol"] == "AAPL"
    orders = staff_client.get("/api/v1/trading/orders/", {"status": "filled", "symbol": "aapl"}).json()
    assert orders["total"] == 1 and orders["orders"][0]["client_order_id"] == "api-1"
    # an order placed outside this trader's executions is not theirs to see
    assert client.get("/api/v1/trading/orders/").json()["total"] == 0
    bad = client.get("/api/v1/trading/orders/", {"status": "nope"})
    assert bad.status_code == 400 and bad.json()["error"]["details"]["field"] == "status"


def test_kill_switch_staff_only(client, staff_client):
    assert client.get("/api/v1/trading/kill-switch/").json()["kill_switch"]["active"] is False
    denied = client.post("/api/v1/trading/kill-switch/", {"active": True}, format="json")
    assert denied.status_code == 403
    ok = staff_client.post("/api/v1/trading/kill-switch/", {"active": True, "reason": "drill"}, format="json").json()
    assert ok["kill_switch"]["active"] is True and ok["kill_switch"]["updated_by"] == "ops"
    bad = staff_client.post("/api/v1/trading/kill-switch/", {"active": "yes"}, format="json")
    assert bad.status_code == 400
    staff_client.post("/api/v1/trading/kill-switch/", {"active": False}, format="json")


def test_unauthenticated_refused():
    assert APIClient().get("/api/v1/trading/account/").status_code in (401, 403)


def test_operations_refuse_unknown_arguments():
    with pytest.raises(OperationError) as err:
        operations.trading_orders(colour="red")
    assert err.value.code == "INVALID_INPUT_DATA"


def test_health_part_and_tasks(filled_order):
    part = registry.health_checks["trading"]()
    assert part["ok"] and part["mode"] == "paper"
    from trading_app import tasks

    assert tasks.process_open_orders.name == "nexus.trading.process_open_orders"
    assert tasks.process_open_orders.run()["fills"] == 0
    assert tasks.snapshot_account.run()["accounts"]["default"]["equity"] > 0
    assert tasks.sync_broker_orders.run()["synced"] == 0
    from nexus_project.celery import app

    for name in ("nexus-trading-process-open-orders", "nexus-trading-snapshot-account"):
        assert app.conf.beat_schedule[name]["task"].startswith("nexus.trading.")


def test_admin_read_only_records_and_editable_kill_switch(filled_order):
    from django.test import Client

    from trading_app.models import KillSwitch

    admin_user = get_user_model().objects.create_superuser("admin", "a@example.com", "pw")
    c = Client()
    c.force_login(admin_user)
    from trading_app.models import PaperAccount

    acct = PaperAccount.objects.get()
    knobs = {"slippage_bps": "20", "commission_per_share": "0.01", "commission_min": "0.5", "cash": "1"}
    looser = c.post(f"/admin/trading_app/brokeraccount/{acct.pk}/change/", {**knobs, "max_position_pct": "0.5"})
    assert looser.status_code == 200 and b"NEXUS_MAX_POSITION_PCT" in looser.content  # limits only tighten
    resp = c.post(f"/admin/trading_app/brokeraccount/{acct.pk}/change/", {**knobs, "max_position_pct": "0.05"})
    assert resp.status_code == 302
    acct.refresh_from_db()
    assert float(acct.slippage_bps) == 20 and float(acct.cash) != 1  # knobs editable, balances not
    assert acct.max_position_pct == 0.05
    for model in ("order", "fill", "position", "accountsnapshot", "newsitem", "brokeraccount", "notification"):
        page = c.get(f"/admin/trading_app/{model}/")
        assert page.status_code == 200, model
        assert c.get(f"/admin/trading_app/{model}/add/").status_code == 403, model
    from trading_app.models import Order

    order = Order.objects.get(client_order_id="api-1")
    change = c.post(f"/admin/trading_app/order/{order.pk}/change/", {"qty": 999})
    assert change.status_code == 403
    assert c.get("/admin/trading_app/killswitch/add/").status_code == 403  # a singleton: its row is migrated
    resp = c.post("/admin/trading_app/killswitch/1/change/", {"active": "on", "reason": "admin drill"})
    assert resp.status_code == 302
    ks = KillSwitch.objects.get(pk=1)
    assert ks.active and ks.updated_by == "admin"


def test_cli(filled_order, capsys):
    import json

    from django.core.management import call_command

    call_command("trading", "orders", "--json")
    assert json.loads(capsys.readouterr().out)["total"] == 1
    call_command("trading", "kill-switch", "--on", "--reason", "cli drill")
    assert "ACTIVE (cli drill)" in capsys.readouterr().out
    call_command("trading", "kill-switch", "--off", "--json")
    assert json.loads(capsys.readouterr().out)["kill_switch"]["active"] is False
    call_command("trading", "account")
    assert "paper account default: equity" in capsys.readouterr().out
    call_command("trading", "positions")
    assert "AAPL" in capsys.readouterr().out
    call_command("trading", "positions", "--account", "default", "--json")
    assert json.loads(capsys.readouterr().out)["account"] == "default"
