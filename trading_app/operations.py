"""Trading operations: one function per trading face (REST ``/api/v1/trading/...``, MCP, CLI).

Each returns a JSON-serialisable dict with ``success: true`` or raises ``OperationError``; the
faces add no logic. Reads go through the configured broker (paper by default).
"""
from __future__ import annotations

from trading_app import conf, risk
from trading_app.models import Order
from trading_app.providers import get_broker
from workflows_app.errors import OperationError, StepError


def _broker():
    try:
        return get_broker()
    except (StepError, ValueError) as exc:
        raise OperationError("BROKER_UNAVAILABLE", str(exc), {"broker": conf.provider_name("broker")}) from exc


def _call(fn, *args, **kwargs):
    try:
        return fn(*args, **kwargs)
    except StepError as exc:
        raise OperationError("BROKER_UNAVAILABLE", str(exc), {"error_class": exc.error_class}) from exc


def _no_extra(extra: dict) -> None:
    if extra:
        name = sorted(extra)[0]
        raise OperationError("INVALID_INPUT_DATA", f"unknown argument {name!r}", {"field": name})


def trading_account(*, user=None, **extra) -> dict:
    _no_extra(extra)
    broker = _broker()
    account = _call(broker.get_account, mark=True) if broker.name == "paper" else _call(broker.get_account)
    positions = _call(broker.get_positions)
    exposure = risk.exposure_report(account, positions)
    return {"success": True, "account": account, "exposure": {k: exposure[k] for k in (
        "gross_exposure", "net_exposure", "breaches", "limits")}, "mode": conf.trading_mode()}


def trading_positions(*, user=None, **extra) -> dict:
    _no_extra(extra)
    broker = _broker()
    if broker.name == "paper":
        _call(broker.mark_to_market)
    positions = _call(broker.get_positions)
    return {"success": True, "positions": positions, "count": len(positions), "broker": broker.name}


def trading_orders(*, status=None, symbol=None, execution_id=None, limit=50, offset=0, user=None, **extra) -> dict:
    _no_extra(extra)
    try:
        limit = max(1, min(int(limit), 500))
        offset = max(0, int(offset))
    except (TypeError, ValueError):
        raise OperationError("INVALID_INPUT_DATA", "limit and offset must be integers", {"field": "limit"}) from None
    qs = Order.objects.all()
    if user is not None and not getattr(user, "is_staff", False):
        # A trader sees the orders of their own executions only.
        from django.db.models import Q

        from workflows_app.models import Execution

        mine = Execution.objects.filter(Q(owner=user) | Q(workflow__owner=user)).values_list("id", flat=True)
        qs = qs.filter(execution_id__in=[str(pk) for pk in mine])
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
    orders = [o.as_dict() for o in qs.order_by("-created_at")[offset:offset + limit]]
    return {"success": True, "orders": orders, "count": len(orders), "total": total}


def kill_switch_status(*, user=None, **extra) -> dict:
    _no_extra(extra)
    return {"success": True, "kill_switch": risk.kill_switch_state()}


def kill_switch_set(*, active=None, reason="", user=None, **extra) -> dict:
    """Switch the kill switch on (every new order refused at once) or off. Staff only."""
    _no_extra(extra)
    if user is not None and not getattr(user, "is_staff", False):
        raise OperationError("PERMISSION_DENIED", "only staff may change the kill switch", {"field": "active"})
    if not isinstance(active, bool):
        raise OperationError("INVALID_INPUT_DATA", "active must be true or false", {"field": "active"})
    if not isinstance(reason, str) or len(reason) > 300:
        raise OperationError("INVALID_INPUT_DATA", "reason must be a string of at most 300 characters",
                             {"field": "reason"})
    state = risk.set_kill_switch(active, reason, by=getattr(user, "username", "") or "")
    return {"success": True, "kill_switch": state}
