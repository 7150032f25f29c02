"""The one place every order passes: ``submit`` (called by ``brokers.Broker.submit_order``, which no
broker may override), for every workflow, step type and broker, per broker account.

In one transaction with the account's ``RiskState`` row locked (``select_for_update``: two workers
ordering at once are judged one after the other, each seeing the other's order), it takes a reading
from the broker, judges it (``evaluate``), latches a confirmed breach, records the decision, and only
then lets the broker place the order. A refusal raises ``RiskRejected`` (error_class
``risk_limit_breach``: permanent, dead-lettered, never retried into a second order).
"""
from __future__ import annotations

from django.db import transaction
from django.utils import timezone

from trading_app import conf
from trading_app.brokers import BrokerRejected, OrderRequest, RiskRejected
from trading_app.governor import evaluate, limits, records
from trading_app.governor.models import RiskState
from trading_app.killswitch import ensure_trading_allowed

LOSS_LIMITS = ("daily_loss", "drawdown")


def lock_state(account) -> RiskState:
    """The account's risk row, created on first use and locked until the transaction ends. The
    account row is locked first: the order every path takes (a hedge holds it, then orders; the
    paper broker locks it again inside), so two orders never wait on each other's lock (deadlock)."""
    from trading_app.models import BrokerAccount

    RiskState.objects.get_or_create(account=account)
    BrokerAccount.objects.select_for_update().filter(pk=account.pk).first()
    return RiskState.objects.select_for_update().get(account=account)


def exchange_date(now=None):
    """The trading day of `now` (the broker's clock: a backtest's simulated one) in the exchange's zone."""
    from zoneinfo import ZoneInfo

    return (now or timezone.now()).astimezone(ZoneInfo(str(conf.get("NEXUS_RISK_TIMEZONE")))).date()


def observe(state: RiskState, account, reading: evaluate.Reading, execution_id: str = "", now=None) -> tuple:
    """Judge one reading on a locked state: roll the trading day, update peak and streaks, latch
    confirmed breaches, emit warnings. Returns (limits, usage or None, blocking breaches)."""
    lim = limits.effective(account, state)
    if reading.problems or not evaluate.sane(reading.equity):
        return lim, None, []
    now = now or timezone.now()
    today = exchange_date(now)
    if state.day != today:  # the first valid reading of the exchange's day is its opening equity
        state.day, state.day_open_equity = today, reading.equity
    used, confirmed, unconfirmed = evaluate.judge_reading(state, lim, reading,
                                                          max(1, int(conf.get("NEXUS_RISK_CONFIRM_READINGS"))))
    new, latched = evaluate.latch_for(lim, confirmed, state.state)
    for name, action, reason in latched:
        records.breach(account, state, name, action, reason, execution_id)
    if new != state.state:
        name, _, reason = next(item for item in latched if item[1] == new)
        state.state, state.since, state.breached_limit, state.reason = new, now, name, reason[:300]
    for name, value, top in evaluate.warnings_for(lim, used, float(conf.get("NEXUS_RISK_WARN_AT"))):
        if (state.warned or {}).get(name) != today.isoformat():
            state.warned = {**(state.warned or {}), name: today.isoformat()}
            records.announce_warning(account, state, name, value, top, execution_id)
    # an exposure limit whose breach only refuses is judged per order (the projection); the others
    # block what adds exposure while a breach waits for confirmation, and a loss past its "refuse" limit
    blocking = [(n, v) for n, v in unconfirmed if lim[n].action != "refuse"] + \
        [(n, v) for n, v in unconfirmed + confirmed if n in LOSS_LIMITS and lim[n].action == "refuse"]
    return lim, used, blocking


def _recent(state: RiskState, now: float) -> list[float]:
    return [t for t in (state.order_times or []) if now - float(t) < 60.0]


def decide(state: RiskState, account, reading: evaluate.Reading, req: OrderRequest,
           at=None) -> evaluate.Decision:
    """`at`: the broker's clock (a backtest's simulated time), else now."""
    at = at or timezone.now()
    lim, used, blocking = observe(state, account, reading, req.execution_id, at)
    if used is None:
        problems = "; ".join(reading.problems) or f"equity reading {reading.equity!r} is not a positive number"
        return evaluate.Decision("refused", req.qty, f"cannot judge the order: {problems}", "data")
    if not evaluate.sane(reading.price):
        return evaluate.Decision("refused", req.qty, f"cannot judge the order: no valid price for {req.symbol} "
                                                     f"({reading.price!r})", "data")
    now = at.timestamp()
    recent = _recent(state, now)
    decision = evaluate.order_checks(state.state, lim, reading, req, len(recent), blocking)
    action = lim[decision.limit].action if decision.limit in lim else "refuse"
    if decision.decision == "refused" and decision.limit in ("order_rate", "order_notional") and action != "refuse":
        if evaluate.STATE_RANK[action] > evaluate.STATE_RANK[state.state]:
            records.breach(account, state, decision.limit, action, decision.reason, req.execution_id)
            state.state, state.since = action, at
            state.breached_limit, state.reason = decision.limit, decision.reason[:300]
    if decision.decision != "refused":
        state.order_times = [*recent, now][-int(lim["order_rate"].value + 1):]
        notional = float(decision.qty) * reading.price
        for name, value in (("order_notional", notional), ("order_rate", len(recent) + 1)):
            if value >= float(conf.get("NEXUS_RISK_WARN_AT")) * lim[name].value \
                    and (state.warned or {}).get(name) != exchange_date(at).isoformat():
                state.warned = {**(state.warned or {}), name: exchange_date(at).isoformat()}
                records.announce_warning(account, state, name, value, lim[name].value, req.execution_id)
    return decision


def submit(broker, req: OrderRequest) -> dict:
    """Judge ``req`` for ``broker``'s account, then place it (``broker._place``) or refuse it."""
    account = broker.governed_account()
    ensure_trading_allowed(account)  # the kill switches stop everything before any judgement
    outcome: Exception | None = None
    with transaction.atomic():
        state = lock_state(account)
        decision = decide(state, account, broker.risk_reading(req.symbol), req, broker.now())
        state.save()
        records.decision(account, state, req, decision)
        if decision.decision == "refused":
            outcome = RiskRejected(f"risk governor refused the order: {decision.reason}",
                                   {"symbol": req.symbol, "side": req.side, "qty": req.qty,
                                    "client_order_id": req.client_order_id, "limit": decision.limit,
                                    "state": state.state})
        else:
            req.qty = decision.qty
            try:
                result = broker._place(req)
            except BrokerRejected as exc:  # the broker's own refusal: its records stay, the decision too
                outcome = exc
    if outcome is not None:
        raise outcome
    return result
