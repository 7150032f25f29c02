"""The admin: workflows edited through Step/Trigger inlines checked by the engine's validator (a
bad param is an error on that field), saved as new versions; actions through the operations;
executions read-only with step runs and audit events; dead letters with redrive."""
from __future__ import annotations

import pytest
from django.contrib.auth import get_user_model
from django.urls import reverse

from tests.workflows_app.helpers import formset_data
from workflows_app import operations
from workflows_app.models import DeadLetter, Execution, Step, Workflow

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def staff(client):
    user = get_user_model().objects.create_superuser("admin", "admin@example.com", "pw")
    client.force_login(user)
    return user


@pytest.fixture
def workflow():
    created = operations.workflow_create(name="admin-flow", steps=[
        {"name": "first", "type": "test_echo", "params": {"value": 1}},
        {"name": "generate_signals", "type": "test_noop"}], triggers=[{"type": "schedule", "cron": "0 9 * * 1-5"}])
    return Workflow.objects.get(pk=created["workflow_id"])


def change_url(workflow):
    return reverse("admin:workflows_app_workflow_change", args=[workflow.pk])


def test_a_bad_param_is_a_form_error_on_that_field_and_nothing_is_stored(client, staff, workflow):
    response = client.post(change_url(workflow), formset_data(workflow, **{"steps-0-params": '{"value": 1, "failures": -3}'}))
    assert response.status_code == 200
    step_forms = response.context["inline_admin_formsets"][0].formset.forms
    assert "params" in step_forms[0].errors
    assert "failures" in step_forms[0].errors["params"][0]
    assert not step_forms[1].errors
    workflow.refresh_from_db()
    assert workflow.version == 1 and workflow.steps.get(name="first").params["failures"] == 0


def test_unknown_step_type_and_bad_cron_are_errors_on_their_fields(client, staff, workflow):
    response = client.post(change_url(workflow), formset_data(workflow, **{
        "steps-1-type": "no_such_type", "triggers-0-params": '{"cron": "every day"}'}))
    assert response.status_code == 200
    steps, triggers = (f.formset for f in response.context["inline_admin_formsets"][:2])
    assert "unknown step type" in steps.forms[1].errors["type"][0]
    assert "cron" in triggers.forms[0].errors["params"][0]
    assert Workflow.objects.get(pk=workflow.pk).version == 1


def test_a_valid_change_creates_a_new_version(client, staff, workflow):
    response = client.post(change_url(workflow), formset_data(workflow, **{
        "steps-0-params": '{"value": 42}', "priority": 7}))
    assert response.status_code == 302, response.context and response.context["adminform"].form.errors
    workflow.refresh_from_db()
    assert workflow.version == 2 and workflow.priority == 7
    definition = workflow.current_version.definition
    assert definition["steps"][0]["params"]["value"] == 42
    assert sorted(workflow.current_version.changed_paths) == ["priority", "steps"]
    assert Step.objects.get(workflow=workflow, name="first").params["value"] == 42


def test_adding_a_workflow_goes_through_workflow_create(client, staff):
    data = {"name": "added-in-admin", "description": "", "priority": 5, "queue": "workflows", "metadata": "{}",
            "steps-TOTAL_FORMS": 1, "steps-INITIAL_FORMS": 0, "steps-MIN_NUM_FORMS": 0, "steps-MAX_NUM_FORMS": 1000,
            "steps-0-position": "", "steps-0-name": "only", "steps-0-type": "test_noop", "steps-0-params": "{}",
            "steps-0-actions": "[]", "steps-0-retry": "{}",
            "triggers-TOTAL_FORMS": 0, "triggers-INITIAL_FORMS": 0, "triggers-MIN_NUM_FORMS": 0,
            "triggers-MAX_NUM_FORMS": 1000, "versions-TOTAL_FORMS": 0, "versions-INITIAL_FORMS": 0,
            "versions-MIN_NUM_FORMS": 0, "versions-MAX_NUM_FORMS": 1000}
    response = client.post(reverse("admin:workflows_app_workflow_add"), data)
    assert response.status_code == 302
    workflow = Workflow.objects.get(name="added-in-admin")
    assert workflow.version == 1 and workflow.owner == staff and workflow.steps.count() == 1


def test_actions_execute_pause_resume_duplicate(client, staff, workflow, celery_worker):
    url = reverse("admin:workflows_app_workflow_changelist")
    client.post(url, {"action": "pause", "_selected_action": [workflow.pk]})
    assert Workflow.objects.get(pk=workflow.pk).status == "paused"
    client.post(url, {"action": "resume", "_selected_action": [workflow.pk]})
    assert Workflow.objects.get(pk=workflow.pk).status == "active"
    client.post(url, {"action": "duplicate", "_selected_action": [workflow.pk]})
    copy = Workflow.objects.get(name="admin-flow-copy")
    assert copy.current_version.definition["steps"] == workflow.current_version.definition["steps"]
    client.post(url, {"action": "execute_now", "_selected_action": [workflow.pk]})
    execution = Execution.objects.get(workflow=workflow)
    from tests.support.waiting import wait_for

    wait_for(lambda: Execution.objects.get(pk=execution.pk).is_final, message="execution to finish")
    assert Execution.objects.get(pk=execution.pk).status == "succeeded"

    page = client.get(reverse("admin:workflows_app_execution_change", args=[execution.pk]))
    assert page.status_code == 200
    html = page.content.decode()
    assert "workflow_started" in html and "generate_signals" in html  # audit events and step runs inlines
    assert client.get(reverse("admin:workflows_app_execution_add")).status_code == 403


def test_dead_letter_redrive_action(client, staff, celery_worker):
    created = operations.workflow_create(name="dl-flow", steps=[
        {"name": "boom", "type": "test_fail", "params": {"transient": False, "error_class": "broker_rejected"}}])
    reply = operations.workflow_execute(workflow_id=created["workflow_id"], **{"async": False})
    assert reply["status"] == "failed"
    letter = DeadLetter.objects.get(execution_id=reply["execution_id"])
    response = client.post(reverse("admin:workflows_app_deadletter_changelist"),
                           {"action": "redrive", "_selected_action": [letter.pk]}, follow=True)
    assert "Redrove 1 dead letter" in response.content.decode()
    assert DeadLetter.objects.get(pk=letter.pk).status == "redriven"


def test_admin_pages_and_ops_links_render(client, staff, workflow, settings):
    settings.NEXUS_FLOWER_URL = "http://flower.example:5555/"
    index = client.get(reverse("admin:index")).content.decode()
    assert "http://flower.example:5555/" in index and reverse("admin:django_celery_beat_periodictask_changelist") in index
    listing = client.get(reverse("admin:workflows_app_workflow_changelist")).content.decode()
    assert "http://flower.example:5555/" in listing and "admin-flow" in listing
    change = client.get(change_url(workflow)).content.decode()
    assert "generate_signals" in change and "0 9 * * 1-5" in change
    for name in ("execution", "deadletter", "agent", "auditevent", "messagequeue"):
        assert client.get(reverse(f"admin:workflows_app_{name}_changelist")).status_code == 200


def test_saving_only_the_priority_changes_only_the_priority(client, staff):
    created = operations.workflow_create(name="keep-flow", steps=[
        {"name": "a", "type": "test_noop", "description": "kept through admin saves"},
        {"name": "b", "type": "test_noop", "parallel": True}, {"name": "c", "type": "test_noop", "parallel": True}])
    workflow = Workflow.objects.get(pk=created["workflow_id"])
    before = workflow.current_version.definition["steps"]
    response = client.post(change_url(workflow), formset_data(workflow, priority=9))
    assert response.status_code == 302
    workflow.refresh_from_db()
    assert workflow.version == 2 and workflow.current_version.changed_paths == ["priority"]
    assert workflow.current_version.definition["steps"] == before


def test_a_definition_level_error_lands_on_the_main_form(client, staff, workflow):
    response = client.post(change_url(workflow), formset_data(workflow, name="bad name!"))
    assert response.status_code == 200
    assert "name" in response.context["adminform"].form.errors
    assert Workflow.objects.get(pk=workflow.pk).name == "admin-flow"


def test_changing_the_owner_goes_through_the_operation_and_is_audited(client, staff, workflow):
    from workflows_app.models import AuditEvent

    trader = get_user_model().objects.create_user("trader", "t@example.com", "pw")
    response = client.post(reverse("admin:workflows_app_workflow_change", args=[workflow.pk]),
                           formset_data(workflow, owner=trader.pk))
    assert response.status_code == 302
    assert Workflow.objects.get(pk=workflow.pk).owner == trader
    event = AuditEvent.objects.get(workflow_id=workflow.pk, event="workflow_owner_changed")
    assert event.data == {"previous_owner_id": None, "owner_id": trader.pk, "by": staff.pk}
    assert Workflow.objects.get(pk=workflow.pk).version == workflow.version  # not a definition change


def test_workflow_set_owner_is_staff_only_and_names_a_bad_user(workflow):
    from workflows_app.errors import OperationError

    trader = get_user_model().objects.create_user("trader2", "t2@example.com", "pw")
    with pytest.raises(OperationError) as denied:
        operations.workflow_set_owner(workflow_id=str(workflow.pk), owner_id=trader.pk, user=trader)
    assert denied.value.code == "PERMISSION_DENIED"
    with pytest.raises(OperationError) as bad:
        operations.workflow_set_owner(workflow_id=str(workflow.pk), owner_id=999999)
    assert bad.value.code == "INVALID_INPUT_DATA" and bad.value.details == {"field": "owner_id"}
    assert Workflow.objects.get(pk=workflow.pk).owner is None


def test_the_workflow_page_shows_a_schedules_next_firings_and_today(client, staff):
    created = operations.workflow_create(name="admin-market", steps=[{"name": "s", "type": "test_noop"}],
                                         triggers=[{"type": "market_schedule", "exchange": "XNYS", "at": "open+5m"}])
    page = client.get(reverse("admin:workflows_app_workflow_change", args=[created["workflow_id"]]))
    assert page.status_code == 200
    body = page.content.decode()
    assert "next firings / today" in body.lower()
    status = operations.workflow_status(workflow_id=created["workflow_id"])["triggers"][0]
    assert all(at in body for at in status["upcoming"]) and len(status["upcoming"]) == 5
