"""Housekeeping tasks' per-task Celery lines are lowered to DEBUG; every other task keeps INFO."""
from __future__ import annotations

import logging

from nexus_project.quiet_logs import RoutineTasksAtDebug


def _record(logger: str, message: str, *args) -> logging.LogRecord:
    return logging.LogRecord(logger, logging.INFO, __file__, 1, message, args, None)


def test_housekeeping_lines_become_debug_and_are_hidden_at_info():
    quiet = RoutineTasksAtDebug()
    logging.getLogger("celery.app.trace").setLevel(logging.INFO)
    received = _record("celery.worker.strategy", "Task %s[%s] received", "nexus.maintenance.reconcile", "abc")
    sent = _record("celery.beat", "Scheduler: Sending due task %s (%s)", "nexus-queue-sweep",
                   "nexus.maintenance.sweep_queues")
    for record in (received, sent):
        assert quiet.filter(record) is False and record.levelname == "DEBUG"


def test_other_tasks_and_other_loggers_keep_their_lines():
    quiet = RoutineTasksAtDebug()
    step = _record("celery.app.trace", "Task %s[%s] succeeded in %ss: %s", "nexus.engine.run_step", "abc", 0.1, None)
    ours = _record("workflows_app.engine", "nexus.maintenance.reconcile resumed %d", 3)
    assert quiet.filter(step) is True and step.levelno == logging.INFO
    assert quiet.filter(ours) is True and ours.levelno == logging.INFO


def test_debug_level_still_shows_them():
    quiet = RoutineTasksAtDebug()
    trace = logging.getLogger("celery.app.trace")
    before = trace.level
    trace.setLevel(logging.DEBUG)
    try:
        assert quiet.filter(_record("celery.app.trace", "Task %s[%s] succeeded", "nexus.maintenance.reconcile", "x"))
    finally:
        trace.setLevel(before)
