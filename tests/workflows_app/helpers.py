"""Small helpers shared by engine tests."""
from __future__ import annotations

from workflows_app import operations
from workflows_app.engine import wait_until_final
from workflows_app.models import AuditEvent, Execution


def create(name: str, steps: list, **kwargs) -> str:
    return operations.workflow_create(name=name, steps=steps, **kwargs)["workflow_id"]


def run(workflow_id: str, input_data: dict | None = None, timeout: float = 120) -> Execution:
    """Start an execution and wait (bounded) until it is final."""
    reply = operations.workflow_execute(workflow_id=workflow_id, input_data=input_data or {})
    return wait_until_final(reply["execution_id"], timeout)


def events(execution: Execution) -> list[str]:
    return list(AuditEvent.objects.filter(execution=execution).order_by("timestamp", "id").values_list("event", flat=True))
