"""The governor's faces' core: an account's status with headroom per limit, the audited reset,
the account's own limits (tighten only), and the sweep that takes a reading of every account
(beat: ``nexus.trading.risk_sweep``) so a breach is seen between orders too."""
from __future__ import annotations

import logging
import time

from django.db import transaction
from django.utils import timezone

from trading_app.governor import gate, limits, records
from trading_app.governor.models import RiskState

logger = logging.getLogger("nexus.trading.governor")


def state_of(account) -> RiskState:
    return RiskState.objects.get_or_create(account=account)[0]


def _limit_row(lim, value) -> dict:
    row = {"limit": lim.value, "ceiling": lim.ceiling, "source": lim.source, "on_breach": lim.action,
           "value": None, "used": None, "headroom": None}
    if value is not None:
        row.update(value=round(value, 6), used=round(value / lim.value, 4) if lim.value else None,
                   headroom=round(lim.value - value, 6))
    return row


def status(account) -> dict:
    """State, baselines and, per limit, its value at the last valid reading and the headroom left
    (``order_notional`` is judged per order: no value between orders)."""
    state = state_of(account)
    lim = limits.effective(account, state)
    used = dict((state.last_reading or {}).get("usage") or {})
    used["order_rate"] = float(len(gate._recent(state, time.time())))
    return {
        "account": account.name, "broker": account.broker, "state": state.state, "reason": state.reason or None,
        "breached_limit": state.breached_limit or None, "since": state.since.isoformat() if state.since else None,
        "trading_day": state.day.isoformat() if state.day else None, "day_open_equity": state.day_open_equity,
        "peak_equity": state.peak_equity, "equity": (state.last_reading or {}).get("equity"),
        "streaks": state.streaks or {},
        "limits": {name: _limit_row(lim[name], used.get(name)) for name in limits.LIMITS},
        "last_reset": {"by": state.reset_by, "reason": state.reset_reason,
                       "at": state.reset_at.isoformat()} if state.reset_at else None,
    }


def brief(account) -> dict:
    """The state only, from the database (no broker call): for /health/ and the dashboard."""
    row = RiskState.objects.filter(account=account).values("state", "reason", "breached_limit").first()
    return row or {"state": "active", "reason": "", "breached_limit": ""}


def reset(account, *, by: str, reason: str, rebaseline: bool = False) -> dict:
    """Back to active (streaks cleared), audited with who and why. ``rebaseline``: the day's opening
    equity and the peak restart from the last valid equity (else a loss still past its limit
    latches again on the next confirmed readings)."""
    if not (reason or "").strip():
        raise ValueError("reason: a reset needs a reason")
    with transaction.atomic():
        state = gate.lock_state(account)
        previous = state.state
        state.state, state.reason, state.breached_limit, state.since = "active", "", "", timezone.now()
        state.streaks = {}
        state.reset_by, state.reset_reason, state.reset_at = by[:150], reason[:300], timezone.now()
        equity = (state.last_reading or {}).get("equity")
        if rebaseline and equity:
            state.day_open_equity = state.peak_equity = float(equity)
        state.save()
        records.reset(account, previous, by, reason)
    return {**status(account), "previous_state": previous}


def set_limit(account, field: str, value) -> dict:
    """The account's own value of a limit (None clears it): refused, naming the field, when looser
    than the operator's ceiling."""
    with transaction.atomic():
        state = gate.lock_state(account)
        limits.set_override(account, state, field, value)
    return status(account)


def observe_account(account, broker) -> dict:
    """One reading of ``account`` judged and stored (no order): the sweep and ``risk_status(refresh)``."""
    with transaction.atomic():
        state = gate.lock_state(account)
        reading = broker.risk_reading(None)
        _, used, _ = gate.observe(state, account, reading)
        state.save()
    return {"account": account.name, "state": state.state, "valid": used is not None,
            "problems": reading.problems}


def sweep(broker_for) -> dict:
    """A reading of every account whose broker is reachable; a failing one is reported, not fatal."""
    from trading_app import conf
    from trading_app.models import BrokerAccount

    out = {}
    for account in BrokerAccount.objects.order_by("name"):
        if account.broker == "alpaca" and not conf.has_alpaca_keys():
            continue  # not configured: nothing to read
        try:
            out[account.name] = observe_account(account, broker_for(account))
        except Exception as exc:  # noqa: BLE001 - one account's broker outage must not stop the others
            logger.warning("risk sweep: account %s: %s", account.name, exc)
            out[account.name] = {"account": account.name, "error": str(exc)[:300]}
    return out
