"""Trading operations: one function per trading face (REST ``/api/v1/trading/...``, MCP, CLI).

Each returns a JSON-serialisable dict with ``success: true`` or raises ``OperationError``; the
faces add no logic. Every read is of one broker account the caller may see (``trading_app.accounts``):
their own paper account by default; staff may name any account.
"""
from __future__ import annotations

from trading_app import accounts, conf, risk
from trading_app.models import Order
from workflows_app.errors import OperationError, StepError


def _broker(acct):
    try:
        return accounts.broker_for_account(acct)
    except (StepError, ValueError) as exc:
        raise OperationError("BROKER_UNAVAILABLE", str(exc), {"broker": acct.broker}) from exc


def _call(fn, *args, **kwargs):
    try:
        return fn(*args, **kwargs)
    except StepError as exc:
        raise OperationError("BROKER_UNAVAILABLE", str(exc), {"error_class": exc.error_class}) from exc


def _no_extra(extra: dict) -> None:
    if extra:
        name = sorted(extra)[0]
        raise OperationError("INVALID_INPUT_DATA", f"unknown argument {name!r}", {"field": name})


def trading_accounts(*, user=None, **extra) -> dict:
    """The accounts ``user`` may see (their own, created on first look; every account for staff)."""
    _no_extra(extra)
    rows = [accounts.describe(a) for a in accounts.visible_accounts(user).order_by("name")]
    return {"success": True, "accounts": rows, "count": len(rows)}


def trading_account(*, account=None, user=None, **extra) -> dict:
    """One account (default: the caller's own; the house account for the CLI), its exposure and caps."""
    _no_extra(extra)
    acct = accounts.account_for_user(user, account)
    broker = _broker(acct)
    data = _call(broker.get_account, mark=True) if broker.name == "paper" else _call(broker.get_account)
    positions = _call(broker.get_positions)
    exposure = risk.exposure_report(data, positions, account_limits=acct)
    return {"success": True, "account": {**data, "account": acct.name, **accounts.describe(acct)},
            "exposure": {k: exposure[k] for k in ("gross_exposure", "net_exposure", "breaches", "limits")},
            "mode": conf.trading_mode()}


def trading_positions(*, account=None, user=None, **extra) -> dict:
    _no_extra(extra)
    acct = accounts.account_for_user(user, account)
    broker = _broker(acct)
    if broker.name == "paper":
        _call(broker.mark_to_market)
    positions = _call(broker.get_positions)
    return {"success": True, "positions": positions, "count": len(positions), "broker": broker.name,
            "account": acct.name}


def trading_orders(*, status=None, symbol=None, execution_id=None, account=None, limit=50, offset=0, user=None,
                   **extra) -> dict:
    """Orders of the accounts ``user`` may see, newest first (``account`` narrows to one of them)."""
    _no_extra(extra)
    try:
        limit = max(1, min(int(limit), 500))
        offset = max(0, int(offset))
    except (TypeError, ValueError):
        raise OperationError("INVALID_INPUT_DATA", "limit and offset must be integers", {"field": "limit"}) from None
    qs = Order.objects.all()
    if account:
        qs = qs.filter(account=accounts.account_for_user(user, account))
    elif user is not None and not getattr(user, "is_staff", False):
        qs = qs.filter(account__in=accounts.visible_accounts(user))
    if status:
        if status == "open":
            qs = qs.filter(status__in=Order.OPEN_STATUSES)
        elif status in dict(Order.Status.choices):
            qs = qs.filter(status=status)
        else:
            raise OperationError("INVALID_INPUT_DATA", f"unknown status {status!r}", {"field": "status"})
    if symbol:
        qs = qs.filter(symbol=str(symbol).upper()[:16])
    if execution_id:
        qs = qs.filter(execution_id=str(execution_id)[:64])
    total = qs.count()
    orders = [{**o.as_dict(), "account": o.account.name if o.account_id else None}
              for o in qs.select_related("account").order_by("-created_at")[offset:offset + limit]]
    return {"success": True, "orders": orders, "count": len(orders), "total": total}


def kill_switch_status(*, account=None, user=None, **extra) -> dict:
    """The global kill switch; with ``account``, also that account's own switch (if visible)."""
    _no_extra(extra)
    reply = {"success": True, "kill_switch": risk.kill_switch_state()}
    if account is not None:
        acct = accounts.account_for_user(user, account)
        reply["account_kill_switch"] = {"account": acct.name, "halted": acct.halted, "reason": acct.halt_reason}
    return reply


def kill_switch_set(*, active=None, reason="", account=None, user=None, **extra) -> dict:
    """Switch the global kill switch (staff only: every new order refused at once) or, with
    ``account``, that account's own switch (its owners or staff) on or off."""
    _no_extra(extra)
    if account is None and user is not None and not getattr(user, "is_staff", False):
        raise OperationError("PERMISSION_DENIED", "only staff may change the kill switch", {"field": "active"})
    if not isinstance(active, bool):
        raise OperationError("INVALID_INPUT_DATA", "active must be true or false", {"field": "active"})
    if not isinstance(reason, str) or len(reason) > 300:
        raise OperationError("INVALID_INPUT_DATA", "reason must be a string of at most 300 characters",
                             {"field": "reason"})
    if account is not None:
        acct = accounts.account_for_user(user, account)
        return {"success": True, "kill_switch": risk.kill_switch_state(),
                "account_kill_switch": risk.set_account_halt(acct, active, reason)}
    state = risk.set_kill_switch(active, reason, by=getattr(user, "username", "") or "")
    return {"success": True, "kill_switch": state}


def trading_kill_switch(*, active=None, reason=None, account=None, user=None, **extra) -> dict:
    """Read (no ``active``) or set the kill switch, as ``kill_switch_status`` / ``kill_switch_set``
    (one tool for the MCP face; the same permission rules)."""
    if active is None:
        if reason is not None:
            raise OperationError("INVALID_INPUT_DATA", "reason is given only with active", {"field": "active"})
        return kill_switch_status(account=account, user=user, **extra)
    return kill_switch_set(active=active, reason="" if reason is None else reason, account=account, user=user,
                           **extra)
