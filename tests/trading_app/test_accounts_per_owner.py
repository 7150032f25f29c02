"""Issue 11, finding 7: one broker account, shared and visible to every user.

B saw A's positions, B's trades used up A's caps, and the demo spent the paper account the user
traded on. Now every user trades on their own paper account (created on first use), resolved from
the execution's owner; positions, orders and the account are visible to the account's owners and
staff only; caps and a kill switch apply per account; the demo trades on its own account.
"""
from __future__ import annotations

import pytest

from tests.support.api import API, assert_error, client_for, make_user
from tests.trading_app.helpers import make_ctx
from trading_app import accounts
from trading_app.killswitch import set_kill_switch
from trading_app.models import BrokerAccount, Order
from workflows_app.errors import PermanentStepError
from workflows_app.registry import registry

PINNED_NOW = "2025-09-17T17:00:00Z"


@pytest.fixture(autouse=True)
def _pinned_clock(settings):
    settings.NEXUS_SIM_NOW = PINNED_NOW


def trade_as(user, symbol: str = "MSFT", **params) -> dict:
    """A trade_execution step of an execution owned by ``user`` (owner fixed on the context)."""
    ctx = make_ctx("trade_execution", {"signal": "BUY", "symbols": [symbol], "stop_loss_pct": 0.01, **params})
    ctx.owner_id = user.pk if user is not None else None
    return registry.get_step_type("trade_execution").handler(ctx)


@pytest.mark.django_db
def test_b_does_not_see_a_s_positions_orders_or_account(alice, bob, staff, api_a, api_b, api_staff):
    out = trade_as(alice)
    assert out["status"] == "filled"
    a_acct = accounts.user_account(alice.pk)
    assert Order.objects.get(client_order_id=out["client_order_id"]).account == a_acct

    mine = api_a.get(f"{API}/trading/positions/").json()
    assert mine["account"] == a_acct.name and [p["symbol"] for p in mine["positions"]] == ["MSFT"]
    orders = api_a.get(f"{API}/trading/orders/").json()["orders"]  # the entry and its bracket legs
    assert out["client_order_id"] in {o["client_order_id"] for o in orders}
    assert {o["account"] for o in orders} == {a_acct.name}

    theirs = api_b.get(f"{API}/trading/positions/").json()
    assert theirs["count"] == 0 and theirs["account"] != a_acct.name
    account_b = api_b.get(f"{API}/trading/account/").json()["account"]
    assert account_b["cash"] == 100_000 and account_b["owners"] == ["bob"]
    assert api_b.get(f"{API}/trading/orders/").json()["total"] == 0
    for path in ("account", "positions", "orders"):
        assert_error(api_b.get(f"{API}/trading/{path}/", {"account": a_acct.name}), 404, "ACCOUNT_NOT_FOUND")
    assert [a["name"] for a in api_b.get(f"{API}/trading/accounts/").json()["accounts"]] == [f"user-{bob.pk}"]

    from rest_framework.test import APIClient

    assert_error(APIClient().get(f"{API}/trading/accounts/"), 401, "NOT_AUTHENTICATED")
    # staff see every account
    names = {a["name"] for a in api_staff.get(f"{API}/trading/accounts/").json()["accounts"]}
    assert {a_acct.name, f"user-{bob.pk}"} <= names
    seen = api_staff.get(f"{API}/trading/positions/", {"account": a_acct.name}).json()
    assert [p["symbol"] for p in seen["positions"]] == ["MSFT"]


@pytest.mark.django_db
def test_b_s_trades_do_not_use_up_a_s_caps(alice, bob):
    first = trade_as(alice)  # A fills the 10 % per-symbol cap on MSFT
    assert "max_position_pct" in first["sizing"]["capped_by"]
    again = trade_as(alice)
    assert again["status"] == "skipped"  # A's cap is used up ...
    b = trade_as(bob)  # ... B's is not: B's own account, B's own cap
    assert b["status"] == "filled" and b["qty"] == first["qty"]
    assert Order.objects.get(client_order_id=b["client_order_id"]).account == accounts.user_account(bob.pk)


@pytest.mark.django_db
def test_kill_switch_per_account_and_global(alice, bob, api_a, api_b):
    a_name = accounts.user_account(alice.pk).name
    # B may not halt A's account; A may halt their own
    assert_error(api_b.post(f"{API}/trading/kill-switch/", {"active": True, "account": a_name}, format="json"),
                 404, "ACCOUNT_NOT_FOUND")
    halted = api_a.post(f"{API}/trading/kill-switch/", {"active": True, "account": a_name, "reason": "pause"},
                        format="json")
    assert halted.status_code == 200 and halted.json()["account_kill_switch"]["halted"] is True
    with pytest.raises(PermanentStepError) as err:
        trade_as(alice)
    assert err.value.error_class == "kill_switch"
    assert trade_as(bob)["status"] == "filled"  # B's account trades on
    set_kill_switch(True, "everything")  # the global switch still stops everyone
    with pytest.raises(PermanentStepError) as err:
        trade_as(bob, "AAPL")
    assert err.value.error_class == "kill_switch"
    set_kill_switch(False)


@pytest.mark.django_db
def test_metadata_account_must_be_one_the_owner_may_use(alice):
    from workflows_app import operations

    created = operations.workflow_create(name="wants-demo", metadata={"account": "demo"}, user=alice, steps=[
        {"name": "noop", "type": "test_noop"}])
    from workflows_app.models import Execution, Workflow

    wf = Workflow.objects.get(pk=created["workflow_id"])
    accounts.demo_account()
    execution = Execution.objects.create(workflow=wf, version=wf.current_version, owner=alice, test_mode=True)
    with pytest.raises(PermanentStepError) as err:
        accounts.account_for_execution(str(execution.pk), alice.pk, True)
    assert err.value.error_class == "account_not_allowed"
    # an owner-less (operator) workflow may name the demo account; an owner-less execution of A's
    # workflow trades on A's account (the workflow's owner), never on someone else's
    system = operations.workflow_create(name="system-demo", metadata={"account": "demo"}, steps=[
        {"name": "noop", "type": "test_noop"}])
    sys_wf = Workflow.objects.get(pk=system["workflow_id"])
    run = Execution.objects.create(workflow=sys_wf, version=sys_wf.current_version, test_mode=True)
    assert accounts.account_for_execution(str(run.pk), None, True).name == "demo"
    plain = operations.workflow_create(name="a-plain", user=alice, steps=[{"name": "noop", "type": "test_noop"}])
    a_wf = Workflow.objects.get(pk=plain["workflow_id"])
    ownerless = Execution.objects.create(workflow=a_wf, version=a_wf.current_version, owner=None, test_mode=True)
    assert accounts.account_for_execution(str(ownerless.pk), None, True) == accounts.user_account(alice.pk)


@pytest.mark.django_db(transaction=True)
def test_migration_makes_the_old_account_the_house_account():
    """0002 on a database with the old single PaperAccount and an Alpaca order without an account."""
    from decimal import Decimal

    from django.db import connection
    from django.db.migrations.executor import MigrationExecutor

    executor = MigrationExecutor(connection)
    leaf = executor.loader.graph.leaf_nodes("trading_app")
    executor.migrate([("trading_app", "0001_initial")])
    old = executor.loader.project_state([("trading_app", "0001_initial")]).apps
    old.get_model("trading_app", "PaperAccount").objects.create(
        name="default", starting_cash=Decimal(100_000), cash=Decimal(90_000))
    old.get_model("trading_app", "Order").objects.create(broker="alpaca", client_order_id="old-alpaca",
                                                         symbol="AAPL", side="buy", qty=1)
    executor = MigrationExecutor(connection)
    executor.migrate(leaf)
    house = BrokerAccount.objects.get(name="default")
    assert house.kind == "house" and house.broker == "paper" and house.cash == 90_000 and not house.owners.exists()
    assert Order.objects.get(client_order_id="old-alpaca").account.name == "alpaca"


@pytest.mark.django_db
def test_the_house_account_is_for_operator_workflows_and_staff():
    acct = accounts.house_account()
    assert acct.name == "default" and acct.kind == BrokerAccount.Kind.HOUSE and not acct.owners.exists()
    assert accounts.can_use(None, acct)
    user = make_user("carol")
    assert not accounts.can_use(user.pk, acct)  # a non-staff user may not trade on the house account
    assert accounts.can_use(make_user("ops", staff=True).pk, acct)


@pytest.mark.django_db
def test_a_named_alpaca_account_needs_ownership_and_test_mode_stays_on_paper(alice, bob):
    from workflows_app import operations
    from workflows_app.models import Execution, Workflow

    alpaca = accounts.alpaca_account()
    alpaca.owners.add(alice)
    created = operations.workflow_create(name="on-alpaca", metadata={"account": "alpaca"}, user=alice,
                                         steps=[{"name": "noop", "type": "test_noop"}])
    wf = Workflow.objects.get(pk=created["workflow_id"])
    live = Execution.objects.create(workflow=wf, version=wf.current_version, owner=alice)
    assert accounts.account_for_execution(str(live.pk), alice.pk, False) == alpaca
    assert accounts.account_for_execution(str(live.pk), alice.pk, True) == accounts.user_account(alice.pk)
    with pytest.raises(PermanentStepError):  # bob executes alice's workflow: bob may not use the alpaca row
        accounts.account_for_execution(str(live.pk), bob.pk, False)


@pytest.mark.django_db(transaction=True)
@pytest.mark.slow
def test_a_demo_round_never_touches_a_user_s_account(celery_worker, settings):
    """The demo's saga and broker call run on the real worker and trade on the demo account;
    the user's account (and its position) is exactly as it was."""
    from trading_app.examples import EXAMPLES, load_examples
    from workflows_app import operations
    from workflows_app.models import Workflow

    settings.NEXUS_DEMO = True
    alice = make_user("alice-demo")
    trade_as(alice)
    a_acct = accounts.user_account(alice.pk)
    before = client_for(alice).get(f"{API}/trading/account/").json()["account"]
    a_orders = Order.objects.filter(account=a_acct).count()
    load_examples()  # demo mode: the examples (fired by the demo's injections) and the demo workflows
    names = [w["name"] for w in EXAMPLES] + ["demo-trading-saga", "demo-protected-trader"]
    assert {w.metadata.get("account") for w in Workflow.objects.filter(name__in=names)} == {"demo"}
    reply = operations.workflow_execute(workflow_id="demo-trading-saga", trigger="demo", input_data={
        "test_mode": True, "symbol": "AAPL", "oversized_hedge": False}, **{"async": False})
    assert reply["status"] == "succeeded", reply
    reply = operations.workflow_execute(workflow_id="demo-protected-trader", trigger="demo",
                                        input_data={"test_mode": True}, **{"async": False})
    assert reply["status"] == "succeeded", reply
    demo = accounts.demo_account()
    assert Order.objects.filter(account=demo, status="filled").count() == 1
    assert Order.objects.filter(account=a_acct).count() == a_orders
    after = client_for(alice).get(f"{API}/trading/account/").json()["account"]
    assert after["cash"] == before["cash"] and after["reserved_cash"] == 0
