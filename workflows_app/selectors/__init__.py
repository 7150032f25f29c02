"""Reads: every figure here is computed from rows (or live Redis), never estimated.

The faces and the operations call ``selectors.<name>``; the modules behind it hold one concern each:
``workflows`` (workflows, triggers, executions, audit), ``metrics`` (execution and step figures),
``system`` (availability, uptime, message counters), ``messaging`` (dead letters, queues, agents), ``notifications`` (outbound deliveries).
"""
from workflows_app.selectors.common import iso, parse_window, percentile, sees_everything, user_by_id
from workflows_app.selectors.messaging import (
    agent_queues,
    agents,
    broker_queue_lengths,
    dead_letter_counts,
    dead_letter_row,
    dead_letter_summary,
    queue_configs,
    visible_dead_letters,
)
from workflows_app.selectors.metrics import (
    agent_minutes,
    all_steps_performance,
    cost_breakdown,
    execution_metrics,
    executions_by_status,
    executions_per_hour,
    latency_per_hour,
    metrics_scope,
    recent_executions,
    running_executions,
    step_duration_histogram,
    steps_performance,
    summary_figures,
)
from workflows_app.selectors.notifications import delivery_row, visible_deliveries
from workflows_app.selectors.system import (
    AVAILABILITY_MEANS,
    MESSAGES_COUNTED,
    availability,
    message_figures,
    system_figures,
    uptime,
    uptime_label,
)
from workflows_app.selectors.timeline import execution_timeline
from workflows_app.selectors.workflows import (
    audit_event,
    audit_events,
    execution_detail,
    next_run_at,
    step_run_summary,
    trigger_summary,
    visible_workflows,
    workflow_detail,
    workflow_summary,
)

__all__ = [
    "AVAILABILITY_MEANS", "MESSAGES_COUNTED", "agent_minutes", "agent_queues", "agents", "all_steps_performance",
    "audit_event", "audit_events", "availability", "broker_queue_lengths", "cost_breakdown", "dead_letter_counts",
    "dead_letter_row", "dead_letter_summary", "delivery_row", "execution_detail", "execution_timeline",
    "execution_metrics", "executions_by_status",
    "executions_per_hour", "iso", "latency_per_hour", "message_figures", "metrics_scope", "next_run_at",
    "parse_window", "percentile", "queue_configs", "recent_executions", "running_executions", "sees_everything",
    "step_duration_histogram", "step_run_summary", "steps_performance", "summary_figures", "system_figures",
    "trigger_summary", "uptime", "uptime_label", "user_by_id", "visible_dead_letters", "visible_deliveries", "visible_workflows",
    "workflow_detail", "workflow_summary",
]
