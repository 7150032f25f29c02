"""The update-by-name syntax as the README documents it, through REST and MCP: a step is selected
by its name in brackets (`steps[generate_signals].params.threshold`), by index, or by a quoted name;
a dotted name (`steps.generate_signals...`) is refused naming the path, and nothing is stored."""
from __future__ import annotations

import json

import pytest

from tests.support.api import API, assert_error, client_for, make_user
from tests.workflows_app.mcp_support import mcp_call
from workflows_app import operations
from workflows_app.models import Workflow

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def owner():
    return make_user("trader")


@pytest.fixture
def workflow_id(owner):
    return operations.workflow_create(name="by-name-flow", user=owner, steps=[
        {"name": "fetch", "type": "test_noop"},
        {"name": "generate_signals", "type": "signal_generation", "params": {"threshold": 0.7}}])["workflow_id"]


def stored_threshold(workflow_id):
    workflow = Workflow.objects.get(pk=workflow_id)
    return workflow.version, workflow.current_version.definition["steps"][1]["params"]["threshold"]


def test_rest_updates_a_step_by_name_by_index_and_by_quoted_name(owner, workflow_id):
    api = client_for(owner)
    url = f"{API}/workflows/{workflow_id}/update/"
    reply = api.post(url, {"updates": {"steps[generate_signals].params.threshold": 0.9, "priority": 7}}, format="json")
    assert reply.status_code == 200, reply.content
    body = reply.json()
    assert body["version"] == 2 and body["changed"] == ["steps[generate_signals].params.threshold", "priority"]
    assert stored_threshold(workflow_id) == (2, 0.9)
    for path, value in (("steps[1].params.threshold", 0.8), ("steps[-1].params.threshold", 0.75),
                        ("steps['generate_signals'].params.threshold", 0.85)):
        assert api.post(url, {"updates": {path: value}}, format="json").status_code == 200
    assert stored_threshold(workflow_id) == (5, 0.85)


def test_rest_refuses_a_dotted_step_name_naming_the_path(owner, workflow_id):
    api = client_for(owner)
    reply = api.post(f"{API}/workflows/{workflow_id}/update/",
                     {"updates": {"steps.generate_signals.params.threshold": 0.9}}, format="json")
    error = assert_error(reply, 400, "INVALID_INPUT_DATA")
    assert error["message"] == "steps.generate_signals.params.threshold: 'generate_signals' is not inside an object"
    assert error["details"]["errors"][0]["field"] == "updates.steps.generate_signals.params.threshold"
    missing = api.post(f"{API}/workflows/{workflow_id}/update/",
                       {"updates": {"steps[generate_signal].params.threshold": 0.9}}, format="json")
    assert "no item named 'generate_signal'" in assert_error(missing, 400, "INVALID_INPUT_DATA")["message"]
    assert stored_threshold(workflow_id) == (1, 0.7)


def test_mcp_updates_by_name_and_refuses_the_dotted_form(client, owner, workflow_id):
    result = mcp_call(client, owner, "workflow_update", {
        "workflow_id": workflow_id, "updates": {"steps[generate_signals].params.threshold": 0.9}})
    assert not result.get("isError"), result
    body = json.loads(result["content"][0]["text"])
    assert body["version"] == 2 and body["changed"] == ["steps[generate_signals].params.threshold"]
    refused = mcp_call(client, owner, "workflow_update", {
        "workflow_id": workflow_id, "updates": {"steps.generate_signals.params.threshold": 0.5}})
    assert refused["isError"] is True
    error = json.loads(refused["content"][0]["text"])["error"]
    assert error["code"] == "INVALID_INPUT_DATA" and "'generate_signals' is not inside an object" in error["message"]
    assert stored_threshold(workflow_id) == (2, 0.9)
