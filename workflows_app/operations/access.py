"""Who may see what: the object lookups every operation shares.

Someone else's workflow or execution is reported as not found (never as forbidden), so ids of
other users' objects cannot be probed.
"""
from __future__ import annotations

import uuid

from workflows_app import definitions
from workflows_app.errors import OperationError
from workflows_app.models import Execution, Workflow
from workflows_app.operations.catalogue import is_staff


def owner(user):
    """The user to record as owner of what this call creates (None for trusted local callers)."""
    return user if getattr(user, "pk", None) else None


def can_see(user, owner_id) -> bool:
    return is_staff(user) or owner_id == getattr(user, "id", None)


def sees_everything(user) -> bool:
    return is_staff(user)


def workflow_for(workflow_id, user) -> Workflow:
    """By uuid or by name; names are unique per owner, so resolved within the caller's own workflows."""
    if workflow_id in (None, ""):
        raise OperationError("INVALID_INPUT_DATA", "workflow_id is required", {"field": "workflow_id"})
    workflow = definitions.resolve_workflow_ref(workflow_id, user)
    if workflow is None or not can_see(user, workflow.owner_id):
        raise OperationError("WORKFLOW_NOT_FOUND", f"no workflow {workflow_id}", {"field": "workflow_id"})
    return workflow


def execution_for(execution_id, user) -> Execution:
    try:
        pk = uuid.UUID(str(execution_id))
    except (ValueError, TypeError, AttributeError):
        raise OperationError("EXECUTION_NOT_FOUND", "execution_id must be a UUID", {"field": "execution_id"}) from None
    execution = Execution.objects.select_related("workflow", "version").filter(pk=pk).first()
    if execution is None or not can_see(user, execution.owner_id or execution.workflow.owner_id):
        raise OperationError("EXECUTION_NOT_FOUND", f"no execution {execution_id}", {"field": "execution_id"})
    return execution
