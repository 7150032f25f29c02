"""Shared infrastructure (queues, manual events) is staff-only in the core, whatever the face."""
import pytest
from django.contrib.auth import get_user_model

from workflows_app import operations
from workflows_app.errors import OperationError

pytestmark = pytest.mark.django_db


@pytest.mark.parametrize("call, kwargs", [
    ("queue_send", {"queue_name": "trading-signals", "message": {"x": 1}}),
    ("queue_create", {"name": "mine"}),
    ("queue_receive", {"queue_name": "trading-signals"}),
    ("queue_ack", {"queue_name": "trading-signals", "message_ids": ["1-0"]}),
    ("event_ingest", {"kind": "event", "payload": {"name": "x"}}),
])
def test_non_staff_users_cannot_touch_queues_or_inject_events(call, kwargs):
    trader = get_user_model().objects.create_user("trader", password="pw")
    with pytest.raises(OperationError) as caught:
        getattr(operations, call)(user=trader, **kwargs)
    assert caught.value.code == "PERMISSION_DENIED"
