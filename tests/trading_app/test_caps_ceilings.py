"""Issue 11, finding 1: operator limits are ceilings.

A definition could raise NEXUS_MAX_POSITION_PCT (0.10) to 1.0 and NEXUS_MAX_GROSS_EXPOSURE (1.0) to
10, and ask for risk_limit 0.5: one order reached 79 % of equity. Now a looser value is refused at
create/update time with a field error naming the ceiling, and the order path applies the ceilings
again at run time, whatever built the params and whatever step places the order.
"""
from __future__ import annotations

import pytest

from tests.support.api import API, assert_error
from tests.trading_app.helpers import make_ctx
from trading_app.brokers import OrderRequest
from trading_app.models import Order, RiskEvent
from trading_app.paper import PaperBroker
from trading_app.providers import get_market_data
from trading_app.steps.orders import TradeParams, trade_execution
from workflows_app.errors import PermanentStepError
from workflows_app.registry import registry

PINNED_NOW = "2025-09-17T17:00:00Z"


@pytest.fixture(autouse=True)
def _pinned_clock(settings):
    settings.NEXUS_SIM_NOW = PINNED_NOW


def _trader(params: dict, step_type: str = "trade_execution") -> dict:
    return {"name": "loose-caps", "description": "d",
            "steps": [{"name": "noop", "type": "test_noop"}, {"name": "act", "type": step_type, "params": params}]}


def _fields(error: dict) -> dict:
    return {e["field"]: e["message"] for e in error["details"]["errors"]}


LOOSER = [
    ("trade_execution", "max_position_pct", 0.5, "NEXUS_MAX_POSITION_PCT"),
    ("trade_execution", "max_gross_exposure", 5, "NEXUS_MAX_GROSS_EXPOSURE"),
    ("trade_execution", "risk_limit", 0.3, "NEXUS_MAX_RISK_LIMIT"),
    ("position_sizing", "risk_limit", 0.3, "NEXUS_MAX_RISK_LIMIT"),
    ("risk_check", "max_position_pct", 0.5, "NEXUS_MAX_POSITION_PCT"),
    ("risk_check", "max_gross_exposure", 3, "NEXUS_MAX_GROSS_EXPOSURE"),
]


@pytest.mark.django_db
@pytest.mark.parametrize(("step_type", "field", "value", "setting"), LOOSER)
def test_create_refuses_a_looser_value_naming_the_field_and_the_ceiling(api_a, step_type, field, value, setting):
    from workflows_app.models import Workflow

    error = assert_error(api_a.post(f"{API}/workflows/", _trader({field: value}, step_type), format="json"),
                         422, "INVALID_DEFINITION")
    fields = _fields(error)
    assert f"steps[1].params.{field}" in fields, fields
    assert setting in fields[f"steps[1].params.{field}"]
    assert not Workflow.objects.filter(name="loose-caps").exists()  # nothing half-stored


@pytest.mark.django_db
def test_update_refuses_loosening_and_keeps_the_version(api_a):
    created = api_a.post(f"{API}/workflows/", _trader({"max_position_pct": 0.05, "risk_limit": 0.01}),
                         format="json")
    assert created.status_code == 201, created.content  # tightening is fine
    wid = created.json()["workflow_id"]
    error = assert_error(api_a.post(f"{API}/workflows/{wid}/update/", {"updates": {
        "steps[1].params.max_position_pct": 0.9}}, format="json"), 422)
    assert "NEXUS_MAX_POSITION_PCT" in str(error)
    assert "steps[1].params.max_position_pct" in str(error["details"])
    detail = api_a.get(f"{API}/workflows/{wid}/").json()
    assert detail["version"] == 1


@pytest.mark.django_db
def test_the_ceiling_follows_the_settings(settings):
    model = registry.get_step_type("trade_execution").params_model
    model.model_validate({"max_position_pct": 0.08})
    settings.NEXUS_MAX_POSITION_PCT = 0.05
    with pytest.raises(ValueError, match="NEXUS_MAX_POSITION_PCT=0.05"):
        model.model_validate({"max_position_pct": 0.08})
    settings.NEXUS_MAX_RISK_LIMIT = 0.01
    with pytest.raises(ValueError, match="NEXUS_MAX_RISK_LIMIT"):
        model.model_validate({"risk_limit": 0.02})


@pytest.mark.django_db
def test_sizing_applies_the_ceiling_even_to_params_that_skipped_validation():
    """Defence in depth: params built without validation (an old version, a bug) still cannot
    raise the cap; the order stays within NEXUS_MAX_POSITION_PCT of equity."""
    ctx = make_ctx("trade_execution", input_data={"symbols": ["AAPL"]})
    ctx.params = TradeParams.model_construct(**{**TradeParams().model_dump(), "signal": "BUY", "risk_limit": 0.5,
                                                "max_position_pct": 1.0, "max_gross_exposure": 10.0,
                                                "stop_loss_pct": 0.01})
    out = trade_execution(ctx)
    order = Order.objects.get(client_order_id=out["client_order_id"])
    equity = PaperBroker().get_account()["equity"]
    value = float(order.filled_qty) * float(order.filled_avg_price)
    assert order.status == "filled"
    assert value <= 0.10 * equity * 1.001, (value, equity)
    assert "max_position_pct" in out["sizing"]["capped_by"]


@pytest.mark.django_db
def test_broker_refuses_an_order_above_the_cap_whoever_sized_it():
    """The final check in the order path: a raw order worth ~50 % of equity is refused (recorded
    by the risk governor as a refused decision, error class risk_limit_breach); a reducing order always passes."""
    broker = PaperBroker(market_data=get_market_data(True))
    price = float(broker.market_data.latest_price("MSFT"))
    equity = broker.get_account()["equity"]
    qty = int(0.5 * equity / price)
    with pytest.raises(PermanentStepError) as err:
        broker.submit_order(OrderRequest(symbol="MSFT", side="buy", qty=qty, client_order_id="cap-big"))
    assert err.value.error_class == "risk_limit_breach"
    assert not Order.objects.filter(client_order_id="cap-big").exists()  # refused before the broker saw it
    assert RiskEvent.objects.get(client_order_id="cap-big").decision == "refused"
    small = int(0.06 * equity / price)
    assert broker.submit_order(OrderRequest(symbol="MSFT", side="buy", qty=small,
                                            client_order_id="cap-ok"))["status"] == "filled"
    # a second order that would take the position past 10 % is refused; selling some is fine
    with pytest.raises(Exception) as err2:
        broker.submit_order(OrderRequest(symbol="MSFT", side="buy", qty=small, client_order_id="cap-stack"))
    assert getattr(err2.value, "error_class", None) == "risk_limit_breach"
    assert broker.submit_order(OrderRequest(symbol="MSFT", side="sell", qty=1,
                                            client_order_id="cap-reduce"))["status"] == "filled"


@pytest.mark.django_db
def test_saga_place_order_is_capped_too():
    """place_order (qty given by the definition) goes through the same final check."""
    qty = int(0.6 * 100_000 / float(get_market_data(True).latest_price("NVDA")))  # 60 % of the account
    with pytest.raises(PermanentStepError) as err:
        registry.get_step_type("place_order").handler(make_ctx("place_order", {"symbol": "NVDA", "qty": qty}))
    assert err.value.error_class == "risk_limit_breach"


@pytest.mark.django_db
def test_risk_check_reports_against_the_ceiling_not_a_looser_request():
    ctx = make_ctx("risk_check")
    ctx.params = type(ctx.params).model_construct(**{**ctx.params.model_dump(), "max_position_pct": 1.0})
    broker = PaperBroker(market_data=get_market_data(True))
    price = float(broker.market_data.latest_price("AAPL"))
    broker.submit_order(OrderRequest(symbol="AAPL", side="buy", qty=int(0.09 * 100_000 / price),
                                     client_order_id="rc-1"))
    out = registry.get_step_type("risk_check").handler(ctx)
    assert out["limits"]["max_position_pct"] == 0.10
