import uuid

import pytest

from tests.trading_app.helpers import bullish_aapl, make_ctx, run_step
from trading_app.killswitch import set_kill_switch
from trading_app.models import FundsReservation, NewsItem, Notification, Order, PaperAccount, PortfolioEntry
from trading_app.providers import simulated
from trading_app.steps import actions, analysis, notifications, orders, protection, saga
from workflows_app.errors import PermanentStepError, TransientStepError
from workflows_app.registry import registry

BROKER_STEPS = {"trade_execution", "risk_check", "hedge", "stop_loss_management", "position_sizing", "reserve_funds",
                "release_funds", "place_order", "cancel_order", "update_portfolio", "revert_portfolio",
                "immediate_hedge", "trade"}
ACTIONS = {"immediate_hedge", "alert_user", "analyze", "queue_for_execution", "trade"}


def test_every_step_type_registered_with_defaults_and_queue():
    declared_here = (analysis, orders, protection, saga, notifications, actions)
    for name in [declared.name for module in declared_here for declared in module.STEP_TYPES]:
        st = registry.get_step_type(name)
        assert st is not None, name
        st.params_model.model_validate({})  # a step with no params validates
        assert st.queue == ("trading" if name in BROKER_STEPS else "workflows"), name
        assert st.action == (name in ACTIONS), name
        with pytest.raises(Exception):  # noqa: B017 - extra fields are refused
            st.params_model.model_validate({"no_such_param": 1})
    for counter in ("trades_executed", "provider_cache_hits", "provider_cache_misses"):
        assert counter in registry.counters


def test_params_validation_names_the_field():
    from pydantic import ValidationError

    with pytest.raises(ValidationError) as err:
        registry.get_step_type("signal_generation").params_model.model_validate({"threshold": 2})
    assert err.value.errors()[0]["loc"] == ("threshold",)
    with pytest.raises(ValidationError):
        registry.get_step_type("technical_analysis").params_model.model_validate({"indicators": ["FOO"]})
    with pytest.raises(ValidationError):
        registry.get_step_type("news_analysis").params_model.model_validate({"symbols": ["AAPL1"]})


PINNED_NOW = "2025-09-17T17:00:00Z"  # the simulator's clock for these tests (a Wednesday, market open)


@pytest.fixture(autouse=True)
def _pinned_clock(settings):
    settings.NEXUS_SIM_NOW = PINNED_NOW


def spec_chain(input_data, execution_id=None):
    execution_id = execution_id or str(uuid.uuid4())
    context = dict(input_data)
    outputs = {}
    for name, stype, params in [("analyze_news", "news_analysis", {"symbols": ["AAPL", "MSFT"]}),
                                ("market_analysis", "technical_analysis", {"indicators": ["RSI", "MACD"]}),
                                ("generate_signals", "signal_generation", {"threshold": 0.7}),
                                ("execute_trades", "trade_execution", {"risk_limit": 0.02})]:
        out = run_step(stype, params, context=context, input_data=input_data, execution_id=execution_id,
                       step_name=name, test_mode=input_data.get("test_mode", False))
        outputs[name] = out
        context[name] = out
        context.update(out)
    return outputs, execution_id


@pytest.mark.django_db
def test_specification_chain_buys_and_is_idempotent():
    bullish_aapl()
    outs, exec_id = spec_chain({"symbols": ["AAPL"], "test_mode": True})
    news = outs["analyze_news"]
    assert -1 <= news["sentiment"] <= 1 and news["articles"] and set(news["by_symbol"]) == {"AAPL"}
    # input_data.symbols narrows the news step's AAPL+MSFT (README "Symbol scope")
    assert news["symbol_scope"]["source"] == "input_data" and news["symbol_scope"]["listed"] == ["AAPL", "MSFT"]
    assert news["by_symbol"]["AAPL"]["sentiment"] > 0.25
    assert NewsItem.objects.exists()
    tech = outs["market_analysis"]
    assert isinstance(tech["rsi"], float) and tech["macd"] in ("bullish", "bearish")
    assert tech["macd_detail"]["line"] is not None and tech["by_symbol"]["AAPL"]["bars"] >= 250
    sig = outs["generate_signals"]
    assert sig["signal"] == "BUY" and sig["confidence"] >= 0.7 and sig["symbol"] == "AAPL"
    trade = outs["execute_trades"]
    assert trade["status"] == "filled" and trade["side"] == "buy" and trade["qty"] > 0
    for key in ("order_id", "client_order_id", "filled_avg_price", "symbol"):
        assert trade[key]
    assert trade["client_order_id"].startswith("nexus-")
    sizing = trade["sizing"]
    assert sizing["max_loss"] <= 0.02 * 100_000 + 1e-6
    # a retry / redelivery of the step places nothing new
    again, _ = spec_chain({"symbols": ["AAPL"], "test_mode": True}, execution_id=exec_id)
    assert again["execute_trades"]["order_id"] == trade["order_id"]
    assert Order.objects.filter(parent__isnull=True).count() == 1
    assert registry.counters["trades_executed"](None) == 1


@pytest.mark.django_db
def test_hold_places_no_order():
    out = run_step("trade_execution", {}, context={"signal": "HOLD", "confidence": 0.3, "symbol": "AAPL"},
                   input_data={"symbols": ["AAPL"]})
    assert out["status"] == "skipped" and out["order_id"] is None and "HOLD" in out["reason"]
    assert not Order.objects.exists()


@pytest.mark.django_db
def test_sell_without_position_is_skipped_honestly():
    out = run_step("trade_execution", {"signal": "SELL"}, input_data={"symbols": ["AAPL"]})
    assert out["status"] == "skipped" and "shorting is disabled" in out["reason"]


@pytest.mark.django_db
def test_invalid_symbol_fails_permanently():
    with pytest.raises(PermanentStepError) as err:
        run_step("technical_analysis", {"symbols": ["ZZZZ"]})
    assert err.value.error_class == "invalid_symbol"


@pytest.mark.django_db
def test_kill_switch_blocks_every_order_path():
    bullish_aapl()
    run_step("place_order", {"symbol": "MSFT", "qty": 5})  # a position (without stops) to hedge / protect
    set_kill_switch(True, "test")
    blocked = [
        ("trade_execution", {"signal": "BUY"}, {}),
        ("hedge", {}, {}),
        ("immediate_hedge", {}, {}),
        ("place_order", {"qty": 1}, {}),
        ("reserve_funds", {}, {}),
        ("trade", {}, {"signal": "BUY", "symbol": "AAPL"}),
        ("stop_loss_management", {"symbols": ["MSFT"], "symbols_mode": "fixed"}, {}),  # input_data narrows otherwise
    ]
    before = Order.objects.count()
    for stype, params, context in blocked:
        with pytest.raises(PermanentStepError, match="kill switch") as err:
            run_step(stype, params, context=context, input_data={"symbols": ["AAPL"]})
        assert err.value.error_class == "kill_switch", stype
    assert Order.objects.count() == before
    set_kill_switch(False)


@pytest.mark.django_db
def test_market_scan_feeds_symbols():
    out = run_step("market_scan", {"top_n": 3})
    assert len(out["symbols"]) == 3 and out["scanned"] == 20
    assert all({"symbol", "rsi", "change_20d", "volume_ratio"} <= set(c) for c in out["candidates"])


@pytest.mark.django_db
def test_risk_check_hedge_stop_loss_and_sizing():
    run_step("trade_execution", {"signal": "BUY", "risk_limit": 0.05},
             input_data={"symbols": ["AAPL"]})
    rc = run_step("risk_check", {"max_position_pct": 0.01})
    assert rc["status"] == "breach" and rc["breaches"][0]["limit"] == "max_position_pct"
    with pytest.raises(PermanentStepError) as err:
        run_step("risk_check", {"max_position_pct": 0.01, "fail_on_breach": True})
    assert err.value.error_class == "risk_limit_breach"
    sl = run_step("stop_loss_management", {"mode": "adjust", "stop_loss_pct": 0.01})
    assert sl["actions"][0]["action"] == "adjusted"
    tr = run_step("stop_loss_management", {"mode": "trail"})
    assert tr["actions"][0]["action"] == "trailing"
    ps = run_step("position_sizing", {"symbols": ["MSFT"]})
    assert ps["qty"] >= 0 and ps["max_loss"] <= 0.02 * ps["equity"] + 1e-6
    h = run_step("hedge", {"hedge_ratio": 0.5})
    assert h["status"] == "hedged" and h["orders"][0]["symbol"] == "SH"


@pytest.mark.django_db
def test_saga_steps_and_compensations():
    exec_id = str(uuid.uuid4())
    kw = {"execution_id": exec_id, "input_data": {"symbols": ["AAPL"]}}
    res = run_step("reserve_funds", {"amount": 5000}, step_name="reserve_funds", **kw)
    assert res["reserved"] and PaperAccount.objects.get().reserved_cash == 5000
    again = run_step("reserve_funds", {"amount": 5000}, step_name="reserve_funds", **kw)
    assert again["duplicate"] and PaperAccount.objects.get().reserved_cash == 5000
    order = run_step("place_order", {}, step_name="place_order", **kw)
    assert order["status"] == "filled" and order["reservation_consumed"]
    assert PaperAccount.objects.get().reserved_cash == 0
    ctx = {**order, "place_order": order}
    up = run_step("update_portfolio", {}, step_name="update_portfolio", context=ctx, **kw)
    assert up["qty_delta"] == order["qty"] and up["snapshot"]["equity"] > 0
    note = run_step("send_notification", {}, step_name="send_notification", context=ctx, **kw)
    assert note["sent"] and Notification.objects.filter(kind="notification").count() == 1
    # compensate in reverse order
    alert = run_step("send_failure_alert", step_name="send_notification", compensating=note, **kw)
    assert alert["kind"] == "failure_alert"
    rev = run_step("revert_portfolio", step_name="update_portfolio", compensating=up, **kw)
    assert rev["reverted"] and PortfolioEntry.objects.get().status == "reverted"
    cancel = run_step("cancel_order", step_name="place_order", compensating=order, **kw)
    assert cancel["action"] == "flattened"
    assert Order.objects.get(client_order_id=order["client_order_id"]).status == "filled"
    from trading_app.models import Position

    assert Position.objects.get(symbol="AAPL").qty == 0
    # compensations are idempotent
    assert run_step("cancel_order", step_name="place_order", compensating=order, **kw)["offset_order_id"] == \
        cancel["offset_order_id"]
    rel = run_step("release_funds", step_name="reserve_funds", compensating=res, **kw)
    assert rel["released"] is False and "consumed" in rel["reason"]


@pytest.mark.django_db
def test_release_funds_gives_cash_back():
    exec_id = str(uuid.uuid4())
    res = run_step("reserve_funds", {"pct_of_equity": 0.1}, execution_id=exec_id, step_name="reserve_funds")
    assert PaperAccount.objects.get().reserved_cash == 10_000
    rel = run_step("release_funds", execution_id=exec_id, step_name="reserve_funds", compensating=res)
    assert rel["released"] and PaperAccount.objects.get().reserved_cash == 0
    assert FundsReservation.objects.get().status == "released"


@pytest.mark.django_db
def test_actions_with_default_params():
    bullish_aapl()
    ctx = {"symbols": ["AAPL"], "category": "urgent"}
    a = run_step("analyze", context=ctx)
    assert a["signal"] in ("BUY", "SELL", "HOLD") and "rsi" in a and "sentiment" in a
    alert = run_step("alert_user", context=ctx)
    assert alert["sent"] and alert["kind"] == "alert"
    t = run_step("trade", context=ctx)
    assert t["status"] in ("filled", "skipped")
    h = run_step("immediate_hedge", context=ctx)
    assert h["status"] in ("hedged", "skipped")


@pytest.mark.django_db
def test_test_mode_forces_offline_providers(settings):
    settings.NEXUS_BROKER = "alpaca"
    settings.NEXUS_MARKET_DATA_PROVIDER = "alpaca"
    settings.NEXUS_NEWS_PROVIDER = "newsapi"
    settings.APCA_API_KEY_ID = "key"
    settings.APCA_API_SECRET_KEY = "secret"
    settings.NEWSAPI_KEY = "news"
    out = run_step("news_analysis", {}, test_mode=True)
    assert out["provider"] == "simulated"
    assert run_step("technical_analysis", {}, test_mode=True)["provider"] == "simulated"
    bullish_aapl()
    trade = run_step("trade_execution", {"signal": "BUY"}, test_mode=True)
    assert trade["broker"] == "paper" and trade["test_mode"] is True


def test_make_ctx_idempotency_key_is_stable():
    ctx = make_ctx("trade_execution", execution_id="e1", step_name="s")
    from trading_app.brokers import client_order_id_for

    assert client_order_id_for(ctx.idempotency_key, "AAPL") == client_order_id_for("e1:s", "AAPL")
    long = client_order_id_for("x" * 200, "AAPL")
    assert len(long) <= 48 and long == client_order_id_for("x" * 200, "AAPL")


@pytest.mark.django_db
def test_queue_for_execution_sends_the_signal_once(monkeypatch):
    """Through operations.queue_send (faked here: the engine's queue tests own the real Redis streams)."""
    from workflows_app import operations
    from workflows_app.errors import OperationError

    sent = {}

    def fake_send(*, queue_name, message, deduplication_id, message_group_id, **kw):
        dup = deduplication_id in sent
        sent.setdefault(deduplication_id, (queue_name, message, message_group_id))
        return {"success": True, "message_id": "1-0", "deduplicated": dup}

    monkeypatch.setattr(operations, "queue_send", fake_send, raising=False)
    ctx = {"signal": "BUY", "confidence": 0.8, "symbol": "AAPL"}
    first = run_step("queue_for_execution", context=ctx, execution_id="e-q", step_name="normal_handler")
    assert first["queued"] and first["queue"] == "trading-signals" and first["message"]["signal"] == "BUY"
    again = run_step("queue_for_execution", context=ctx, execution_id="e-q", step_name="normal_handler")
    assert again["deduplicated"] is True and len(sent) == 1
    queue, message, group = next(iter(sent.values()))
    assert queue == "trading-signals" and group == "AAPL" and message["execution_id"] == "e-q"

    def full(**kw):
        raise OperationError("QUEUE_FULL", "full")

    monkeypatch.setattr(operations, "queue_send", full)
    with pytest.raises(TransientStepError) as err:
        run_step("queue_for_execution", context=ctx)
    assert err.value.error_class == "queue_full"


@pytest.mark.django_db
def test_multi_symbol_chain_respects_exposure_caps(settings):
    """Exercise 1: ten symbols through the chain; every order within risk_limit and the exposure caps."""
    settings.NEXUS_MAX_POSITION_PCT = 0.08
    settings.NEXUS_MAX_GROSS_EXPOSURE = 0.3
    symbols = ["AAPL", "MSFT", "GOOGL", "AMZN", "NVDA", "META", "TSLA", "JPM", "V", "XOM"]
    for sym in symbols:
        simulated.inject_headline(f"{sym} beats estimates, shares surge, analysts bullish", [sym])
        simulated.inject_jump(sym, 0.06)
    context = {"symbols": symbols}
    for stype, params in [("news_analysis", {}), ("technical_analysis", {}), ("signal_generation", {"threshold": 0.5}),
                          ("trade_execution", {"risk_limit": 0.02})]:
        out = run_step(stype, params, context=context, input_data={"symbols": symbols}, step_name=stype,
                       execution_id="multi")
        context[stype] = out
        context.update(out)
    trade = context["trade_execution"]
    assert len(trade["orders"]) + len(trade["skipped"]) == 10
    assert trade["orders"], trade["skipped"]
    equity = 100_000
    gross = 0.0
    for order in trade["orders"]:
        value = order["qty"] * order["filled_avg_price"]
        gross += value
        assert value <= 0.08 * equity + 1e-6
        assert order["sizing"]["max_loss"] <= 0.02 * equity + 1e-6
    assert gross <= 0.3 * equity * 1.01  # marks move between orders; the cap is enforced at each order
    assert any("max_gross_exposure" in (s.get("sizing") or {}).get("capped_by", []) for s in trade["skipped"]) or \
        any("max_gross_exposure" in o["sizing"]["capped_by"] for o in trade["orders"])


@pytest.mark.django_db
def test_notification_templates_fill_from_context():
    ctx = {"signal": "BUY", "confidence": 0.81, "generate_signals": {"symbol": "AAPL"}, "obj": {"a": 1}}
    out = run_step("send_notification", {"subject": "{generate_signals.symbol} signal",
                                         "message": "signal {signal}, confidence {confidence} {missing} "
                                                    "{signal.__class__} {obj}"}, context=ctx)
    assert out["subject"] == "AAPL signal"
    assert out["body"]["message"] == "signal BUY, confidence 0.81 {missing} {signal.__class__} {obj}"
    alert = run_step("alert_user", {"message": "urgent: {signal}"}, context=ctx)
    assert alert["subject"] == "urgent: BUY"
