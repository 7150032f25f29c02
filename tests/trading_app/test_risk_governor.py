"""The risk governor at its gate (``brokers.Broker.submit_order`` -> ``governor.gate.submit``): the
states latch, bad data neither halts nor passes, limits only tighten, every broker and step type is
judged, faces (REST, MCP tool list, /health/, admin) show it. End to end on a worker: test_risk_governor_worker."""
from __future__ import annotations

import math
import threading

import pytest
from django.core.exceptions import ValidationError
from django.db import close_old_connections

from tests.support.api import client_for
from tests.trading_app.helpers import run_step
from trading_app import accounts, operations
from trading_app.brokers import Broker, OrderRequest, RiskRejected
from trading_app.governor import service
from trading_app.models import Order, RiskEvent, RiskState
from trading_app.paper import PaperBroker
from trading_app.providers import get_market_data, simulated
from workflows_app.errors import OperationError
from workflows_app.models import AuditEvent
from workflows_app.operations.catalogue import catalogue

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture(autouse=True)
def _market(settings):
    settings.NEXUS_SIM_NOW = "2025-09-17T17:00:00Z"
    settings.NEXUS_RISK_MAX_DAILY_LOSS = 0.02


def paper() -> PaperBroker:
    return PaperBroker(market_data=get_market_data(True), account=accounts.house_account())


def buy(broker, symbol: str, qty: float, cid: str, side: str = "buy") -> dict:
    return broker.submit_order(OrderRequest(symbol=symbol, side=side, qty=qty, client_order_id=cid))


def seed_msft(broker, pct: float = 0.08) -> int:
    qty = int(pct * 100_000 / broker.market_data.latest_price("MSFT"))
    assert buy(paper(), "MSFT", qty, "seed-msft")["status"] == "filled"
    return qty


def state() -> RiskState:
    return RiskState.objects.get(account=accounts.house_account())


def test_no_broker_may_override_submit_order():
    with pytest.raises(TypeError, match="risk governor"):
        type("Sneaky", (Broker,), {"submit_order": lambda self, req: {}})
    assert "submit_order" not in vars(PaperBroker)
    from trading_app.providers.alpaca_broker import AlpacaBroker
    assert "submit_order" not in vars(AlpacaBroker) and issubclass(AlpacaBroker, Broker)


def test_daily_loss_latches_after_two_valid_readings_and_halts_every_order():
    broker = paper()
    qty = seed_msft(broker)
    simulated.inject_jump("MSFT", -0.4)  # 8 % of equity loses 40 %: a 3.2 % daily loss, limit 2 %
    with pytest.raises(RiskRejected, match="one reading"):  # first breaching reading: refused, not latched
        buy(paper(), "AAPL", 1, "b1")
    assert state().state == "active" and state().streaks == {"daily_loss": 1}
    with pytest.raises(RiskRejected, match="halted"):  # confirmed: halted, and this BUY refused
        buy(paper(), "AAPL", 1, "b2")
    assert state().state == "halted" and state().breached_limit == "daily_loss"
    with pytest.raises(RiskRejected, match="halted"):  # halted refuses even a reducing SELL
        buy(paper(), "MSFT", qty, "s1", side="sell")
    kinds = list(RiskEvent.objects.order_by("at", "id").values_list("kind", "decision"))
    assert ("breach", "") in kinds and kinds.count(("decision", "refused")) == 3
    assert AuditEvent.objects.filter(event="risk_breach", data__limit="daily_loss").count() == 1


def test_reduce_only_lets_a_reducing_sell_pass_and_cuts_a_flip(settings):
    settings.NEXUS_RISK_ACTIONS = "daily_loss=reduce_only"
    broker = paper()
    qty = seed_msft(broker)
    simulated.inject_jump("MSFT", -0.4)
    service.observe_account(accounts.house_account(), paper())
    service.observe_account(accounts.house_account(), paper())  # the sweep's second reading confirms
    assert state().state == "reduce_only"
    with pytest.raises(RiskRejected, match="reduce-only"):
        buy(paper(), "AAPL", 1, "b1")
    assert buy(paper(), "MSFT", qty // 2, "s1", side="sell")["status"] == "filled"
    out = buy(paper(), "MSFT", qty * 3, "s2", side="sell")  # more than held: cut to the position
    assert out["status"] == "filled" and out["qty"] == qty - qty // 2
    assert RiskEvent.objects.get(client_order_id="s2").decision == "reduced"


def test_a_single_bad_price_neither_halts_nor_passes_silently():
    broker = paper()
    seed_msft(broker)
    simulated.inject_jump("MSFT", -0.4)  # one absurd reading
    with pytest.raises(RiskRejected, match="one reading"):
        buy(paper(), "AAPL", 1, "b1")
    simulated.clear_injections("MSFT")  # the next reading is sane again: the streak resets
    assert buy(paper(), "AAPL", 1, "b2")["status"] == "filled"
    assert state().state == "active" and state().streaks == {}

    class Glitch:  # the provider answers NaN for MSFT once (a feed glitch)
        def __init__(self, md):
            self.md, self.left = md, 1

        def __getattr__(self, name):
            return getattr(self.md, name)

        def latest_price(self, symbol, *a, **kw):
            if symbol == "MSFT" and self.left:
                self.left -= 1
                return math.nan
            return self.md.latest_price(symbol, *a, **kw)

    glitchy = PaperBroker(market_data=Glitch(get_market_data(True)), account=accounts.house_account())
    with pytest.raises(RiskRejected, match=r"cannot judge the order: price of MSFT is absurd \(None\)"):
        buy(glitchy, "AAPL", 1, "b3")
    assert buy(glitchy, "AAPL", 1, "b4")["status"] == "filled" and state().state == "active"


def test_warning_at_80_percent_once_per_day():
    broker = paper()
    seed_msft(broker)
    simulated.inject_jump("MSFT", -0.21)  # ~1.7 % daily loss: 84 % of the 2 % limit
    buy(paper(), "AAPL", 1, "b1")
    buy(paper(), "AAPL", 1, "b2")
    warnings = RiskEvent.objects.filter(kind="warning", limit="daily_loss")
    assert warnings.count() == 1 and "of its limit 0.02" in warnings.get().reason
    assert AuditEvent.objects.filter(event="risk_warning", data__limit="daily_loss").count() == 1
    assert state().state == "active"


def test_an_exposure_breach_refuses_what_adds_to_it_or_latches_when_configured(settings):
    seed_msft(paper())
    simulated.inject_jump("MSFT", 0.6)  # 8 % of equity becomes ~12.8 %: above the 10 % per-symbol limit
    for _ in range(2):
        service.observe_account(accounts.house_account(), paper())
    assert state().state == "active"  # default: the breach refuses what adds to it, no latch
    with pytest.raises(RiskRejected, match=r"symbol_exposure \(max_position_pct\)"):
        buy(paper(), "MSFT", 1, "more-msft")
    assert buy(paper(), "AAPL", 1, "aapl")["status"] == "filled"
    settings.NEXUS_RISK_ACTIONS = "symbol_exposure=reduce_only"
    service.observe_account(accounts.house_account(), paper())
    assert state().state == "reduce_only" and state().breached_limit == "symbol_exposure"
    with pytest.raises(RiskRejected, match="reduce-only"):
        buy(paper(), "AAPL", 1, "aapl-2")
    assert buy(paper(), "MSFT", 1, "trim", side="sell")["status"] == "filled"


def test_order_notional_and_rate_limits(settings):
    settings.NEXUS_RISK_MAX_ORDERS_PER_MINUTE = 2
    settings.NEXUS_RISK_ACTIONS = "order_rate=halted"
    paper()
    acct = accounts.house_account()
    service.set_limit(acct, "max_order_notional", 1000)
    with pytest.raises(RiskRejected, match="order_notional"):
        buy(paper(), "AAPL", 10, "big")
    buy(paper(), "AAPL", 1, "r1")
    buy(paper(), "AAPL", 1, "r2")
    with pytest.raises(RiskRejected, match="order_rate"):
        buy(paper(), "AAPL", 1, "r3")
    assert state().state == "halted" and state().breached_limit == "order_rate"


def test_an_account_limit_only_tightens(settings, staff):
    acct = accounts.house_account()
    with pytest.raises(OperationError) as err:
        operations.risk_limit_set(account=acct.name, field="max_daily_loss", value=0.5, user=staff)
    assert err.value.details == {"field": "max_daily_loss"} and "NEXUS_RISK_MAX_DAILY_LOSS=0.02" in err.value.message
    reply = operations.risk_limit_set(account=acct.name, field="max_daily_loss", value=0.01, user=staff)
    assert reply["limits"]["daily_loss"] == {**reply["limits"]["daily_loss"], "limit": 0.01, "source": "account"}
    row = state()
    row.max_drawdown = 0.9
    with pytest.raises(ValidationError) as verr:  # the admin's form validation
        row.full_clean()
    assert "max_drawdown" in verr.value.message_dict
    settings.NEXUS_RISK_MAX_DAILY_LOSS = 0.005  # a ceiling lowered below the account's value wins
    assert service.status(acct)["limits"]["daily_loss"]["limit"] == 0.005


def test_reset_is_staff_only_needs_a_reason_and_is_audited(staff, alice):
    broker = paper()
    seed_msft(broker)
    simulated.inject_jump("MSFT", -0.4)
    for _ in range(2):
        service.observe_account(accounts.house_account(), paper())
    assert state().state == "halted"
    with pytest.raises(OperationError) as err:
        operations.risk_reset(account="default", reason="looked at it", user=alice)
    assert err.value.code in ("PERMISSION_DENIED", "ACCOUNT_NOT_FOUND")
    with pytest.raises(OperationError) as err:
        operations.risk_reset(account="default", reason="", user=staff)
    assert err.value.details["field"] == "reason"
    reply = operations.risk_reset(account="default", reason="drill over", rebaseline=True, user=staff)
    assert reply["state"] == "active" and reply["previous_state"] == "halted"
    assert reply["last_reset"]["by"] == "root" and reply["last_reset"]["reason"] == "drill over"
    event = AuditEvent.objects.get(event="risk_reset")
    assert event.data["by"] == "root" and event.data["reason"] == "drill over" and event.data["previous_state"] == "halted"
    assert buy(paper(), "AAPL", 1, "after")["status"] == "filled"  # rebaselined: trading again


def test_every_step_type_placing_orders_meets_the_governor():
    """trade_execution, place_order (saga) and hedge: each order is a decision of the governor."""
    paper()  # the house account exists
    run_step("trade_execution", {"signal": "BUY", "symbols": ["MSFT"], "stop_loss_pct": 0.02},
             execution_id="00000000-0000-0000-0000-00000000000a")
    run_step("place_order", {"symbol": "AAPL", "qty": 2}, execution_id="00000000-0000-0000-0000-00000000000b")
    run_step("hedge", {"hedge_ratio": 0.5}, execution_id="00000000-0000-0000-0000-00000000000c")
    steps = set(RiskEvent.objects.filter(kind="decision", decision="allowed").values_list("step", flat=True))
    assert {"trade_execution", "place_order", "hedge"} <= steps
    assert Order.objects.filter(parent__isnull=True).count() == RiskEvent.objects.filter(kind="decision").count()


def test_two_workers_ordering_at_once_do_not_both_pass_the_rate_limit(settings):
    settings.NEXUS_RISK_MAX_ORDERS_PER_MINUTE = 1
    paper()
    results: list = []

    def place(cid):
        try:
            results.append(buy(paper(), "AAPL", 1, cid)["status"])
        except RiskRejected as exc:
            results.append(str(exc))
        finally:
            close_old_connections()

    threads = [threading.Thread(target=place, args=(f"c{i}",)) for i in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    assert sorted(r == "filled" for r in results) == [False, True], results
    assert RiskEvent.objects.filter(decision="allowed").count() == 1


def test_faces_show_the_state(staff, alice):
    assert {"risk_status", "risk_reset", "risk_limit_set"} <= {op.name for op in catalogue.tools()}
    paper()
    reply = client_for(staff).get("/api/v1/trading/risk/", {"account": "default", "refresh": "true"})
    assert reply.status_code == 200, reply.content
    row = reply.json()["accounts"][0]
    assert row["state"] == "active" and set(row["limits"]) >= {"daily_loss", "drawdown", "order_rate"}
    assert row["limits"]["gross_exposure"]["headroom"] == 1.0
    mine = client_for(alice).get("/api/v1/trading/risk/").json()
    assert [a["account"] for a in mine["accounts"]] == [f"user-{alice.pk}"]
    denied = client_for(alice).post("/api/v1/trading/risk/reset/", {"account": "default", "reason": "x"},
                                    format="json")
    assert denied.status_code in (403, 404)
    health = client_for(staff).get("/health/").json()
    trading = health.get("trading") or health.get("checks", {}).get("trading") or {}
    assert trading["risk_governor"]["default"]["state"] == "active", health


# --- the Alpaca adapter, against recorded responses ----------------------------------------------
PAPER_API = "https://paper-api.alpaca.markets/v2"
ALPACA_ORDER = {"id": "61e69015-8549-4bfd-b9c3-01e75843f47d", "client_order_id": "nexus-gov-1", "symbol": "AAPL",
                "side": "buy", "order_type": "market", "type": "market", "order_class": "simple", "qty": "5",
                "filled_qty": "5", "filled_avg_price": "200.10", "status": "filled", "time_in_force": "day",
                "created_at": "2025-09-17T17:00:01Z", "filled_at": "2025-09-17T17:00:02Z", "legs": []}


def alpaca_account_reply(equity: str) -> dict:
    return {"account_number": "PA1", "cash": "98000", "equity": equity, "buying_power": "200000", "status": "ACTIVE"}


@pytest.fixture
def alpaca(settings, requests_mock):
    from trading_app.providers.alpaca_broker import AlpacaBroker

    settings.APCA_API_KEY_ID, settings.APCA_API_SECRET_KEY = "PKTEST", "secret"
    requests_mock.get(f"{PAPER_API}/account", json=alpaca_account_reply("100000"))
    requests_mock.get(f"{PAPER_API}/positions", json=[{"symbol": "AAPL", "qty": "10", "avg_entry_price": "180",
                                                       "current_price": "200", "market_value": "2000",
                                                       "unrealized_pl": "200", "side": "long"}])
    requests_mock.get(f"{PAPER_API}/orders:by_client_order_id", status_code=404, json={"message": "not found"})
    broker = AlpacaBroker.from_settings()
    broker.sleep = lambda s: None
    return broker


def alpaca_buy(broker, cid: str) -> dict:
    return broker.submit_order(OrderRequest(symbol="AAPL", side="buy", qty=5, client_order_id=cid))


def test_the_governor_judges_alpaca_orders_on_the_accounts_own_figures(alpaca, requests_mock):
    post = requests_mock.post(f"{PAPER_API}/orders", json=ALPACA_ORDER)
    assert alpaca_buy(alpaca, "nexus-gov-1")["status"] == "filled" and post.call_count == 1
    event = RiskEvent.objects.get(client_order_id="nexus-gov-1")
    assert (event.account.name, event.decision) == ("alpaca", "allowed")
    requests_mock.get(f"{PAPER_API}/account", json=alpaca_account_reply("97000"))  # 3 % down on the day
    with pytest.raises(RiskRejected, match="one reading"):
        alpaca_buy(alpaca, "nexus-gov-2")
    with pytest.raises(RiskRejected, match="halted"):
        alpaca_buy(alpaca, "nexus-gov-3")
    assert RiskState.objects.get(account__name="alpaca").state == "halted"
    assert post.call_count == 1  # nothing was sent after the first order


def test_an_absurd_alpaca_equity_reading_refuses_without_halting(alpaca, requests_mock):
    post = requests_mock.post(f"{PAPER_API}/orders", json=ALPACA_ORDER)
    requests_mock.get(f"{PAPER_API}/account", json=alpaca_account_reply("0"))
    with pytest.raises(RiskRejected, match="cannot judge the order: equity reading 0.0"):
        alpaca_buy(alpaca, "nexus-gov-1")
    assert RiskState.objects.get(account__name="alpaca").state == "active" and post.call_count == 0
    requests_mock.get(f"{PAPER_API}/account", json=alpaca_account_reply("100000"))
    assert alpaca_buy(alpaca, "nexus-gov-1")["status"] == "filled"


def test_the_admin_shows_the_state_and_resets_with_a_reason(admin_client):
    row = service.state_of(accounts.house_account())
    RiskState.objects.filter(pk=row.pk).update(state="halted", reason="drill", breached_limit="daily_loss")
    page = admin_client.get("/admin/trading_app/riskstate/")
    assert page.status_code == 200 and b"halted" in page.content
    url = "/admin/trading_app/riskstate/"
    admin_client.post(url, {"action": "reset", "_selected_action": [row.pk], "reason": ""})
    assert state().state == "halted"  # no reason: refused, reported
    admin_client.post(url, {"action": "reset", "_selected_action": [row.pk], "reason": "drill over"})
    assert state().state == "active" and state().reset_by == "admin"
    assert AuditEvent.objects.get(event="risk_reset").data["reason"] == "drill over"
