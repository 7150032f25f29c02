"""The execution view's data (execution_timeline), the links every reply naming an execution carries,
the re-run from a chosen step, and the page's access and actions - against a real worker and Redis."""
from __future__ import annotations

import pytest
from django.test import Client

import tests.workflows_app.support  # noqa: F401 - the test step types
from tests.support.waiting import wait_for
from tests.workflows_app.support import client as support_redis
from workflows_app import operations
from workflows_app.errors import OperationError
from workflows_app.models import Execution, StepRun
from workflows_app.selectors.timeline import PREVIEW_BYTES

pytestmark = pytest.mark.django_db(transaction=True)

BIG = "x" * (PREVIEW_BYTES * 3)


def _failing_workflow(user, name="view-flow"):
    return operations.workflow_create(user=user, name=name, steps=[
        {"name": "fetch", "type": "test_noop"},
        {"name": "wobble", "type": "test_flaky", "params": {"failures": 1, "tag": name}},
        {"name": "big", "type": "test_echo", "params": {"value": BIG}},
        {"name": "guarded", "type": "test_noop", "condition": "fetch.ok == False"},
        {"name": "explode", "type": "test_fail", "params": {"transient": False, "error_class": "broker_rejected"}},
    ])["workflow_id"]


def test_timeline_shows_each_attempt_output_once_and_the_path(celery_worker, alice):
    support_redis().flushdb()
    workflow_id = _failing_workflow(alice)
    started = operations.workflow_execute(user=alice, workflow_id=workflow_id, input_data={"test_mode": True},
                                          **{"async": False, "timeout": 120})
    assert started["status"] == "failed"
    assert started["execution_url"] == f"/ui/executions/{started['execution_id']}/"
    reply = operations.execution_timeline(user=alice, execution_id=started["execution_id"])
    assert reply["execution_url"] == started["execution_url"]
    attempts = [(a["step"], a["attempt"], a["status"]) for a in reply["attempts"]]
    assert ("wobble", 1, "retrying") in attempts and ("wobble", 2, "succeeded") in attempts
    assert ("explode", 1, "failed") in attempts
    nodes = {n["name"]: n for g in reply["graph"] for n in g["steps"]}
    assert nodes["fetch"]["taken"] and nodes["fetch"]["output"]["value"] == {"ok": True, "step": "fetch"}
    assert nodes["wobble"]["attempts"] == 2 and nodes["wobble"]["state"] == "succeeded"
    assert nodes["guarded"]["state"] == "skipped" and not nodes["guarded"]["taken"]
    assert nodes["guarded"]["condition"] == "fetch.ok == False"
    assert nodes["explode"]["state"] == "failed" and nodes["explode"]["error_class"] == "broker_rejected"
    big = nodes["big"]["output"]
    assert big["truncated"] and big["bytes"] > PREVIEW_BYTES * 3 and len(big["preview"]) <= PREVIEW_BYTES
    assert nodes["big"]["input"]["truncated"]  # its params are large too: cut the same way
    status = operations.workflow_status(user=alice, execution_id=started["execution_id"])
    assert status["execution_url"] == started["execution_url"]
    retried = operations.execution_retry(user=alice, execution_id=started["execution_id"])
    assert retried["execution_url"] == started["execution_url"]


def test_rerun_from_a_step_with_edited_input(celery_worker, alice, bob):
    created = operations.workflow_create(user=alice, name="rerun-flow", steps=[
        {"name": "first", "type": "test_noop"},
        {"name": "second", "type": "test_echo", "params": {"value": 1}},
    ])
    done = operations.workflow_execute(user=alice, workflow_id=created["workflow_id"], input_data={"test_mode": True},
                                       **{"async": False, "timeout": 120})
    assert done["status"] == "succeeded"
    with pytest.raises(OperationError) as refused:
        operations.execution_rerun(user=alice, execution_id=done["execution_id"], from_step="nope")
    assert refused.value.code == "INVALID_INPUT_DATA" and refused.value.details["field"] == "from_step"
    with pytest.raises(OperationError) as hidden:
        operations.execution_rerun(user=bob, execution_id=done["execution_id"])
    assert hidden.value.code == "EXECUTION_NOT_FOUND"
    # The input may not loosen test mode: the re-run stays in test mode.
    rerun = operations.execution_rerun(user=alice, execution_id=done["execution_id"], from_step="second",
                                       input_data={"note": "edited", "test_mode": False})
    assert rerun["rerun_of"] == done["execution_id"] and rerun["test_mode"] is True
    assert rerun["execution_url"] == f"/ui/executions/{rerun['execution_id']}/"
    final = operations.workflow_status(user=alice, execution_id=rerun["execution_id"])
    wait_for(lambda: Execution.objects.get(pk=rerun["execution_id"]).is_final, timeout=120, message="re-run final")
    new = Execution.objects.get(pk=rerun["execution_id"])
    assert new.status == "succeeded", new.error
    assert list(StepRun.objects.filter(execution=new).values_list("step_name", flat=True)) == ["second"]
    seen = new.context["second"]["seen"]
    assert "first" in seen and "note" in seen  # the carried output and the edited input
    timeline = operations.execution_timeline(user=alice, execution_id=rerun["execution_id"])
    nodes = {n["name"]: n for g in timeline["graph"] for n in g["steps"]}
    assert nodes["first"]["state"] == "carried" and nodes["first"]["output"]["value"] == {"ok": True, "step": "first"}
    assert timeline["execution"]["rerun_of_url"] == done["execution_url"]
    assert final["execution_id"] == rerun["execution_id"]


def test_page_access_and_guarded_actions(celery_worker, alice, bob):
    created = operations.workflow_create(user=alice, name="page-flow", steps=[
        {"name": "nap", "type": "test_record", "params": {"sleep": 3}}])
    started = operations.workflow_execute(user=alice, workflow_id=created["workflow_id"])
    url = started["execution_url"]
    anonymous = Client()
    assert anonymous.get(url)["Location"].startswith("/ui/login/?next=")  # to the login page
    # A user who is not staff logs in there and follows their own execution.
    login = anonymous.post("/ui/login/", {"username": "alice", "password": "pw-alice", "next": url})
    assert login.status_code == 302 and login["Location"] == url
    assert anonymous.get(url).status_code == 200
    anonymous.logout()
    assert anonymous.get(url + "data.json").status_code == 401
    other = Client()
    other.force_login(bob)
    assert other.get(url).status_code == 404  # someone else's execution is not found
    assert other.get(url + "data.json").status_code == 404
    owner = Client(enforce_csrf_checks=True)
    owner.force_login(alice)
    page = owner.get(url)
    assert page.status_code == 200 and b"plotly.min.js" in page.content and b"timeline-data" in page.content
    data = owner.get(url + "data.json").json()
    assert data["success"] and data["execution"]["workflow_name"] == "page-flow"
    assert owner.post(url + "action/", {"action": "cancel"}).status_code == 403  # no CSRF token
    token = page.cookies["csrftoken"].value if "csrftoken" in page.cookies else owner.cookies["csrftoken"].value
    answer = owner.post(url + "action/", {"action": "cancel", "csrfmiddlewaretoken": token})
    assert answer.status_code == 302 and answer["Location"] == url
    assert Execution.objects.get(pk=started["execution_id"]).status == "cancelled"
    bad = owner.post(url + "action/", {"action": "rerun", "from_step": "nap", "input_data": "{not json",
                                       "csrfmiddlewaretoken": token}, follow=True)
    assert b"input_data is not JSON" in bad.content


def test_timeline_shows_compensations_and_child_executions(celery_worker):
    saga = operations.workflow_create(name="view-saga", steps=[
        {"name": "reserve", "type": "test_record", "params": {"tag": "view-saga"}, "compensate": "test_undo"},
        {"name": "place", "type": "test_fail", "params": {"transient": False}},
    ])
    done = operations.workflow_execute(workflow_id=saga["workflow_id"], **{"async": False, "timeout": 120})
    assert done["status"] == "compensated"
    timeline = operations.execution_timeline(execution_id=done["execution_id"])
    compensation = [a for a in timeline["attempts"] if a["compensation"]]
    assert [(a["step"], a["type"], a["status"]) for a in compensation] == [("reserve", "test_undo", "succeeded")]
    nodes = {n["name"]: n for g in timeline["graph"] for n in g["steps"]}
    assert nodes["reserve"]["state"] == "compensated" and nodes["reserve"]["compensate"] == "test_undo"

    operations.workflow_create(name="view-child", steps=[{"name": "inner", "type": "test_noop"}])
    parent = operations.workflow_create(name="view-parent", steps=[
        {"name": "scan", "type": "subprocess", "workflow_id": "view-child"},
        {"name": "fan", "type": "test_noop", "group": "g"}, {"name": "out", "type": "test_noop", "group": "g"}])
    done = operations.workflow_execute(workflow_id=parent["workflow_id"], **{"async": False, "timeout": 120})
    assert done["status"] == "succeeded"
    timeline = operations.execution_timeline(execution_id=done["execution_id"])
    [child] = timeline["children"]
    assert child["parent_step"] == "scan" and child["workflow_name"] == "view-child"
    assert child["execution_url"] == f"/ui/executions/{child['execution_id']}/"
    groups = timeline["graph"]
    assert groups[0]["steps"][0]["subprocess"] == "view-child"
    assert groups[0]["steps"][0]["child_execution_id"] == child["execution_id"]
    assert groups[1]["parallel"] and [n["name"] for n in groups[1]["steps"]] == ["fan", "out"]
    inner = operations.execution_timeline(execution_id=child["execution_id"])
    assert inner["execution"]["parent_execution_url"] == done["execution_url"]


def test_rest_timeline_and_rerun_routes(celery_worker, alice, api_a, api_b):
    from tests.support.api import API, assert_error

    created = operations.workflow_create(user=alice, name="rest-rerun", steps=[
        {"name": "a", "type": "test_noop"}, {"name": "b", "type": "test_echo", "params": {"value": 2}}])
    done = operations.workflow_execute(user=alice, workflow_id=created["workflow_id"], **{"async": False, "timeout": 120})
    timeline = api_a.get(f"{API}/executions/{done['execution_id']}/timeline/")
    assert timeline.status_code == 200 and timeline.json()["execution_url"] == done["execution_url"]
    assert_error(api_b.get(f"{API}/executions/{done['execution_id']}/timeline/"), 404, "EXECUTION_NOT_FOUND")
    bad = assert_error(api_a.post(f"{API}/executions/{done['execution_id']}/rerun/", {"from_step": "zz"}, format="json"),
                       400, "INVALID_INPUT_DATA")
    assert bad["details"]["field"] == "from_step"
    reply = api_a.post(f"{API}/executions/{done['execution_id']}/rerun/", {"from_step": "b", "input_data": {"k": 1}},
                       format="json")
    assert reply.status_code == 200, reply.content
    new_id = reply.json()["execution_id"]
    wait_for(lambda: Execution.objects.get(pk=new_id).is_final, timeout=120, message="re-run final")
    assert Execution.objects.get(pk=new_id).status == "succeeded"
    # The page's own re-run form goes through the same operation.
    page = Client()
    page.force_login(alice)
    answer = page.post(f"/ui/executions/{new_id}/action/", {"action": "rerun", "from_step": "a", "input_data": '{"k": 2}'})
    assert answer.status_code == 302 and answer["Location"] != f"/ui/executions/{new_id}/"
    assert Execution.objects.filter(rerun_of_id=new_id, rerun_from_step="a", input_data={"k": 2}).exists()
