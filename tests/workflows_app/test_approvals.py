"""The `approval` step on a real worker and a real Redis: approved (REST, by the owner), rejected
(the on_reject branch; a failure without it, from the CLI), expired at a clock the test drives
(the timer called with an explicit `now`), cancelled while waiting; who may decide, and a second
decision refused."""
from __future__ import annotations

import json
from datetime import timedelta
from io import StringIO

import pytest
from django.core.management import call_command

from tests.support.api import API, assert_error
from tests.support.waiting import wait_for
from tests.workflows_app.helpers import events
from workflows_app import engine, operations
from workflows_app.engine import wait_until_final
from workflows_app.errors import OperationError
from workflows_app.models import ApprovalRequest, AuditEvent, Execution, StepRun

pytestmark = pytest.mark.django_db(transaction=True)

ORDER = [
    {"name": "size", "type": "transform", "params": {"set": {"symbol": "'AAPL'", "qty": "3 * 4"}}},
    {"name": "confirm", "type": "approval", "params": {
        "summary": "Buy {qty} {symbol}?", "expires_in": 3600, "show": {"notional": "qty * 100"}}},
    {"name": "place", "type": "test_echo", "params": {"value": "order {symbol}"}},
]


def _create(api, name: str, steps: list) -> str:
    reply = api.post(f"{API}/workflows/", {"name": name, "steps": steps}, format="json")
    assert reply.status_code == 201, reply.content[:500]
    return reply.json()["workflow_id"]


def _waiting(api, workflow_id: str) -> str:
    reply = api.post(f"{API}/workflows/{workflow_id}/execute/", {"input_data": {}}, format="json")
    assert reply.status_code == 202, reply.content[:500]
    execution_id = reply.json()["execution_id"]
    wait_for(lambda: Execution.objects.get(pk=execution_id).status == "waiting", timeout=120,
             message="the execution waits at its approval")
    return execution_id


def test_approved_by_the_owner_continues_and_a_second_decision_is_refused(celery_worker, api_a, api_b, alice):
    wf = _create(api_a, "approve-me", ORDER)
    execution_id = _waiting(api_a, wf)
    detail = api_a.get(f"{API}/executions/{execution_id}/").json()
    approval = detail["approval"]
    assert detail["status"] == "waiting" and detail["current_step"] == "confirm" and detail["wake_at"]
    assert approval["status"] == "pending" and approval["summary"] == "Buy 12 AAPL?"
    next_step = approval["subject"]["next_step"]  # the next step's params, rendered with the context
    assert next_step["name"] == "place" and next_step["params"]["value"] == "order AAPL"
    assert approval["subject"]["values"] == {"notional": 1200}
    assert not StepRun.objects.filter(execution_id=execution_id, step_name="place").exists()

    assert_error(api_b.post(f"{API}/executions/{execution_id}/approve/", {}, format="json"), 404,
                 "EXECUTION_NOT_FOUND")  # someone else's execution: not found, and nothing decided
    reply = api_a.post(f"{API}/executions/{execution_id}/approve/", {"comment": "looks right"}, format="json")
    assert reply.status_code == 200, reply.content[:500]
    body = reply.json()
    assert body["decision"] == "approved" and body["approval"]["decided_by"] == "alice"

    execution = wait_until_final(execution_id, 120)
    assert execution.status == "succeeded", execution.error
    assert execution.context["confirm"]["approved"] is True and "place" in execution.context
    request = ApprovalRequest.objects.get(execution_id=execution_id)
    assert request.status == "approved" and request.decided_by == alice and request.comment == "looks right"
    decided = AuditEvent.objects.get(execution_id=execution_id, event="approval_decided").data
    assert decided["decided_by"] == "alice" and decided["user_id"] == alice.pk and decided["decided_at"]
    trail = events(execution)
    assert trail.index("execution_waiting") < trail.index("approval_requested") < trail.index("approval_decided")
    assert trail.count("approval_decided") == 1

    again = assert_error(api_a.post(f"{API}/executions/{execution_id}/reject/", {}, format="json"), 409, "CONFLICT")
    assert "already approved by alice" in again["message"]
    assert ApprovalRequest.objects.get(execution_id=execution_id).status == "approved"


def test_rejected_takes_the_on_reject_branch(celery_worker, api_a):
    steps = [*ORDER[:2], ORDER[2], {"name": "tell", "type": "notify", "params": {"message": "not bought"},
                                    "condition": "confirm.decision != 'approved'"}]
    steps[1] = {**steps[1], "on_reject": "tell"}
    wf = _create(api_a, "reject-branch", steps)
    execution_id = _waiting(api_a, wf)
    reply = operations.execution_reject(execution_id=execution_id, comment="too big")  # MCP and nexus_op call this
    assert reply["decision"] == "rejected" and reply["approval"]["decided_by"] == "local operator"
    execution = wait_until_final(execution_id, 120)
    assert execution.status == "succeeded", execution.error
    assert not StepRun.objects.filter(execution=execution, step_name="place").exists()  # passed over
    assert execution.context["tell"]["message"] == "not bought"
    branch = AuditEvent.objects.get(execution=execution, event="branch_taken").data
    assert branch["on_reject"] == "tell" and branch["passed_over"] == ["place"]


def test_rejected_without_on_reject_fails_from_the_cli(celery_worker, api_a):
    wf = _create(api_a, "reject-fail", ORDER)
    execution_id = _waiting(api_a, wf)
    out = StringIO()
    call_command("nexus_op", "execution_reject", "--args", json.dumps({"execution_id": execution_id}), "--json",
                 stdout=out)
    assert json.loads(out.getvalue())["decision"] == "rejected"
    execution = wait_until_final(execution_id, 120)
    assert execution.status == "failed" and execution.error["error_class"] == "approval_rejected"
    assert execution.error["step"] == "confirm"
    assert not StepRun.objects.filter(execution=execution, step_name="place").exists()


def test_expired_at_a_driven_clock_rejects_by_default(celery_worker, api_a):
    steps = [*ORDER, {"name": "expired_note", "type": "notify", "params": {"message": "expired"}}]
    steps[1] = {**steps[1], "on_reject": "expired_note"}
    wf = _create(api_a, "expire-me", steps)
    execution_id = _waiting(api_a, wf)
    request = ApprovalRequest.objects.get(execution_id=execution_id)
    assert abs((request.expires_at - request.requested_at).total_seconds() - 3600) < 1
    assert engine.resume_due(now=request.expires_at - timedelta(seconds=1)) == []  # not due yet: nothing moves
    assert Execution.objects.get(pk=execution_id).status == "waiting"
    assert engine.resume_due(now=request.expires_at + timedelta(seconds=1)) == [execution_id]
    execution = wait_until_final(execution_id, 120)
    assert execution.status == "succeeded", execution.error
    assert execution.context["confirm"]["decision"] == "expired"
    assert not StepRun.objects.filter(execution=execution, step_name="place").exists()
    request.refresh_from_db()
    assert request.status == "expired" and request.decided_by_label == "timer"
    with pytest.raises(OperationError) as late:
        operations.execution_approve(execution_id=execution_id)
    assert late.value.code == "CONFLICT" and "already expired by timer" in late.value.message


def test_cancelled_while_waiting_cannot_be_decided(celery_worker, api_a):
    wf = _create(api_a, "cancel-me", ORDER)
    execution_id = _waiting(api_a, wf)
    assert api_a.post(f"{API}/executions/{execution_id}/cancel/").json()["status"] == "cancelled"
    execution = Execution.objects.get(pk=execution_id)
    assert execution.status == "cancelled" and execution.wake_at is None
    assert ApprovalRequest.objects.get(execution=execution).status == "cancelled"
    assert StepRun.objects.get(execution=execution, step_name="confirm").error_class == "cancelled"
    assert_error(api_a.post(f"{API}/executions/{execution_id}/approve/", {}, format="json"), 409, "CONFLICT")
    assert engine.resume_due(now=execution.queued_at + timedelta(days=1)) == []


@pytest.mark.parametrize("step, field", [
    ({"name": "a", "type": "approval", "params": {"expires_in": 10 ** 9}}, "steps[0].params.expires_in"),
    ({"name": "a", "type": "approval", "params": {"show": {"x": "__import__('os')"}}}, "steps[0].params.show"),
    ({"name": "a", "type": "approval", "on_reject": "nowhere"}, "steps[0].on_reject"),
    ({"name": "a", "type": "test_noop", "on_reject": "b"}, "steps[0].on_reject"),
    ({"name": "a", "type": "wait", "params": {"seconds": 10 ** 9}}, "steps[0].params.seconds"),
    ({"name": "a", "type": "wait", "params": {"until": "2030-01-01T10:00:00"}}, "steps[0].params.until"),
    ({"name": "a", "type": "wait", "params": {"until": "next tuesday"}}, "steps[0].params.until"),
])
def test_bad_approval_and_wait_definitions_are_refused_naming_the_field(step, field):
    with pytest.raises(OperationError) as refused:
        operations.workflow_create(name="bad", steps=[step, {"name": "b", "type": "test_noop"}])
    assert refused.value.code == "INVALID_DEFINITION"
    assert field in [e["field"] for e in refused.value.details["errors"]], refused.value.details


def test_on_reject_must_jump_forward_and_waits_cannot_run_in_parallel():
    with pytest.raises(OperationError) as backwards:
        operations.workflow_create(name="loop", steps=[{"name": "b", "type": "test_noop"},
                                                       {"name": "a", "type": "approval", "on_reject": "b"}])
    assert "must come after" in backwards.value.details["errors"][0]["message"]
    with pytest.raises(OperationError) as parallel:
        operations.workflow_create(name="par", steps=[{"name": "a", "type": "wait", "group": "g"},
                                                      {"name": "b", "type": "test_noop", "group": "g"}])
    assert parallel.value.details["errors"][0]["field"] == "steps[0]"


def test_admin_actions_decide_through_the_operations(celery_worker, client):
    from django.contrib.auth import get_user_model
    from django.urls import reverse

    client.force_login(get_user_model().objects.create_superuser("root", "root@example.com", "pw"))
    wf = operations.workflow_create(name="admin-approvals", steps=ORDER)["workflow_id"]
    first, second = (operations.workflow_execute(workflow_id=wf)["execution_id"] for _ in range(2))
    wait_for(lambda: Execution.objects.filter(pk__in=[first, second], status="waiting").count() == 2, timeout=120,
             message="two approvals waiting")
    page = client.post(reverse("admin:workflows_app_execution_changelist"),
                       {"action": "approve", "_selected_action": [first]}, follow=True).content.decode()
    assert "Approved" in page
    request = ApprovalRequest.objects.get(execution_id=second)
    page = client.post(reverse("admin:workflows_app_approvalrequest_changelist"),
                       {"action": "reject", "_selected_action": [request.pk]}, follow=True).content.decode()
    assert "Rejected" in page
    assert wait_until_final(first, 120).status == "succeeded"
    assert wait_until_final(second, 120).status == "failed"
    assert ApprovalRequest.objects.get(execution_id=first).decided_by_label == "root"
    page = client.post(reverse("admin:workflows_app_execution_changelist"),
                       {"action": "approve", "_selected_action": [first]}, follow=True).content.decode()
    assert "CONFLICT" in page and "already approved by root" in page  # the refusal is reported, nothing changes
    assert client.get(reverse("admin:workflows_app_approvalrequest_change", args=[request.pk])).status_code == 200


def test_an_approval_is_announced_to_the_notification_channels(celery_worker, api_a, settings):
    from tests.support.receiver import Receiver
    from workflows_app.models import NotificationDelivery

    with Receiver([200]) as hook:
        settings.NEXUS_NOTIFY_CHANNELS = [{"name": "desk", "url": hook.url, "secret": "s3cret-for-tests-0123456789",
                                           "format": "slack", "kinds": ["approval_requested"], "timeout": 10}]
        execution_id = _waiting(api_a, _create(api_a, "announce-me", ORDER))
        delivery = wait_for(lambda: NotificationDelivery.objects.filter(
            execution_id=execution_id, kind="approval_requested", status="success").first(),
            timeout=90, message="the approval's delivery sent")
        assert delivery.channel == "desk" and len(hook.requests) == 1
        assert "Approval requested: Buy 12 AAPL?" in json.loads(hook.requests[0]["body"])["text"]
