"""Authoring from the catalogue in the admin: the step and trigger forms offer the registered types
and carry each type's params schema (drawn as a form in the browser: test_authoring_browser); what
such a form posts is validated by the catalogue, naming the field, with nothing half-stored; "Run
with input" and "Execute now" start executions in test mode through workflow_execute and link to them."""
from __future__ import annotations

import json
import re

import jsonschema
import pytest
from django.contrib.auth import get_user_model
from django.contrib.staticfiles import finders
from django.urls import reverse

from tests.support.waiting import wait_for
from tests.workflows_app.helpers import formset_data
from workflows_app import operations, schemas
from workflows_app.admin.common import execution_url
from workflows_app.admin.widgets import PARAMS_FORM_JS
from workflows_app.models import Execution, Step, Trigger, Workflow

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def staff(client):
    user = get_user_model().objects.create_superuser("author", "author@example.com", "pw")
    client.force_login(user)
    return user


@pytest.fixture
def workflow():
    created = operations.workflow_create(name="authoring-flow", steps=[
        {"name": "guard", "type": "circuit_breaker", "params": {"failure_threshold": 2}},
        {"name": "first", "type": "test_echo", "params": {"value": 1}}],
        triggers=[{"type": "price_change", "symbol": "AAPL", "threshold": 0.02}])
    return Workflow.objects.get(pk=created["workflow_id"])


def change_url(workflow):
    return reverse("admin:workflows_app_workflow_change", args=[workflow.pk])


def embedded_schemas(html: str) -> dict:
    match = re.search(r'<script id="nexus-param-schemas" type="application/json">(.*?)</script>', html, re.S)
    assert match, "the page embeds the params schemas"
    return json.loads(match.group(1))


def select_options(html: str, field_id: str) -> set[str]:
    select = re.search(rf'<select[^>]*id="{field_id}"[^>]*>(.*?)</select>', html, re.S)
    assert select, field_id
    return set(re.findall(r'<option value="([^"]*)"', select.group(1)))


def test_the_forms_offer_the_registered_types_and_carry_their_params_schemas(client, staff, workflow):
    html = client.get(change_url(workflow)).content.decode()
    step_types = {t["name"] for t in schemas.step_type_listing()}
    trigger_types = {t["name"] for t in schemas.trigger_type_listing()}
    assert {"circuit_breaker", "wait", "test_echo"} <= step_types
    assert select_options(html, "id_steps-0-type") == step_types | {""}
    assert select_options(html, "id_triggers-0-type") == trigger_types | {""}
    assert 'data-nexus-params="step"' in html and 'data-nexus-params="trigger"' in html
    embedded = embedded_schemas(html)
    assert embedded["step"]["circuit_breaker"] == next(
        t["params_schema"] for t in schemas.step_type_listing() if t["name"] == "circuit_breaker")
    assert set(embedded["step"]) == step_types and set(embedded["trigger"]) == trigger_types
    # The form library is a pinned asset served from our static files, not a CDN.
    assert PARAMS_FORM_JS in html and finders.find(PARAMS_FORM_JS)
    assert finders.find("workflows_app/admin/params_form.js")
    assert "Run with input" in html and reverse("admin:workflows_app_workflow_run", args=[workflow.pk]) in html


def test_params_from_the_schema_round_trip_to_the_stored_definition(client, staff, workflow):
    html = client.get(change_url(workflow)).content.decode()
    schema = embedded_schemas(html)["step"]["circuit_breaker"]
    trigger_schema = embedded_schemas(html)["trigger"]["price_change"]
    params = {"failure_threshold": 4, "reset_timeout": 30}  # what the form posts: the opted-in params
    settings = {"symbol": "MSFT", "threshold": 0.05, "cooldown": 60}
    jsonschema.validate(params, schema)
    jsonschema.validate(settings, trigger_schema)
    response = client.post(change_url(workflow), formset_data(workflow, **{
        "steps-0-params": json.dumps(params), "triggers-0-params": json.dumps(settings)}))
    assert response.status_code == 302, response.context and [f.errors for f in response.context[
        "inline_admin_formsets"][0].formset.forms]
    workflow.refresh_from_db()
    assert workflow.version == 2
    step = workflow.current_version.definition["steps"][0]
    assert step["params"]["failure_threshold"] == 4 and step["params"]["reset_timeout"] == 30
    jsonschema.validate(step["params"], schema)  # the normalised params still fit the schema
    trigger = workflow.current_version.definition["triggers"][0]
    assert (trigger["symbol"], trigger["threshold"], trigger["cooldown"]) == ("MSFT", 0.05, 60)
    page = client.get(change_url(workflow)).content.decode()
    textarea = re.search(r'<textarea[^>]*id="id_steps-0-params"[^>]*>(.*?)</textarea>', page, re.S).group(1)
    import html as html_lib

    assert json.loads(html_lib.unescape(textarea)) == Step.objects.get(workflow=workflow, name="guard").params


def test_bad_params_are_refused_naming_the_field_and_nothing_is_stored(client, staff, workflow):
    before_steps = list(Step.objects.filter(workflow=workflow).values_list("name", "type", "params"))
    before_triggers = list(Trigger.objects.filter(workflow=workflow).values_list("type", "params"))
    response = client.post(change_url(workflow), formset_data(workflow, priority=9, **{
        "steps-0-params": json.dumps({"failure_threshold": 0}),
        "steps-1-type": "wait", "steps-1-params": json.dumps({"seconds": 10_000_000}),  # > 7 days
        "triggers-0-params": json.dumps({"symbol": "AAPL", "threshold": "a lot"})}))
    assert response.status_code == 200
    steps, triggers = (f.formset for f in response.context["inline_admin_formsets"][:2])
    assert "failure_threshold" in steps.forms[0].errors["params"][0]
    assert "seconds" in steps.forms[1].errors["params"][0]
    assert "threshold" in triggers.forms[0].errors["params"][0]
    html = response.content.decode()
    assert "failure_threshold" in html and "errorlist" in html  # shown in the form
    workflow.refresh_from_db()
    assert workflow.version == 1 and workflow.priority == 5
    assert list(Step.objects.filter(workflow=workflow).values_list("name", "type", "params")) == before_steps
    assert list(Trigger.objects.filter(workflow=workflow).values_list("type", "params")) == before_triggers


def test_run_with_input_starts_a_test_mode_execution_that_a_worker_runs(client, staff, workflow, celery_worker):
    run_url = reverse("admin:workflows_app_workflow_run", args=[workflow.pk])
    page = client.get(run_url)
    assert page.status_code == 200
    form = page.context["form"]
    assert form["test_mode"].value() is True  # on by default
    assert re.search(r'<input[^>]*name="test_mode"[^>]*checked', page.content.decode())

    response = client.post(run_url, {"input_data": '{"symbols": ["AAPL"], "note": "from the admin"}',
                                     "test_mode": "on"}, follow=True)
    execution = Execution.objects.get(workflow=workflow)
    assert response.redirect_chain[-1][0] == change_url(workflow)
    message = " ".join(str(m) for m in response.context["messages"])
    assert f'href="{execution_url(execution.pk)}"' in message and "test mode" in message
    assert execution.test_mode is True
    assert execution.input_data == {"symbols": ["AAPL"], "note": "from the admin", "test_mode": True}
    wait_for(lambda: Execution.objects.get(pk=execution.pk).is_final, timeout=180, message="the worker to finish")
    execution.refresh_from_db()
    assert execution.status == "succeeded", execution.error
    assert "note" in execution.context["first"]["seen"]
    assert client.get(execution_url(execution.pk)).status_code == 200


@pytest.mark.parametrize("posted, field_text", [
    ({"input_data": "[1, 2]", "test_mode": "on"}, "must be a JSON object"),
    ({"input_data": "{not json", "test_mode": "on"}, "Enter a valid JSON"),
    ({"input_data": '{"_engine": 1}', "test_mode": "on"}, "input_data._engine"),
    ({"input_data": '{"test_mode": false}', "test_mode": "on"}, "test_mode"),
])
def test_run_with_bad_input_names_the_field_and_starts_nothing(client, staff, workflow, posted, field_text):
    response = client.post(reverse("admin:workflows_app_workflow_run", args=[workflow.pk]), posted)
    assert response.status_code == 200
    errors = response.context["form"].errors
    assert field_text in " ".join(errors.get("input_data", [])), errors
    assert not Execution.objects.filter(workflow=workflow).exists()


def test_run_with_test_mode_off_is_a_deliberate_choice(client, staff, workflow):
    response = client.post(reverse("admin:workflows_app_workflow_run", args=[workflow.pk]),
                           {"input_data": "{}"}, follow=True)  # the box unticked
    execution = Execution.objects.get(workflow=workflow)
    assert execution.test_mode is False and execution.input_data == {"test_mode": False}
    assert "test mode OFF" in " ".join(str(m) for m in response.context["messages"])


def test_execute_now_runs_in_test_mode_and_links_to_the_execution(client, staff, workflow):
    response = client.post(reverse("admin:workflows_app_workflow_changelist"),
                           {"action": "execute_now", "_selected_action": [workflow.pk]}, follow=True)
    execution = Execution.objects.get(workflow=workflow)
    assert execution.test_mode is True
    message = " ".join(str(m) for m in response.context["messages"])
    assert f'href="{execution_url(execution.pk)}"' in message


def test_run_with_input_action_opens_the_form_for_one_workflow(client, staff, workflow):
    url = reverse("admin:workflows_app_workflow_changelist")
    response = client.post(url, {"action": "run_with_input", "_selected_action": [workflow.pk]})
    assert response.status_code == 302
    assert response["Location"] == reverse("admin:workflows_app_workflow_run", args=[workflow.pk])


def test_run_with_input_of_an_unknown_workflow_is_404(client, staff):
    response = client.get(reverse("admin:workflows_app_workflow_run", args=["00000000-0000-0000-0000-000000000000"]))
    assert response.status_code == 404
