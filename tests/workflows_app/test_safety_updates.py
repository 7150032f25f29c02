"""Issue 11, finding 6: no lost updates. Concurrent workflow_update calls serialise on the workflow
row; with `expected_version` a stale caller is told CONFLICT (409) over every face."""
from __future__ import annotations

import threading

import pytest
from django.db import connection
from django.urls import reverse

from tests.support.api import API, assert_error, client_for
from tests.workflows_app.helpers import formset_data
from tests.workflows_app.mcp_support import mcp_call
from workflows_app import operations
from workflows_app.errors import OperationError
from workflows_app.models import Workflow, WorkflowVersion

pytestmark = pytest.mark.django_db(transaction=True)


def new_workflow(owner=None) -> str:
    return operations.workflow_create(name="shared", steps=[{"name": "a", "type": "test_noop"}],
                                      user=owner)["workflow_id"]


def test_ten_concurrent_updates_keep_all_ten_changes():
    workflow_id = new_workflow()
    barrier, replies, failures = threading.Barrier(10), [], []

    def update(i: int) -> None:
        try:
            barrier.wait(timeout=60)
            replies.append(operations.workflow_update(workflow_id=workflow_id, updates={f"metadata.k{i}": i}))
        except Exception as exc:  # noqa: BLE001 - reported below
            failures.append(exc)
        finally:
            connection.close()

    threads = [threading.Thread(target=update, args=(i,)) for i in range(10)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(120)
    assert not failures, failures
    workflow = Workflow.objects.select_related("current_version").get(pk=workflow_id)
    # Every one of the ten changes is in the final definition (before: 2 of 10).
    assert workflow.current_version.definition["metadata"] == {f"k{i}": i for i in range(10)}
    assert workflow.metadata == {f"k{i}": i for i in range(10)}
    assert sorted(r["version"] for r in replies) == list(range(2, 12))  # distinct versions, one each
    assert all(r["previous_version"] == r["version"] - 1 for r in replies)
    assert workflow.version == 11
    assert WorkflowVersion.objects.filter(workflow_id=workflow_id).count() == 11


def test_expected_version_answers_conflict_in_the_core():
    workflow_id = new_workflow()
    reply = operations.workflow_update(workflow_id=workflow_id, updates={"priority": 7}, expected_version=1)
    assert reply["version"] == 2
    with pytest.raises(OperationError) as caught:
        operations.workflow_update(workflow_id=workflow_id, updates={"priority": 3}, expected_version=1)
    assert caught.value.code == "CONFLICT" and caught.value.details["field"] == "expected_version"
    assert caught.value.details["current_version"] == 2
    assert Workflow.objects.get(pk=workflow_id).priority == 7
    with pytest.raises(OperationError) as caught:
        operations.workflow_update(workflow_id=workflow_id, updates={"priority": 3}, expected_version="two")
    assert caught.value.code == "INVALID_INPUT_DATA" and caught.value.details["field"] == "expected_version"


def test_expected_version_over_rest_update_and_patch_and_mcp(client, alice):
    workflow_id = new_workflow(alice)
    api = client_for(alice)
    ok = api.post(f"{API}/workflows/{workflow_id}/update/", {"updates": {"priority": 6}, "expected_version": 1},
                  format="json")
    assert ok.status_code == 200 and ok.json()["version"] == 2
    stale = api.post(f"{API}/workflows/{workflow_id}/update/", {"updates": {"priority": 1}, "expected_version": 1},
                     format="json")
    assert assert_error(stale, 409, "CONFLICT")["details"]["field"] == "expected_version"
    assert_error(api.patch(f"{API}/workflows/{workflow_id}/", {"priority": 2, "expected_version": 1},
                           format="json"), 409, "CONFLICT")
    patched = api.patch(f"{API}/workflows/{workflow_id}/", {"priority": 2, "expected_version": 2}, format="json")
    assert patched.status_code == 200 and patched.json()["version"] == 3
    result = mcp_call(client, alice, "workflow_update", {"workflow_id": workflow_id, "updates": {"priority": 4},
                                                         "expected_version": 2})
    assert result["isError"] is True and result["structuredContent"]["error"]["code"] == "CONFLICT"
    result = mcp_call(client, alice, "workflow_update", {"workflow_id": workflow_id, "updates": {"priority": 4},
                                                         "expected_version": 3})
    assert result["isError"] is False and result["structuredContent"]["version"] == 4
    assert Workflow.objects.get(pk=workflow_id).priority == 4


def test_an_admin_save_over_a_newer_version_is_refused_not_merged(client):
    from django.contrib.auth import get_user_model

    client.force_login(get_user_model().objects.create_superuser("admin", "admin@example.com", "pw"))
    workflow = Workflow.objects.get(pk=new_workflow())
    url = reverse("admin:workflows_app_workflow_change", args=[workflow.pk])
    form = formset_data(workflow, description="from the admin", loaded_version=1)
    operations.workflow_update(workflow_id=str(workflow.pk), updates={"metadata.k": "meanwhile"})  # version 2
    response = client.post(url, form)
    assert response.status_code == 200 and b"reload the page" in response.content
    workflow.refresh_from_db()
    assert workflow.version == 2 and workflow.metadata == {"k": "meanwhile"} and workflow.description == ""
    fresh = formset_data(workflow, description="from the admin", loaded_version=2,
                         metadata='{"k": "meanwhile"}')
    assert client.post(url, fresh).status_code == 302
    workflow.refresh_from_db()
    assert workflow.version == 3 and workflow.description == "from the admin" and workflow.metadata == {"k": "meanwhile"}
