"""The engine's Celery messages, built by task name.

The engine never imports its task modules (tasks → engine, never engine → tasks): a process that only
sends (the web, beat, a trigger) needs no task registered, and Celery sends a signature whose task it
does not know by name. Every message's arguments start with (execution_id, generation): the
reconciler's broker scan reads them back.
"""
from __future__ import annotations

from celery import current_app
from celery.canvas import Signature

RUN_STEP = "nexus.engine.run_step"
JOIN_GROUP = "nexus.engine.join_group"
RUN_COMPENSATION = "nexus.engine.run_compensation"
FINISH_COMPENSATION = "nexus.engine.finish_compensation"
ENGINE_TASKS = frozenset({RUN_STEP, JOIN_GROUP, RUN_COMPENSATION, FINISH_COMPENSATION})


def message(task: str, *args, **options) -> Signature:
    """An engine task's signature, immutable: a chain never passes one task's result to the next."""
    return current_app.signature(task, args=args, immutable=True, **options)
