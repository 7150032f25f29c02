"""Outbound notification operations: list deliveries (with their attempts), retry a failed one."""
from __future__ import annotations

import uuid
from typing import Literal

from pydantic import Field

from workflows_app import filters, selectors
from workflows_app.errors import OperationError
from workflows_app.models import NotificationDelivery
from workflows_app.operations.catalogue import Permission, catalogue
from workflows_app.operations.fields import Args, Flag, Int, Timestamp, execution_ref
from workflows_app.services import notifications


class DeliveriesArgs(Args):
    status: Literal[tuple(NotificationDelivery.Status.values)] = None
    kind: str = Field(None, max_length=100)
    channel: str = Field(None, max_length=100)
    execution_id: str = execution_ref(required=False)
    created_after: Timestamp = None
    include_attempts: Flag = False
    limit: Int = Field(50, ge=1, le=500)
    offset: Int = Field(0, ge=0, le=10**9)


@catalogue.operation(DeliveriesArgs, description="List outbound notification deliveries (newest first), with "
                                                 "their attempts on request; filter by status, kind, channel, "
                                                 "execution.")
def notification_deliveries(args: DeliveriesArgs, user) -> dict:
    qs = filters.apply(filters.DeliveryFilter, selectors.visible_deliveries(user).order_by("-created_at"),
                       args.model_dump(include={"status", "kind", "channel", "execution_id", "created_after"}))
    total = qs.count()
    rows = [selectors.delivery_row(d, include_attempts=args.include_attempts)
            for d in qs[args.offset:args.offset + args.limit]]
    return {"success": True, "deliveries": rows, "count": len(rows), "total": total}


class RetryArgs(Args):
    delivery_id: str = Field(..., json_schema_extra={"format": "uuid"})


@catalogue.operation(RetryArgs, permission=Permission.STAFF, denied="retry notification deliveries",
                     description="Send a failed notification delivery again (another round of attempts).")
def notification_retry(args: RetryArgs, user) -> dict:
    try:
        pk = uuid.UUID(str(args.delivery_id))
    except ValueError:
        raise OperationError("INVALID_INPUT_DATA", "delivery_id must be a UUID", {"field": "delivery_id"}) from None
    delivery = NotificationDelivery.objects.filter(pk=pk).first()
    if delivery is None:
        raise OperationError("INVALID_INPUT_DATA", f"no delivery {pk}", {"field": "delivery_id"})
    return {"success": True, **notifications.retry(delivery)}
