"""Trading operations: one function per trading face (REST ``/api/v1/trading/...``, MCP, CLI).

Trading extends the engine's operation catalogue with these (``@catalogue.operation``), so the MCP
face serves them as tools and the REST views document them from the same argument models. Each
returns a JSON-serialisable dict with ``success: true`` or raises ``OperationError``; the faces add
no logic. Every read is of one broker account the caller may see (``trading_app.accounts``): their
own paper account by default; staff may name any account.
"""
from __future__ import annotations

from pydantic import Field, StrictBool, field_validator

from trading_app import accounts, killswitch, pnl, risk
from trading_app.backtest import service as backtests
from trading_app.backtest.arguments import BacktestArgs
from trading_app.backtest.record import Backtest
from trading_app.governor import limits, service
from trading_app.models import BrokerAccount, Order
from workflows_app.errors import OperationError, StepError
from workflows_app.operations.access import can_see, owner, workflow_for
from workflows_app.operations.catalogue import Permission, catalogue
from workflows_app.operations.fields import Args, Int, NoArgs, refuse

_ACCOUNT = Field(None, max_length=64, description="An account you may see (default: your own).")


class AccountArgs(Args):
    account: str | None = _ACCOUNT


class OrdersArgs(Args):
    status: str | None = Field(None, description="open, new, filled, canceled, rejected, ...")
    symbol: str | None = Field(None, max_length=16)
    execution_id: str | None = Field(None, max_length=64)
    account: str | None = _ACCOUNT
    limit: int = Field(50, ge=1, le=500)
    offset: int = Field(0, ge=0)

    @field_validator("limit", "offset", mode="before")
    @classmethod
    def _clamped(cls, value, info):
        """Out-of-range pages are clamped, not refused (as the REST face always did)."""
        try:
            number = int(value)
        except (TypeError, ValueError):
            raise refuse("must be an integer") from None
        return max(1, min(number, 500)) if info.field_name == "limit" else max(0, number)


class KillSwitchSetArgs(Args):
    active: StrictBool | None = Field(None, description="true: halt (every new order refused); false: resume.")
    reason: str = Field("", max_length=300)
    account: str | None = Field(None, max_length=64, description="An account you may see: its own switch "
                                                                 "(default: the global switch).")


class KillSwitchArgs(KillSwitchSetArgs):
    active: StrictBool | None = Field(None, description="Omit to read the state; true/false to set it (the global "
                                                        "switch: staff only; an account's: its owners or staff).")
    reason: str | None = Field(None, max_length=300)


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


@catalogue.operation(NoArgs, description="The broker accounts you may see.")
def trading_accounts(args: NoArgs, user) -> dict:
    """The accounts ``user`` may see (their own, created on first look; every account for staff)."""
    rows = [accounts.describe(a) for a in accounts.visible_accounts(user).order_by("name")]
    return {"success": True, "accounts": rows, "count": len(rows)}


@catalogue.operation(AccountArgs, description="A broker account (default: your own), its exposure, caps and the "
                                              "trading mode.")
def trading_account(args: AccountArgs, user) -> dict:
    """One account (default: the caller's own; the house account for the CLI), its exposure and caps."""
    acct = accounts.account_for_user(user, args.account)
    broker = _broker(acct)
    data = _call(broker.get_account, mark=True) if broker.name == "paper" else _call(broker.get_account)
    positions = _call(broker.get_positions)
    exposure = risk.exposure_report(data, positions, account_limits=acct)
    return {"success": True, "account": {**data, "account": acct.name, **accounts.describe(acct)},
            "exposure": {k: exposure[k] for k in ("gross_exposure", "net_exposure", "breaches", "limits")},
            "mode": killswitch.trading_mode()}


@catalogue.operation(AccountArgs, description="Open positions of an account (marked to market).")
def trading_positions(args: AccountArgs, user) -> dict:
    acct = accounts.account_for_user(user, args.account)
    broker = _broker(acct)
    if broker.name == "paper":
        _call(broker.mark_to_market)
    positions = _call(broker.get_positions)
    return {"success": True, "positions": positions, "count": len(positions), "broker": broker.name,
            "account": acct.name}


@catalogue.operation(OrdersArgs, description="Orders of the accounts you may see, newest first.")
def trading_orders(args: OrdersArgs, user) -> dict:
    """Orders of the accounts ``user`` may see, newest first (``account`` narrows to one of them)."""
    status, symbol, execution_id, account = args.status, args.symbol, args.execution_id, args.account
    limit, offset = args.limit, args.offset
    qs = Order.objects.all()
    if account:
        qs = qs.filter(account=accounts.account_for_user(user, account))
    elif user is not None and not getattr(user, "is_staff", False):
        qs = qs.filter(account__in=accounts.visible_accounts(user))
    else:
        qs = qs.exclude(account__kind=BrokerAccount.Kind.BACKTEST)  # staff and the CLI: not backtests' orders
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


@catalogue.operation(AccountArgs, tool=False, description="The kill switch state (global; with account, that "
                                                          "account's too).")
def kill_switch_status(args: AccountArgs, user) -> dict:
    """The global kill switch; with ``account``, also that account's own switch (if visible)."""
    reply = {"success": True, "kill_switch": killswitch.kill_switch_state()}
    if args.account is not None:
        acct = accounts.account_for_user(user, args.account)
        reply["account_kill_switch"] = {"account": acct.name, "halted": acct.halted, "reason": acct.halt_reason}
    return reply


@catalogue.operation(KillSwitchSetArgs, tool=False, description="Set the global kill switch (staff only) or an "
                                                                "account's own switch (its owners or staff).")
def kill_switch_set(args: KillSwitchSetArgs, user) -> dict:
    """Switch the global kill switch (staff only: every new order refused at once) or, with
    ``account``, that account's own switch (its owners or staff) on or off."""
    active, reason, account = args.active, args.reason, args.account
    if account is None and user is not None and not getattr(user, "is_staff", False):
        raise OperationError("PERMISSION_DENIED", "only staff may change the kill switch", {"field": "active"})
    if active is None:
        raise OperationError("INVALID_INPUT_DATA", "active must be true or false", {"field": "active"})
    if account is not None:
        acct = accounts.account_for_user(user, account)
        return {"success": True, "kill_switch": killswitch.kill_switch_state(),
                "account_kill_switch": killswitch.set_account_halt(acct, active, reason)}
    state = killswitch.set_kill_switch(active, reason, by=getattr(user, "username", "") or "")
    return {"success": True, "kill_switch": state}


@catalogue.operation(KillSwitchArgs, description="Read the kill switch (global; with account, that account's too) "
                                                 "or set it.")
def trading_kill_switch(args: KillSwitchArgs, user) -> dict:
    """Read (no ``active``) or set the kill switch, as ``kill_switch_status`` / ``kill_switch_set``
    (one tool for the MCP face; the same permission rules)."""
    if args.active is None:
        if args.reason is not None:
            raise OperationError("INVALID_INPUT_DATA", "reason is given only with active", {"field": "active"})
        return kill_switch_status(account=args.account, user=user)
    return kill_switch_set(active=args.active, reason=args.reason or "", account=args.account, user=user)


# --- risk governor (trading_app.governor) ----------------------------------------------------------
class RiskStatusArgs(Args):
    account: str | None = Field(None, max_length=64, description="One account you may see (default: every "
                                                                 "account you may see).")
    refresh: StrictBool = Field(False, description="Take a fresh reading from the broker first.")


class RiskResetArgs(Args):
    account: str = Field(..., min_length=1, max_length=64, description="The account to reset to active.")
    reason: str = Field(..., min_length=1, max_length=300, description="Why (audited with who).")
    rebaseline: StrictBool = Field(False, description="Restart the day's opening equity and the peak from the "
                                                      "last equity (else a loss still past its limit latches again).")


class RiskLimitArgs(Args):
    account: str = Field(..., min_length=1, max_length=64)
    field: str = Field(..., max_length=32, description="max_daily_loss, max_drawdown, max_net_exposure, "
                                                       "max_order_notional, max_orders_per_minute, "
                                                       "max_gross_exposure, max_position_pct")
    value: float | None = Field(None, description="The account's own limit (at most the operator's ceiling); "
                                                  "null clears it.")


@catalogue.operation(RiskStatusArgs, description="The risk governor per account: state (active, reduce_only, "
                                                 "halted) and headroom per limit.")
def risk_status(args: RiskStatusArgs, user) -> dict:
    """Each visible account's governor state and, per limit, its value, limit and headroom."""
    accts = [accounts.account_for_user(user, args.account)] if args.account else \
        list(accounts.visible_accounts(user).order_by("name")[:200])  # bounded reply
    if args.refresh:
        for acct in accts:
            _call(service.observe_account, acct, _broker(acct))
    rows = [service.status(a) for a in accts]
    return {"success": True, "accounts": rows, "count": len(rows)}


@catalogue.operation(RiskResetArgs, permission=Permission.STAFF, denied="only staff may reset the risk governor",
                     description="Reset an account's risk governor to active (staff only; a "
                                                "reason is required and audited).")
def risk_reset(args: RiskResetArgs, user) -> dict:
    acct = accounts.account_for_user(user, args.account)
    by = getattr(user, "username", "") or "cli"
    try:
        return {"success": True, **service.reset(acct, by=by, reason=args.reason, rebaseline=args.rebaseline)}
    except ValueError as exc:
        raise OperationError("INVALID_INPUT_DATA", str(exc), {"field": "reason"}) from exc


@catalogue.operation(RiskLimitArgs, permission=Permission.STAFF, denied="only staff may set risk limits",
                     description="Set an account's own risk limit (staff only): it may only "
                                                "tighten the operator's ceiling.")
def risk_limit_set(args: RiskLimitArgs, user) -> dict:
    acct = accounts.account_for_user(user, args.account)
    try:
        return {"success": True, **service.set_limit(acct, args.field, args.value)}
    except limits.OverrideTooLoose as exc:
        raise OperationError("INVALID_INPUT_DATA", str(exc), {"field": args.field}) from exc


# --- backtests ------------------------------------------------------------------------------------
class BacktestRef(Args):
    backtest_id: str = Field(..., max_length=64, description="A backtest's uuid (from workflow_backtest).")


class BacktestResultsArgs(BacktestRef):
    limit: Int = Field(500, ge=0, le=2000, description="Trades, curve points and decisions returned (each).")


def _backtest_for(backtest_id: str, user) -> Backtest:
    import uuid

    try:
        pk = uuid.UUID(str(backtest_id))
    except ValueError:
        raise OperationError("BACKTEST_NOT_FOUND", "backtest_id must be a UUID", {"field": "backtest_id"}) from None
    bt = Backtest.objects.select_related("workflow").filter(pk=pk).first()
    if bt is None or not can_see(user, bt.owner_id if bt.owner_id is not None else bt.workflow.owner_id):
        raise OperationError("BACKTEST_NOT_FOUND", f"no backtest {backtest_id}", {"field": "backtest_id"})
    return bt


def _progress(bt: Backtest) -> dict:
    from trading_app.backtest import sweeps

    live = {"status": str(bt.status), "bars_done": bt.bars_done, "bars_total": bt.bars_total,
            "decisions": bt.decisions}
    if bt.arguments.get("sweep"):
        live.update(sweeps.progress(bt))
    return {"backtest_id": str(bt.pk), "workflow_id": str(bt.workflow_id), "workflow_version": bt.version.number,
            **live, "progress": round(live["bars_done"] / live["bars_total"], 4) if live["bars_total"] else 0.0,
            "eta_seconds": bt.eta_seconds(), "error": bt.error.split("\n")[0] or None,
            "arguments": bt.arguments, "account": bt.account.name if bt.account_id else None,
            "created_at": bt.created_at.isoformat(),
            "started_at": bt.started_at.isoformat() if bt.started_at else None,
            "heartbeat_at": bt.heartbeat_at.isoformat() if bt.heartbeat_at else None, "attempt": bt.attempt,
            "finished_at": bt.finished_at.isoformat() if bt.finished_at else None}


@catalogue.operation(BacktestArgs, description="Backtest a workflow over history: its triggers, steps, risk checks "
                                               "and broker interface on a simulated clock, with a pessimistic fill "
                                               "model. Returns a backtest id at once; the run happens on a worker.")
def workflow_backtest(args: BacktestArgs, user) -> dict:
    workflow = workflow_for(args.workflow_id, user)
    bt = backtests.start(workflow, args, owner(user))
    return {"success": True, **_progress(bt)}


@catalogue.operation(BacktestRef, description="A backtest's status and progress (bars done / total, ETA).")
def backtest_status(args: BacktestRef, user) -> dict:
    bt = _backtest_for(args.backtest_id, user)
    reply = {"success": True, **_progress(bt)}
    if bt.status == Backtest.Status.SUCCEEDED:
        reply["metrics"] = bt.metrics
    return reply


@catalogue.operation(BacktestResultsArgs, description="A finished backtest's metrics, trades (each with the "
                                                      "decision that made it), equity curve and decisions.")
def backtest_results(args: BacktestResultsArgs, user) -> dict:
    bt = _backtest_for(args.backtest_id, user)
    if bt.status != Backtest.Status.SUCCEEDED:
        raise OperationError("CONFLICT", f"backtest {bt.pk} is {bt.status}: no results"
                             + (f" ({bt.error.splitlines()[0]})" if bt.error else ""), {"field": "backtest_id"})
    art, n = bt.artefacts or {}, args.limit
    return {"success": True, **_progress(bt), "metrics": bt.metrics,
            "trades": art.get("trades", [])[:n], "equity_curve": art.get("equity_curve", [])[:n],
            "decisions_made": art.get("decisions", [])[:n], "truncated": art.get("truncated", {}),
            "counts": {k: len(art.get(k, [])) for k in ("trades", "equity_curve", "decisions")}}


# --- money at a glance (trading_app.pnl) -------------------------------------------------------------
class PnlArgs(Args):
    account: str | None = Field(None, max_length=64, description="One account you may see (default: every "
                                                                 "account you may see but backtests' own).")
    workflow: str | None = Field(None, max_length=200, description="Only this workflow's (strategy's) trades; "
                                                                   "'(manual)' for orders no execution placed.")
    limit: int = Field(50, ge=1, le=500, description="The newest trades returned (the sums cover all).")


@catalogue.operation(PnlArgs, description="P&L per account and per workflow (realised, unrealised, fees), the "
                                          "newest trades (with the execution that made each) and open positions "
                                          "with their stops and targets.")
def pnl_summary(args: PnlArgs, user) -> dict:
    """Exact figures (Decimals as strings) of the accounts ``user`` may see (``trading_app.pnl``)."""
    if args.account:
        accts = BrokerAccount.objects.filter(pk=accounts.account_for_user(user, args.account).pk)
    else:  # a backtest's throw-away account reports through backtest_results
        accts = accounts.visible_accounts(user)
    return {"success": True, **pnl.summary(accts, args.workflow, args.limit)}
