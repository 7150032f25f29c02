"""Event operations: a manual event (staff) and a signed webhook."""
from __future__ import annotations

from typing import Any

from pydantic import Field

from workflows_app.errors import OperationError
from workflows_app.operations.catalogue import Permission, catalogue
from workflows_app.operations.fields import Args, Object
from workflows_app.services import events


class EventIngestArgs(Args):
    kind: str = Field("event", max_length=50)
    payload: Object = Field(default_factory=dict)
    source: str = Field("manual", max_length=100)
    event_id: str = Field(None, max_length=200)


@catalogue.operation(EventIngestArgs, permission=Permission.STAFF, denied="inject events",
                     description="Ingest an event (tick, news, named event); matching triggers fire on the edge.")
def event_ingest(args: EventIngestArgs, user) -> dict:
    """A manual event: it goes through the events queue and is matched against triggers."""
    reply = events.ingest(args.kind, args.payload, source=args.source or "manual", event_id=args.event_id)
    return {"success": True, **reply}


class WebhookArgs(Args):
    source: Any = None
    body: bytes = b""
    signature: Any = None
    timestamp: Any = None


@catalogue.operation(WebhookArgs, tool=False, description="A signed webhook (the REST face's POST /api/v1/events/).")
def webhook_receive(args: WebhookArgs, user) -> dict:
    """X-Nexus-Signature = hex HMAC-SHA256(secret, f"{timestamp}." + raw body); no user: the signature
    over the raw body is the authentication."""
    if not isinstance(args.source, str) or not args.source:
        raise OperationError("INVALID_INPUT_DATA", "source is required", {"field": "source"})
    return {"success": True, **events.receive_webhook(args.source, args.body, args.signature, args.timestamp)}
