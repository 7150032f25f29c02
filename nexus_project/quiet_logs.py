"""Routine housekeeping logs at DEBUG.

Celery logs every task it receives and finishes, and beat every task it sends, at INFO. For the
housekeeping beat sends every few seconds (the reconciler, the queue sweep, the order and account
pollers: the plugins' beat jobs) that is thousands of lines an hour that bury the ones that matter
(the admin's password, a failing step). Those records are lowered to DEBUG, so `-l INFO` hides them
and `-l DEBUG` still shows them; every other task keeps its INFO lines."""
from __future__ import annotations

import logging

from celery.signals import after_setup_logger, after_setup_task_logger

CELERY_PER_TASK_LOGGERS = {"celery.worker.strategy", "celery.app.trace", "celery.beat"}
ALSO_ROUTINE = {
    "nexus.trading.demo_tick",  # the demo market's ticker (a database schedule, not a beat job)
    "nexus.events.drain_queue",  # sent after every accepted event or message: plumbing, not news
}


def routine_task_names() -> frozenset[str]:
    from workflows_app.registry import registry  # after Django's setup: the plugins are installed
    return frozenset(job.task for job in registry.beat_jobs.values()) | ALSO_ROUTINE


class RoutineTasksAtDebug(logging.Filter):
    def __init__(self):
        super().__init__()
        self._names: frozenset[str] | None = None

    def _routine(self, text: str) -> bool:
        if self._names is None:
            try:
                self._names = routine_task_names()
            except Exception:  # noqa: BLE001 - before Django is ready: decide on the next record
                return False
        return any(name in text for name in self._names)

    def filter(self, record: logging.LogRecord) -> bool:
        if record.levelno != logging.INFO or record.name not in CELERY_PER_TASK_LOGGERS:
            return True
        if not self._routine(record.getMessage()):
            return True
        record.levelno, record.levelname = logging.DEBUG, "DEBUG"
        return logging.getLogger(record.name).isEnabledFor(logging.DEBUG)


def _install(logger=None, **kwargs) -> None:
    routine = RoutineTasksAtDebug()
    for handler in (logger or logging.getLogger()).handlers:
        if not any(isinstance(f, RoutineTasksAtDebug) for f in handler.filters):
            handler.addFilter(routine)


def connect() -> None:
    after_setup_logger.connect(_install, weak=False)
    after_setup_task_logger.connect(_install, weak=False)
