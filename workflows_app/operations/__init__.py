"""The operations contract: one typed operation per action, shared by every face.

REST views, MCP tools, admin actions and management commands call these and add no logic. Each is
an ``Operation`` of the catalogue (``workflows_app.operations.catalogue``): called with keyword
arguments and ``user`` (None for trusted local callers: CLI, MCP over stdio, beat), it returns a
JSON-serialisable dict with ``success: True`` or raises ``OperationError``. A non-staff user sees
and changes only their own workflows and executions.

Where an operation goes: its area module below (``@catalogue.operation(ArgsModel)`` on
``fn(args, user)``); its name here. The faces pick it up from the catalogue.
"""
from workflows_app.errors import OperationError
from workflows_app.operations.agents import agent_list, workflow_agent_assign
from workflows_app.operations.deadletters import dead_letter_redrive, dead_letters, process_dead_letters
from workflows_app.operations.events import event_ingest, webhook_receive
from workflows_app.operations.executions import (
    execution_cancel,
    execution_retry,
    workflow_audit_trail,
    workflow_metrics,
)
from workflows_app.operations.queues import (
    queue_ack,
    queue_create,
    queue_list,
    queue_receive,
    queue_send,
    workflow_queue_status,
)
from workflows_app.operations.workflows import (
    workflow_create,
    workflow_delete,
    workflow_execute,
    workflow_get,
    workflow_list,
    workflow_pause,
    workflow_resume,
    workflow_set_owner,
    workflow_status,
    workflow_update,
)

__all__ = [
    "OperationError",
    "agent_list", "dead_letter_redrive", "dead_letters", "event_ingest", "execution_cancel", "execution_retry",
    "process_dead_letters", "queue_ack", "queue_create", "queue_list", "queue_receive", "queue_send",
    "webhook_receive", "workflow_agent_assign", "workflow_audit_trail", "workflow_create", "workflow_delete",
    "workflow_execute", "workflow_get", "workflow_list", "workflow_metrics", "workflow_pause",
    "workflow_queue_status", "workflow_resume", "workflow_set_owner", "workflow_status", "workflow_update",
]
