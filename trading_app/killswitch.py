"""The kill switches: the global one (``KillSwitch`` singleton) and each account's own (``halted``).

Every order path calls ``ensure_trading_allowed`` before an order leaves. ``trading_mode`` is what
/health/ and the account reply show: the configured mode (``conf.trading_mode``) and the switch.
"""
from __future__ import annotations

from django.db import transaction

from trading_app import conf
from trading_app.models import BrokerAccount, KillSwitch
from workflows_app import audit
from workflows_app.errors import PermanentStepError


class KillSwitchActive(PermanentStepError):
    def __init__(self, reason: str = ""):
        super().__init__("kill switch is active: new orders are refused" + (f" ({reason})" if reason else ""),
                         error_class="kill_switch")


def kill_switch_state() -> dict:
    ks = KillSwitch.objects.filter(pk=1).first()
    if ks is None:
        return {"active": False, "reason": "", "updated_at": None, "updated_by": ""}
    return {"active": ks.active, "reason": ks.reason, "updated_at": ks.updated_at.isoformat(),
            "updated_by": ks.updated_by}


def set_kill_switch(active: bool, reason: str = "", by: str = "") -> dict:
    """Switch the global kill switch, audited (who, why, from what to what) in the system-wide trail."""
    with transaction.atomic():
        ks = KillSwitch.objects.select_for_update().filter(pk=1).first() or KillSwitch.load()
        was = ks.active
        ks.active = bool(active)
        ks.reason = reason[:300]
        ks.updated_by = by[:150]
        ks.save()
        audit.record("kill_switch_set", active=ks.active, was_active=was, reason=ks.reason, by=ks.updated_by)
    return kill_switch_state()


def ensure_trading_allowed(account=None) -> None:
    """Raise ``KillSwitchActive`` (PermanentStepError, error_class "kill_switch") while the global
    switch is on, or while ``account``'s own switch (``halted``) is on."""
    row = KillSwitch.objects.filter(pk=1).values("active", "reason").first()
    if row and row["active"]:
        raise KillSwitchActive(row["reason"])
    if account is not None:
        halted = BrokerAccount.objects.filter(pk=account.pk, halted=True).values_list("halt_reason", flat=True).first()
        if halted is not None:
            raise KillSwitchActive(f"account {account.name} is halted" + (f": {halted}" if halted else ""))


def set_account_halt(account, active: bool, reason: str = "") -> dict:
    BrokerAccount.objects.filter(pk=account.pk).update(halted=bool(active), halt_reason=reason[:300])
    return {"account": account.name, "halted": bool(active), "reason": reason}


def trading_mode() -> dict:
    """The configured mode (providers, broker, live or not, warnings) and whether the kill switch is on."""
    info = conf.trading_mode()
    info["kill_switch_active"] = None
    try:
        info["kill_switch_active"] = kill_switch_state()["active"]
    except Exception:  # database not ready (e.g. during migrate)
        pass
    return info
