"""Writes to the append-only audit trail."""
from __future__ import annotations

import json
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


def record(event: str, /, *, workflow_id=None, execution_id=None, step: str = "", **data: Any) -> AuditEvent:
    clean = json.loads(json.dumps({k: summarise(v) for k, v in _scrub(data).items()}, cls=DjangoJSONEncoder))
    return AuditEvent.objects.create(
        event=event, workflow_id=workflow_id, execution_id=execution_id, step=step or "", data=clean
    )
