"""Outbound notifications on a real worker, a real Redis and a real local HTTP receiver: attempts
recorded, retries with backoff, signatures a receiver can verify, chat formats, a success never
posted twice, a delivery whose message Redis lost sent by the sweep, test mode sending nothing."""
from __future__ import annotations

import json
from datetime import timedelta

import pytest
from celery import current_app
from django.core.exceptions import ImproperlyConfigured
from django.utils import timezone

from tests.support.receiver import Receiver
from tests.support.waiting import wait_for
from tests.workflows_app.helpers import create, run
from workflows_app import operations
from workflows_app.errors import OperationError
from workflows_app.models import NotificationDelivery
from workflows_app.services import notifications
from workflows_app.services.notifications import delivery as delivery_service

pytestmark = pytest.mark.django_db(transaction=True)
SECRET = "s3cret-for-tests-0123456789"
S = NotificationDelivery.Status


def channel(name, url, **extra):
    return {"name": name, "url": url, "secret": SECRET, "timeout": 10, **extra}


@pytest.fixture
def fast(settings):
    settings.NEXUS_NOTIFY_BACKOFF = 0.2
    settings.NEXUS_NOTIFY_MAX_ATTEMPTS = 5
    return settings


def final(pk, timeout=90):
    return wait_for(lambda: NotificationDelivery.objects.filter(pk=pk, status__in=[S.SUCCESS, S.FAILED]).first(),
                    timeout=timeout, message=f"delivery {pk} final")


def test_fails_twice_then_succeeds_each_attempt_recorded_and_signed(celery_worker, fast):
    with Receiver([500, 500, 200]) as hook:
        fast.NEXUS_NOTIFY_CHANNELS = json.dumps([channel("ops", hook.url)])  # as the environment gives it
        [pk] = notifications.notify("deploy", {"message": "v2 is out", "n": 3})
        delivery = final(pk)
        assert delivery.status == S.SUCCESS and delivery.attempts == 3 and delivery.delivered_at
        rows = list(delivery.attempt_rows.order_by("number"))
        assert [(a.number, a.status_code, a.success) for a in rows] == [(1, 500, False), (2, 500, False),
                                                                       (3, 200, True)]
        assert rows[0].error == "HTTP 500" and rows[2].response_excerpt == "reply 3: 200"
        assert all(a.duration_ms > 0 for a in rows)
        assert hook.count() == 3
        for request in hook.requests:  # what a receiver does: recompute over the raw body with the secret
            headers = request["headers"]
            assert notifications.verify(SECRET, request["body"], headers["X-Nexus-Timestamp"],
                                        headers["X-Nexus-Signature"])
            assert not notifications.verify("another-secret-0123456", request["body"],
                                            headers["X-Nexus-Timestamp"], headers["X-Nexus-Signature"])
            assert headers["X-Nexus-Delivery"] == pk and headers["X-Nexus-Kind"] == "deploy"
        body = json.loads(hook.requests[0]["body"])
        assert body["id"] == pk and body["kind"] == "deploy" and body["payload"] == {"message": "v2 is out", "n": 3}
        # a replayed request (an old timestamp) is refused by the same check
        old = hook.requests[0]["headers"]
        assert not notifications.verify(SECRET, hook.requests[0]["body"], old["X-Nexus-Timestamp"],
                                        old["X-Nexus-Signature"], now=int(old["X-Nexus-Timestamp"]) + 301)


def test_a_delivery_is_not_sent_twice_when_its_task_runs_again(celery_worker, fast):
    with Receiver([200]) as hook:
        fast.NEXUS_NOTIFY_CHANNELS = [channel("ops", hook.url)]
        [pk] = notifications.notify("deploy", {"message": "once"})
        assert final(pk).status == S.SUCCESS
        again = current_app.send_task(notifications.DELIVER_TASK, args=(pk,)).get(timeout=90)
        assert again == {"delivery_id": pk, "sent": False, "status": "success"}
        assert hook.count() == 1 and NotificationDelivery.objects.get(pk=pk).attempt_rows.count() == 1


def test_slack_and_telegram_bodies_and_subscriptions(celery_worker, fast):
    with Receiver([200]) as hook:
        fast.NEXUS_NOTIFY_CHANNELS = [channel("slack", hook.url + "/slack", format="slack"),
                                      channel("tg", hook.url + "/tg", format="telegram", chat_id="-100123"),
                                      channel("other", hook.url + "/other", kinds=["trade"])]
        ids = notifications.notify("alert", {"subject": "AAPL stop hit"})
        assert len(ids) == 2  # `other` takes only `trade`
        for pk in ids:
            assert final(pk).status == S.SUCCESS
        bodies = {r["path"].rsplit("/", 1)[1]: json.loads(r["body"]) for r in hook.requests}
        assert bodies == {"slack": {"text": "[alert] AAPL stop hit"},
                          "tg": {"chat_id": "-100123", "text": "[alert] AAPL stop hit"}}


def test_a_delivery_whose_message_redis_lost_is_sent_by_the_sweep(celery_worker, fast):
    with Receiver([200]) as hook:
        fast.NEXUS_NOTIFY_CHANNELS = [channel("ops", hook.url)]
        ops = notifications.configured()["ops"]
        # accepted (the row notify writes) but its message never reached a worker: Redis lost it
        lost = delivery_service._record(ops, "deploy", {"message": "lost"}, None, None, False)
        NotificationDelivery.objects.filter(pk=lost.pk).update(next_attempt_at=timezone.now() - timedelta(minutes=5))
        fresh = delivery_service._record(ops, "deploy", {"message": "not yet stale"}, None, None, False)
        # claimed by a worker that died mid-send (its lease ran out), and one a live worker still holds
        abandoned = delivery_service._record(ops, "deploy", {"message": "abandoned"}, None, None, False)
        held = delivery_service._record(ops, "deploy", {"message": "held"}, None, None, False)
        NotificationDelivery.objects.filter(pk=abandoned.pk).update(
            status=S.SENDING, attempts=1, lease_until=timezone.now() - timedelta(seconds=1))
        NotificationDelivery.objects.filter(pk=held.pk).update(
            status=S.SENDING, attempts=1, lease_until=timezone.now() + timedelta(minutes=2))
        reply = current_app.send_task("nexus.maintenance.sweep_notifications").get(timeout=90)
        assert reply == {"requeued": 2}
        assert final(lost.pk).status == S.SUCCESS and final(abandoned.pk).attempts == 2
        assert sorted(json.loads(r["body"])["payload"]["message"] for r in hook.requests) == ["abandoned", "lost"]
        assert NotificationDelivery.objects.get(pk=held.pk).status == S.SENDING
        assert NotificationDelivery.objects.get(pk=fresh.pk).status == S.PENDING  # not touched by this sweep


def test_exhausted_attempts_fail_then_retry_reopens(celery_worker, fast):
    with Receiver([503, 503, 200]) as hook:
        fast.NEXUS_NOTIFY_CHANNELS = [channel("ops", hook.url, max_attempts=2)]
        [pk] = notifications.notify("deploy", {"message": "x"})
        failed = final(pk)
        assert failed.status == S.FAILED and failed.attempts == 2 and failed.last_error == "HTTP 503"
        reopened = operations.notification_retry(delivery_id=pk, user=None)
        assert reopened["retried"] and reopened["status"] == "pending"
        with pytest.raises(OperationError) as refused:  # only a failed delivery is re-opened
            operations.notification_retry(delivery_id=pk, user=None)
        assert refused.value.code == "CONFLICT" and refused.value.details["field"] == "delivery_id"
        done = wait_for(lambda: NotificationDelivery.objects.filter(pk=pk, status=S.SUCCESS).first(), timeout=90)
        assert done.attempts == 3 and hook.count() == 3


def test_an_unreachable_receiver_records_the_error_without_the_url(celery_worker, fast):
    from tests.support.processes import free_port

    url = f"http://127.0.0.1:{free_port()}/path-with-token-abc123"
    fast.NEXUS_NOTIFY_CHANNELS = [channel("down", url, max_attempts=1)]
    [pk] = notifications.notify("deploy", {"message": "x"})
    delivery = final(pk)
    attempt = delivery.attempt_rows.get()
    assert delivery.status == S.FAILED and attempt.status_code is None and "ConnectionError" in attempt.error
    assert "token-abc123" not in attempt.error and SECRET not in attempt.error


def test_notify_step_delivers_and_test_mode_sends_nothing(celery_worker, fast):
    with Receiver([200]) as hook:
        fast.NEXUS_NOTIFY_CHANNELS = [channel("ops", hook.url, kinds=["notify"])]
        wf = create("notify-out", [{"name": "tell", "type": "notify", "params": {"message": "sig {signal}"}}])
        live = run(wf, {"signal": "BUY"})
        assert live.status == "succeeded", live.error
        out = live.step_runs.get(step_name="tell").result
        assert out["notified"] and out["message"] == "sig BUY" and len(out["delivery_ids"]) == 1
        assert final(out["delivery_ids"][0]).execution_id == live.pk
        paper = run(wf, {"signal": "SELL", "test_mode": True})
        [skipped] = paper.step_runs.get(step_name="tell").result["delivery_ids"]
        assert NotificationDelivery.objects.get(pk=skipped).status == S.SKIPPED
        assert hook.count() == 1  # only the live run reached the receiver
        listed = operations.notification_deliveries(execution_id=str(paper.pk), user=None)
        assert [d["id"] for d in listed["deliveries"]] == [skipped] and listed["deliveries"][0]["status"] == "skipped"
        unknown = create("notify-nowhere", [{"name": "tell", "type": "notify", "params": {"channels": ["nope"]}}])
        failed = run(unknown)
        assert failed.status == "failed" and failed.step_runs.get(step_name="tell").error_class == "invalid_notification"


def test_bad_input_is_refused_naming_the_field_and_nothing_is_stored(settings):
    settings.NEXUS_NOTIFY_CHANNELS = [channel("ops", "http://127.0.0.1:9/x")]
    settings.NEXUS_NOTIFY_MAX_PAYLOAD_BYTES = 1000
    settings.NEXUS_NOTIFY_CHANNELS.append(channel("chat", "http://127.0.0.1:9/y", format="slack"))
    for call, field in ((lambda: notifications.notify("k", {"message": "x" * 2000}), "payload"),
                        (lambda: notifications.notify("k", {"m": "x" * 2000}, channels=["chat"]), "payload"),
                        (lambda: notifications.notify("k", {}, channels=[{"name": "ops"}]), "channels"),
                        (lambda: notifications.notify("k", {}, channels=["nope"]), "channels"),
                        (lambda: notifications.notify("", {}), "kind")):
        with pytest.raises(OperationError) as refused:
            call()
        assert refused.value.details["field"] == field
    assert not NotificationDelivery.objects.exists()
    settings.NEXUS_NOTIFY_CHANNELS = '[{"name": "t", "url": "http://h/", "secret": "0123456789abcdef", ' \
                                     '"format": "telegram"}]'
    with pytest.raises(ImproperlyConfigured, match=r"NEXUS_NOTIFY_CHANNELS\[0\]"):
        notifications.configured()
    with pytest.raises(OperationError) as refused:
        operations.notification_deliveries(status="sent", user=None)
    assert refused.value.details["field"] == "status"


def test_deliveries_are_visible_to_their_workflow_owner_and_over_rest(settings, alice, bob, api_a, api_b):
    settings.NEXUS_NOTIFY_CHANNELS = [channel("ops", "http://127.0.0.1:9/x")]
    wf = operations.workflow_create(name="mine", steps=[{"name": "t", "type": "transform"}], user=alice)
    from workflows_app.models import Execution, Workflow

    workflow = Workflow.objects.get(pk=wf["workflow_id"])
    execution = Execution.objects.create(workflow=workflow, version=workflow.versions.first(), owner=alice)
    [mine] = notifications.notify("deploy", {"message": "a"}, execution=execution)
    notifications.notify("deploy", {"message": "system"})
    reply = api_a.post("/api/v1/operations/notification_deliveries/", {"kind": "deploy"}, format="json")
    assert reply.status_code == 200, reply.content
    assert [d["id"] for d in reply.json()["deliveries"]] == [mine]
    assert api_b.post("/api/v1/operations/notification_deliveries/", {}, format="json").json()["total"] == 0
    assert operations.notification_deliveries(user=None, limit=1)["total"] == 2


def test_admin_shows_attempts_inline_and_retries_a_failed_delivery(client, celery_worker, fast):
    from django.contrib.auth import get_user_model
    from django.urls import reverse

    client.force_login(get_user_model().objects.create_superuser("admin", "admin@example.com", "pw"))
    with Receiver([500, 200]) as hook:
        fast.NEXUS_NOTIFY_CHANNELS = [channel("ops", hook.url, max_attempts=1)]
        [pk] = notifications.notify("deploy", {"message": "admin"})
        assert final(pk).status == S.FAILED
        page = client.get(reverse("admin:workflows_app_notificationdelivery_change", args=[pk])).content.decode()
        assert "reply 1: 500" in page and "HTTP 500" in page  # the attempt, inline
        response = client.post(reverse("admin:workflows_app_notificationdelivery_changelist"),
                               {"action": "retry", "_selected_action": [pk]}, follow=True)
        assert "Retrying deploy -&gt; ops" in response.content.decode()
        done = wait_for(lambda: NotificationDelivery.objects.filter(pk=pk, status=S.SUCCESS).first(), timeout=90)
        assert done.attempts == 2 and hook.count() == 2


def test_sends_run_on_the_notifications_queue_and_beat_sweeps_on_maintenance(settings):
    from workflows_app.registry import registry

    assert "notifications" in settings.NEXUS_QUEUES  # a worker without -Q (Procfile, compose) consumes it
    route = current_app.amqp.router.route({}, notifications.DELIVER_TASK)
    assert route["queue"].name == "notifications"
    assert current_app.amqp.router.route({}, "nexus.maintenance.sweep_notifications")["queue"].name == "maintenance"
    job = registry.beat_jobs["nexus-notification-sweep"]
    assert job.entry()["task"] == "nexus.maintenance.sweep_notifications" and job.entry()["schedule"] == 30.0
