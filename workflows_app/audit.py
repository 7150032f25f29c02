"""Writes to the append-only audit trail."""
from __future__ import annotations

import json
import threading
from contextlib import contextmanager
from typing import Any

from django.core.serializers.json import DjangoJSONEncoder

from workflows_app.models import AuditEvent

SECRET_KEYS = ("secret", "password", "api_key", "apikey", "token", "authorization")
# A value larger than this (as JSON) is summarised, not copied: audit rows and replies stay small
# (the full step result is kept once, in its StepRun).
MAX_VALUE_BYTES = 16 * 1024


def _scrub(value: Any) -> Any:
    """Never write a secret to the trail: blank any key that looks like one."""
    if isinstance(value, dict):
        return {k: ("***" if any(s in str(k).lower() for s in SECRET_KEYS) else _scrub(v)) for k, v in value.items()}
    if isinstance(value, list):
        return [_scrub(v) for v in value]
    return value


def summarise(value: Any, limit: int = MAX_VALUE_BYTES) -> Any:
    """`value` itself when its JSON fits in `limit` bytes; otherwise a small description of it."""
    text = json.dumps(value, cls=DjangoJSONEncoder, default=str)
    size = len(text.encode())
    if size <= limit:
        return value
    summary: dict[str, Any] = {"summarised": True, "bytes": size}
    if isinstance(value, dict):
        summary["keys"] = sorted(str(k) for k in value)[:50]
    elif isinstance(value, list):
        summary["items"] = len(value)
    else:
        summary["preview"] = text[:200]
    return summary


def build(event: str, /, *, workflow_id=None, execution_id=None, step: str = "", **data: Any) -> AuditEvent:
    """An audit row, scrubbed and bounded, not yet written (see record_many)."""
    clean = json.loads(json.dumps({k: summarise(v) for k, v in _scrub(data).items()}, cls=DjangoJSONEncoder))
    return AuditEvent(event=event, workflow_id=workflow_id, execution_id=execution_id, step=step or "", data=clean)


_pending = threading.local()


def record(event: str, /, *, workflow_id=None, execution_id=None, step: str = "", **data: Any) -> AuditEvent:
    row = build(event, workflow_id=workflow_id, execution_id=execution_id, step=step, **data)
    record_many([row])
    return row


def record_many(rows: list[AuditEvent]) -> None:
    """Write rows built with `build` in one INSERT, in their order (the trail orders by timestamp, id);
    inside `batched`, queue them for its one INSERT instead."""
    queue = getattr(_pending, "rows", None)
    if queue is not None:
        queue.extend(rows)
    elif len(rows) == 1:
        rows[0].save(force_insert=True)
    elif rows:
        AuditEvent.objects.bulk_create(rows)


@contextmanager
def batched():
    """Inside a transaction: every row recorded in the block is written in one INSERT at its end
    (one statement per transaction instead of one per event). Nested blocks join the outer one;
    nothing is written if the block raises (its transaction rolls back anyway)."""
    if getattr(_pending, "rows", None) is not None:
        yield
        return
    _pending.rows = []
    try:
        yield
        rows = _pending.rows
    finally:
        _pending.rows = None
    record_many(rows)
