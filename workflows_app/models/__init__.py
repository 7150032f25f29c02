from workflows_app.models.approvals import ApprovalRequest
from workflows_app.models.audit import AuditEvent, DeadLetter
from workflows_app.models.definitions import Agent, Step, Trigger, Workflow, WorkflowVersion
from workflows_app.models.guards import CircuitState, Guard
from workflows_app.models.notifications import NotificationAttempt, NotificationDelivery
from workflows_app.models.processes import AvailabilitySample, ProcessHeartbeat
from workflows_app.models.queues import InboxMessage, MessageQueue
from workflows_app.models.runs import Execution, StepRun

__all__ = [
    "Agent",
    "ApprovalRequest",
    "AuditEvent",
    "AvailabilitySample",
    "CircuitState",
    "DeadLetter",
    "Execution",
    "Guard",
    "InboxMessage",
    "MessageQueue",
    "NotificationAttempt",
    "NotificationDelivery",
    "ProcessHeartbeat",
    "Step",
    "StepRun",
    "Trigger",
    "Workflow",
    "WorkflowVersion",
]
