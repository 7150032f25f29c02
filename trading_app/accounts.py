"""Broker accounts: which account an execution trades on, the broker bound to it, and who may see which account.

Resolution (``account_for_execution``), from state the execution owns - never from its context:

1. the owner: ``StepContext.owner_id`` (fixed at start), else the execution row's owner, else its
   workflow's owner (trigger-fired executions of older rows have no owner of their own);
2. an account named in the workflow version's ``metadata.account`` (immutable per version), which
   that owner must be allowed to use (``can_use``), else a clear permanent error;
3. otherwise the owner's own paper account (created on first use), or - for an owner-less
   workflow (created by the operator's commands: the examples) - the house account.

Test mode always trades on paper: a named Alpaca account is replaced by the owner's paper account.
No path falls back to another user's account.
"""
from __future__ import annotations

import uuid
from decimal import Decimal

from django.contrib.auth import get_user_model
from django.db import IntegrityError, transaction
from django.db.models import Q

from trading_app import conf
from trading_app.models import BrokerAccount
from trading_app.paper import PaperBroker
from trading_app.providers import binding, get_market_data
from trading_app.providers.alpaca_broker import AlpacaBroker
from workflows_app.errors import OperationError, PermanentStepError
from workflows_app.models import Execution

HOUSE = "default"  # the operator's paper account (the one account before accounts had owners)
DEMO = "demo"
ALPACA = "alpaca"


def _paper_defaults() -> dict:
    cash = Decimal(str(conf.get("NEXUS_PAPER_STARTING_CASH")))
    return {"starting_cash": cash, "cash": cash,
            "slippage_bps": Decimal(str(conf.get("NEXUS_PAPER_SLIPPAGE_BPS"))),
            "commission_per_share": Decimal(str(conf.get("NEXUS_PAPER_COMMISSION_PER_SHARE"))),
            "commission_min": Decimal(str(conf.get("NEXUS_PAPER_COMMISSION_MIN")))}


def _get_or_create(name: str, **defaults) -> BrokerAccount:
    acct = BrokerAccount.objects.filter(name=name).first()
    if acct:
        return acct
    try:
        with transaction.atomic():
            return BrokerAccount.objects.create(name=name, **{**_paper_defaults(), **defaults})
    except IntegrityError:  # created concurrently by another worker
        return BrokerAccount.objects.get(name=name)


def house_account() -> BrokerAccount:
    return _get_or_create(HOUSE, kind=BrokerAccount.Kind.HOUSE)


def demo_account() -> BrokerAccount:
    return _get_or_create(DEMO, kind=BrokerAccount.Kind.DEMO)


def alpaca_account() -> BrokerAccount:
    """The Alpaca account configured from settings, as a row (staff add its owners in the admin)."""
    return _get_or_create(ALPACA, kind=BrokerAccount.Kind.HOUSE, broker="alpaca", starting_cash=Decimal("0"),
                          cash=Decimal("0"))


def user_account(user_id: int) -> BrokerAccount:
    """The user's own paper account, created on first use."""
    acct = BrokerAccount.objects.filter(default_for_id=user_id).first()
    if acct:
        return acct
    try:
        with transaction.atomic():
            acct = BrokerAccount.objects.create(name=f"user-{user_id}", kind=BrokerAccount.Kind.USER,
                                                default_for_id=user_id, **_paper_defaults())
            acct.owners.add(user_id)
            return acct
    except IntegrityError:
        return BrokerAccount.objects.get(default_for_id=user_id)


def _user(user_id):
    return get_user_model().objects.filter(pk=user_id).first() if user_id is not None else None


def can_use(user_id: int | None, acct: BrokerAccount) -> bool:
    """An owner may use their accounts; an owner-less account (house, demo) is for owner-less
    (operator) workflows and staff only."""
    if user_id is not None and acct.owners.filter(pk=user_id).exists():
        return True
    if acct.owners.exists():
        return False
    if user_id is None:
        return True
    user = _user(user_id)
    return bool(user and user.is_staff)


def _owner_of(execution, owner_id):
    if owner_id is not None:
        return owner_id
    if execution is None:
        return None
    return execution.owner_id or execution.workflow.owner_id


def account_for_execution(execution_id: str, owner_id: int | None, test_mode: bool) -> BrokerAccount:
    execution = Execution.objects.select_related("workflow", "version").filter(pk=execution_id).first() \
        if _is_uuid(execution_id) else None
    owner = _owner_of(execution, owner_id)
    named = ((execution.version.definition or {}).get("metadata") or {}).get("account") if execution else None
    if named:
        acct = BrokerAccount.objects.filter(name=str(named)).first()
        if acct is None or not can_use(owner, acct):
            raise PermanentStepError(f"metadata.account {named!r}: no such account that this workflow's owner "
                                     f"may use", error_class="account_not_allowed")
        if not (test_mode and acct.broker != "paper"):
            return acct
    if owner is not None:
        return user_account(owner)
    if not test_mode and conf.provider_name("broker") == "alpaca":
        return alpaca_account()
    return house_account()


def broker_for_account(acct: BrokerAccount, test_mode: bool = False):
    """A broker bound to ``acct`` (``broker.account_row``); test mode always gets paper."""
    if acct.broker == "alpaca" and not test_mode:
        broker = AlpacaBroker.from_settings()
        broker.account_row = acct
        return broker
    return PaperBroker(market_data=get_market_data(test_mode), account=acct)


def get_broker(test_mode: bool = False):
    """The configured broker (NEXUS_BROKER) on its own account: paper (the house account) or Alpaca;
    test mode always gets paper."""
    name = conf.provider_name("broker", test_mode)
    if name == "alpaca":
        return AlpacaBroker.from_settings()
    if name != "paper":
        raise ValueError(f"unknown NEXUS_BROKER {name!r} (paper, alpaca)")
    return PaperBroker(market_data=get_market_data(test_mode))


def broker_for(ctx):
    """The broker a step trades through: the execution's account (see the module docstring), or
    inside a backtest (``providers.binding``) the backtest's own broker on its throw-away account."""
    if (held := binding.current()) is not None and held.broker is not None:
        return held.broker
    return broker_for_account(account_for_execution(ctx.execution_id, ctx.owner_id, ctx.test_mode), ctx.test_mode)


# --- visibility (selectors for the faces) ---------------------------------------------------------------
def visible_accounts(user, backtests: bool = False):
    """Accounts ``user`` may see: their own (created on first look), all for staff and the CLI (None).
    A backtest's private account only when asked for (``backtests``, e.g. by name): it is simulated
    history, read through its backtest, and one per run would crowd out the live accounts."""
    if user is None or getattr(user, "is_staff", False):
        rows = BrokerAccount.objects.all()
    elif getattr(user, "pk", None) is None:
        return BrokerAccount.objects.none()
    else:
        user_account(user.pk)
        rows = BrokerAccount.objects.filter(Q(owners=user) | Q(default_for=user)).distinct()
    return rows if backtests else rows.exclude(kind=BrokerAccount.Kind.BACKTEST)


def account_for_user(user, name: str | None = None) -> BrokerAccount:
    """The account a face shows: the named one if visible (else not found), else the user's own
    (staff and the CLI: the house account)."""
    if name:
        acct = visible_accounts(user, backtests=True).filter(name=str(name)[:64]).first()
        if acct is None:
            raise OperationError("ACCOUNT_NOT_FOUND", f"no account {name!r} visible to you", {"field": "account"})
        return acct
    if user is None or getattr(user, "pk", None) is None:
        return house_account()
    return user_account(user.pk)


def describe(acct: BrokerAccount) -> dict:
    return {"name": acct.name, "broker": acct.broker, "kind": acct.kind, "halted": acct.halted,
            "halt_reason": acct.halt_reason or None, "owners": sorted(acct.owners.values_list("username", flat=True)),
            "limits": {"max_position_pct": acct.max_position_pct, "max_gross_exposure": acct.max_gross_exposure}}


def _is_uuid(value) -> bool:
    try:
        uuid.UUID(str(value))
        return True
    except ValueError:
        return False
