"""Every catalogue operation is served over REST at /api/v1/operations/<name>/ without REST code
of its own: body = the operation's arguments, reply = its dict, errors = the one error body, the
OpenAPI request body generated from the argument model."""
from __future__ import annotations

import pytest
from drf_spectacular.generators import SchemaGenerator
from rest_framework.test import APIClient

from tests.support.api import API, assert_error, noop_workflow
from workflows_app.operations.catalogue import catalogue

pytestmark = pytest.mark.django_db


def test_every_listed_operation_has_a_route_and_a_documented_body():
    paths = SchemaGenerator().get_schema(request=None, public=True)["paths"]
    names = [op.name for op in catalogue.tools()]
    assert {"workflow_create", "workflow_list", "queue_send", "trading_account"} <= set(names)  # trading's too
    for name in names:
        entry = paths[f"{API}/operations/{name}/"]["post"]
        assert entry["operationId"] == f"operation_{name}"
        assert "requestBody" in entry or not catalogue.get(name).args.model_fields, name


def test_an_operation_called_by_its_route_replies_as_it_does_everywhere(api_a):
    created = api_a.post(f"{API}/operations/workflow_create/", noop_workflow("routed-wf"), format="json")
    assert created.status_code == 200, created.content[:300]
    assert created.json()["success"] is True and created.json()["name"] == "routed-wf"
    listed = api_a.post(f"{API}/operations/workflow_list/", {"name": "routed", "limit": 5}, format="json").json()
    assert [w["name"] for w in listed["workflows"]] == ["routed-wf"]


def test_bad_arguments_name_the_field_and_permissions_hold(api_a):
    error = assert_error(api_a.post(f"{API}/operations/workflow_list/", {"limit": 0}, format="json"), 400,
                         "INVALID_INPUT_DATA")
    assert error["details"]["field"] == "limit"
    error = assert_error(api_a.post(f"{API}/operations/workflow_list/", {"bogus": 1}, format="json"), 400)
    assert "bogus" in str(error)
    assert_error(api_a.post(f"{API}/operations/queue_send/", {"queue_name": "events", "message": {}},
                            format="json"), 403, "PERMISSION_DENIED")  # staff only, as on every face
    assert_error(APIClient().post(f"{API}/operations/workflow_list/", {}, format="json"), 401)
