"""Approvals: announcing a request, and a person's decision on it.

A decision is exactly once: the execution moves out of `waiting` with a conditional UPDATE
(engine.resume) and the request out of `pending` with another, in one transaction; a second
decision, or one after the expiry, is refused with what was decided, by whom and when. Who may
decide is the operation's check (the workflow's owner or staff, operations.access).
"""
from __future__ import annotations

import json

from django.db import transaction
from django.utils import timezone

from workflows_app import audit, engine
from workflows_app.errors import OperationError
from workflows_app.models import ApprovalRequest, Execution
from workflows_app.services import notifications

LOCAL_OPERATOR = "local operator"  # a trusted local caller (CLI, MCP over stdio): user=None


def _iso(value) -> str | None:
    return value.isoformat() if value else None


NOTIFIED_SUBJECT_CHARS = 4000  # what is to be approved, in a chat message: a bounded excerpt


def _bounded(subject):
    text = json.dumps(subject, default=str)
    return subject if len(text) <= NOTIFIED_SUBJECT_CHARS else text[:NOTIFIED_SUBJECT_CHARS] + "..."


def announce_approval(execution: Execution, request: ApprovalRequest) -> None:
    """The approval's announcement, inside the transaction that opens the request: the audit trail,
    and a delivery to every notification channel taking ``approval_requested`` (sent after the commit;
    keyed by the request, so a retried step does not announce it twice)."""
    audit.record("approval_requested", workflow_id=execution.workflow_id, execution_id=execution.id,
                 step=request.step_name, approval_id=str(request.id), summary=request.summary,
                 subject=request.subject, expires_at=_iso(request.expires_at))
    notifications.notify("approval_requested", {
        "text": f"Approval requested: {request.summary}", "execution_id": str(execution.id),
        "step": request.step_name, "approval_id": str(request.id), "subject": _bounded(request.subject),
        "expires_at": _iso(request.expires_at)}, execution=execution, key=f"approval:{request.id}")


def request_reply(request: ApprovalRequest) -> dict:
    return {"approval_id": str(request.id), "step": request.step_name, "status": request.status,
            "summary": request.summary, "subject": request.subject, "requested_at": _iso(request.requested_at),
            "expires_at": _iso(request.expires_at), "decided_at": _iso(request.decided_at),
            "decided_by": request.decided_by_label or None, "comment": request.comment or None}


def _refusal(request: ApprovalRequest | None, execution: Execution) -> OperationError:
    if request is None:
        return OperationError("CONFLICT", f"execution is {execution.status}, not waiting for an approval",
                              {"field": "execution_id", "status": execution.status})
    if request.status == ApprovalRequest.Status.PENDING:  # its execution was resumed or ended meanwhile
        execution.refresh_from_db(fields=["status"])
        return OperationError("CONFLICT", f"execution is {execution.status}; the approval can no longer be decided",
                              {"field": "execution_id", "status": execution.status})
    by = f" by {request.decided_by_label}" if request.decided_by_label else ""
    return OperationError("CONFLICT", f"approval '{request.step_name}' was already {request.status}{by} at "
                                      f"{_iso(request.decided_at)}",
                          {"field": "execution_id", "approval": request_reply(request)})


def decide(execution: Execution, decision: str, user, comment: str = "") -> dict:
    """Approve or reject the execution's pending approval (decision: engine.APPROVED / REJECTED)."""
    label = user.get_username() if getattr(user, "pk", None) else LOCAL_OPERATOR
    request = ApprovalRequest.objects.filter(execution=execution).order_by("-requested_at").first()
    if request is None or request.status != ApprovalRequest.Status.PENDING:
        raise _refusal(request, execution)
    now = timezone.now()
    output = {"approved": decision == engine.APPROVED, "decision": decision, "decided_by": label,
              "decided_at": _iso(now), "comment": comment}
    with transaction.atomic():
        audit.record("approval_decided", workflow_id=execution.workflow_id, execution_id=execution.id,
                     step=request.step_name, approval_id=str(request.id), decision=decision, decided_by=label,
                     user_id=getattr(user, "pk", None), decided_at=_iso(now), comment=comment)
        resumed = engine.resume(execution.id, decision, output, reason=f"approval_{decision}")
        settled = resumed and ApprovalRequest.objects.filter(pk=request.pk, status=ApprovalRequest.Status.PENDING).update(
            status=decision, decided_at=now, decided_by=user if getattr(user, "pk", None) else None,
            decided_by_label=label, comment=comment)
        if not settled:
            transaction.set_rollback(True)  # nothing of this decision is kept
    if not settled:
        request.refresh_from_db()
        raise _refusal(request, execution)
    request.refresh_from_db()
    execution.refresh_from_db(fields=["status"])
    return {"success": True, "execution_id": str(execution.id), "status": execution.status, "decision": decision,
            "approval": request_reply(request)}
