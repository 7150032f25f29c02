"""Outbound notifications: signed webhook deliveries with retries and one attempt row per try.

``notify(kind, payload, execution=..., channels=...)`` is the entry point every step (and any app)
calls; ``channels`` holds the configuration, rendering and signature, ``delivery`` the rest.
"""
from workflows_app.services.notifications.channels import Channel, configured, signature, verify
from workflows_app.services.notifications.delivery import DELIVER_TASK, deliver, notify, retry, sweep

__all__ = ["DELIVER_TASK", "Channel", "configured", "deliver", "notify", "retry", "signature", "sweep", "verify"]
