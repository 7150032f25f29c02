"""Writes to the append-only audit trail."""
from __future__ import annotations

from typing import Any

from django.core.serializers.json import DjangoJSONEncoder

from workflows_app.models import AuditEvent

SECRET_KEYS = ("secret", "password", "api_key", "apikey", "token", "authorization")


def _scrub(value: Any) -> Any:
    """Never write a secret to the trail: blank any key that looks like one."""
    if isinstance(value, dict):
        return {k: ("***" if any(s in str(k).lower() for s in SECRET_KEYS) else _scrub(v)) for k, v in value.items()}
    if isinstance(value, list):
        return [_scrub(v) for v in value]
    return value


def record(event: str, /, *, workflow_id=None, execution_id=None, step: str = "", **data: Any) -> AuditEvent:
    import json

    clean = json.loads(json.dumps(_scrub(data), cls=DjangoJSONEncoder))
    return AuditEvent.objects.create(
        event=event, workflow_id=workflow_id, execution_id=execution_id, step=step or "", data=clean
    )
