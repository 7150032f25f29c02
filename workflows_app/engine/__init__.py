"""The workflow engine: what the rest of Nexus calls. Everything else in this package is private.

Start, wait for, cancel and retry executions; the engine tasks (workflows_app.tasks) call the
message handlers and translate the outcomes (RetryStep, StaleMessage, StepFailed) for Celery; beat's
reconciler calls reconcile with what the broker still holds. The engine sends its messages by task
name (messages.py) and never imports the task modules.

Modules, by concern: canvas (a version compiled to a Celery canvas), runner (one message: a step,
a join, a compensation), lifecycle (start, dispatch, advance, finish, fail or compensate, cancel,
retry), failures (retries and the one dead-letter path), saga (which compensations, in what order),
subprocess (child workflows), suspend (waiting executions: wait and approval steps), timers (resuming
due waits), infrastructure (database/Redis faults), reconciler (lost executions,
the broker scan), waiting (synchronous waits), outputs (what a step may write into the context),
policy (retries, timeouts, queues, priorities).
"""
from workflows_app.engine.compensating import finish_compensation, run_compensation
from workflows_app.engine.infrastructure import infrastructure_fault
from workflows_app.engine.lifecycle import cancel, retry, start_execution
from workflows_app.engine.messages import FINISH_COMPENSATION, JOIN_GROUP, RUN_COMPENSATION, RUN_STEP
from workflows_app.engine.outcomes import RetryStep, StaleMessage, StepFailed
from workflows_app.engine.outputs import is_reserved
from workflows_app.engine.reconciler import reconcile, waiting_dispatches
from workflows_app.engine.rerun import rerun
from workflows_app.engine.runner import join_group, run_step
from workflows_app.engine.suspend import APPROVED, REJECTED, Suspension, resume
from workflows_app.engine.timers import resume_due, wake
from workflows_app.engine.waiting import wait_until_final

__all__ = [
    # executions
    "start_execution", "wait_until_final", "cancel", "retry", "rerun",
    # the engine tasks' handlers and their outcomes
    "run_step", "join_group", "run_compensation", "finish_compensation", "infrastructure_fault",
    "RetryStep", "StaleMessage", "StepFailed",
    "RUN_STEP", "JOIN_GROUP", "RUN_COMPENSATION", "FINISH_COMPENSATION",
    # the reconciler
    "reconcile", "waiting_dispatches",
    # waits and approvals: a handler's Suspension, the timer, a decision's resume
    "Suspension", "resume", "resume_due", "wake", "APPROVED", "REJECTED",
    # the context's reserved keys (step types validate their params with it)
    "is_reserved",
]
