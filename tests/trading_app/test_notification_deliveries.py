"""send_notification and its compensation send_failure_alert deliver to the outbound channels that
take their kinds (a real worker, a real local receiver), keeping their outputs and adding delivery ids."""
from __future__ import annotations

import json

import pytest

from tests.support.receiver import Receiver
from tests.support.waiting import wait_for
from workflows_app import operations
from workflows_app.models import NotificationDelivery, StepRun
from workflows_app.services import notifications

pytestmark = pytest.mark.django_db(transaction=True)
SECRET = "trading-tests-secret-0123"


def test_saga_notification_and_failure_alert_are_delivered(celery_worker, settings):
    settings.NEXUS_SIM_NOW = "2025-09-17T17:00:00Z"
    with Receiver([200]) as hook:
        settings.NEXUS_NOTIFY_CHANNELS = [{"name": "desk", "url": hook.url, "secret": SECRET, "format": "slack",
                                           "kinds": ["notification", "failure_alert"]}]
        created = operations.workflow_create(name="notify-saga", steps=[
            {"name": "send_notification", "compensate": "send_failure_alert",
             "params": {"subject": "signal {signal}"}},
            {"name": "broker_confirmation", "type": "test_fail", "params": {"transient": False}},
        ])
        reply = operations.workflow_execute(workflow_id=created["workflow_id"], input_data={"signal": "BUY"},
                                            **{"async": False})
        assert reply["status"] == "compensated", reply
        listed = operations.notification_deliveries(execution_id=reply["execution_id"], user=None,
                                                    include_attempts=True)
        assert sorted(d["kind"] for d in listed["deliveries"]) == ["failure_alert", "notification"]
        wait_for(lambda: NotificationDelivery.objects.filter(status="success").count() == 2, timeout=90,
                 message="both deliveries sent")
        texts = sorted(json.loads(r["body"])["text"] for r in hook.requests)
        assert texts[0].startswith("[failure_alert] notify-saga: execution") and texts[1] == "[notification] signal BUY"
        for request in hook.requests:
            assert notifications.verify(SECRET, request["body"], request["headers"]["X-Nexus-Timestamp"],
                                        request["headers"]["X-Nexus-Signature"])
        runs = StepRun.objects.filter(execution_id=reply["execution_id"], step_name="send_notification",
                                      status="succeeded")
        note = runs.get(is_compensation=False).result
        alert = runs.get(is_compensation=True).result
        assert note["sent"] and note["subject"] == "signal BUY" and len(note["delivery_ids"]) == 1
        assert alert["kind"] == "failure_alert" and alert["body"]["retracts"] == note["notification_id"]
        assert {*note["delivery_ids"], *alert["delivery_ids"]} == {d["id"] for d in listed["deliveries"]}
