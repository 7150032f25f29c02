"""What the governor writes down: each decision, breach, warning and reset as a ``RiskEvent`` and,
when an execution asked, in that execution's audit trail; warnings also as a structured log line."""
from __future__ import annotations

import logging
import uuid

from trading_app.governor.models import RiskEvent
from workflows_app import audit
from workflows_app.models import Execution
from workflows_app.services.notifications import notify

logger = logging.getLogger("nexus.trading.governor")


def _execution(execution_id: str):
    try:
        uuid.UUID(str(execution_id))
    except ValueError:
        return None
    return Execution.objects.filter(pk=execution_id).values("pk", "workflow_id").first()


def _audit(event: str, execution_id: str, step: str = "", **data) -> None:
    """An event in the asking execution's trail; an order with no execution (operator, tests) is
    audited system-wide."""
    ex = _execution(execution_id) if execution_id else None
    audit.record(event, execution_id=ex["pk"] if ex else None, workflow_id=ex["workflow_id"] if ex else None,
                 step=step, **data)


def decision(account, state, req, d) -> RiskEvent:
    details = {"symbol": req.symbol, "side": req.side, "qty": float(req.qty), "qty_allowed": float(d.qty),
               "state": state.state}
    _audit("risk_decision", req.execution_id, req.step_name, account=account.name, decision=d.decision,
           reason=d.reason or None, limit=d.limit or None, client_order_id=req.client_order_id, **details)
    return RiskEvent.objects.create(account=account, kind="decision", decision=d.decision, limit=d.limit,
                                    reason=d.reason[:500], state=state.state, execution_id=req.execution_id[:64],
                                    step=req.step_name[:128], client_order_id=req.client_order_id, details=details)


def breach(account, state, name: str, action: str, reason: str, execution_id: str = "") -> None:
    _audit("risk_breach", execution_id, account=account.name, limit=name, moves_to=action, reason=reason)
    RiskEvent.objects.create(account=account, kind="breach", limit=name, reason=reason[:500], state=action,
                             execution_id=execution_id[:64])
    logger.warning("risk governor: account %s %s -> %s (%s)", account.name, name, action, reason)
    notify("risk_breach", {"text": f"Risk governor: account {account.name} is {action} ({name}: {reason})"[:1000],
                           "account": account.name, "limit": name, "moves_to": action})  # the account's, not a run's


def announce_warning(account, state, name: str, value: float, limit_value: float, execution_id: str = "") -> None:
    """The 80 % warning of one limit (once per limit and trading day): an audit event, a RiskEvent and
    a structured log line. The one place the outbound notifications hook in."""
    pct = value / limit_value if limit_value else 0.0
    reason = f"{name} at {value:.4g} is {pct:.0%} of its limit {limit_value:g}"
    _audit("risk_warning", execution_id, account=account.name, limit=name, value=round(value, 6),
           limit_value=limit_value, used=round(pct, 4))
    RiskEvent.objects.create(account=account, kind="warning", limit=name, reason=reason, state=state.state,
                             execution_id=execution_id[:64], details={"value": value, "limit_value": limit_value})
    notify("risk_warning", {"text": f"Risk governor: account {account.name}: {reason}", "account": account.name,
                            "limit": name, "value": value, "limit_value": limit_value, "used": round(pct, 4)},
           key=f"risk_warning:{account.pk}:{name}:{state.day}")
    logger.warning("risk governor warning", extra={"event": "risk_warning", "account": account.name, "limit": name,
                                                   "value": value, "limit_value": limit_value, "used": pct})


def reset(account, previous: str, by: str, reason: str) -> None:
    _audit("risk_reset", "", account=account.name, previous_state=previous, by=by, reason=reason)
    RiskEvent.objects.create(account=account, kind="reset", reason=reason[:500], state="active",
                             details={"by": by, "previous_state": previous})
