"""REST API: authentication, ownership, the one error body, throttling, documentation."""
from __future__ import annotations

import json
import uuid

import pytest
from django.core.cache import cache
from rest_framework.test import APIClient

from tests.support.api import API, assert_error, noop_workflow
from workflows_app import operations
from workflows_app.models import Execution, Workflow

pytestmark = pytest.mark.django_db

ANY = str(uuid.uuid4())
PROTECTED = [
    ("get", "/workflows/"), ("post", "/workflows/"), ("get", f"/workflows/{ANY}/"), ("patch", f"/workflows/{ANY}/"),
    ("delete", f"/workflows/{ANY}/"), ("post", f"/workflows/{ANY}/execute/"), ("get", f"/workflows/{ANY}/status/"),
    ("post", f"/workflows/{ANY}/update/"), ("post", f"/workflows/{ANY}/pause/"), ("post", f"/workflows/{ANY}/resume/"),
    ("get", f"/workflows/{ANY}/metrics/"), ("get", f"/workflows/{ANY}/audit/"), ("post", f"/workflows/{ANY}/agents/"),
    ("get", f"/executions/{ANY}/"), ("get", f"/executions/{ANY}/audit/"), ("post", f"/executions/{ANY}/cancel/"),
    ("post", f"/executions/{ANY}/retry/"), ("get", "/queues/"), ("get", "/queues/events/"),
    ("get", "/queues/events/messages/"), ("post", "/queues/events/messages/"), ("post", "/queues/"),
    ("post", "/queues/events/receive/"), ("post", "/queues/events/ack/"), ("post", "/events/manual/"),
    ("get", "/dead-letters/"),
    ("post", f"/dead-letters/{ANY}/redrive/"), ("post", "/dead-letters/redrive/"), ("post", "/dead-letters/process/"),
    ("get", "/agents/"), ("get", "/metrics/"), ("get", "/trading/account/"), ("get", "/trading/positions/"),
    ("get", "/trading/orders/"), ("get", "/trading/kill-switch/"), ("post", "/trading/kill-switch/"),
]


# --- authentication ---------------------------------------------------------------------------


@pytest.mark.parametrize(("method", "path"), PROTECTED)
def test_every_endpoint_needs_a_user(method, path):
    response = getattr(APIClient(), method)(API + path, {}, format="json")
    error = assert_error(response, 401, "NOT_AUTHENTICATED")
    assert "Token" in response["WWW-Authenticate"]
    assert error["message"]


def test_a_bad_token_is_401(db):
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION="Token not-a-real-token")
    assert_error(client.get(f"{API}/workflows/"), 401, "AUTHENTICATION_FAILED")


def test_schema_and_docs_need_a_user_and_metrics_needs_staff(api_a, api_staff):
    assert APIClient().get("/api/schema/").status_code == 401
    assert api_a.get("/api/schema/").status_code == 200
    docs = api_a.get("/api/docs/")
    assert docs.status_code == 200
    assert "swagger-ui" in docs.content.decode() and "cdn.jsdelivr" not in docs.content.decode()  # served locally
    assert_error(APIClient().get("/metrics"), 401)
    assert_error(api_a.get("/metrics"), 403, "PERMISSION_DENIED")
    assert api_staff.get("/metrics").status_code == 200


def test_session_authentication_works(alice):
    client = APIClient()
    assert client.login(username="alice", password="pw-alice")
    assert client.get(f"{API}/workflows/").status_code == 200
    # a session write without the CSRF token is refused with the error body
    csrf_client = APIClient(enforce_csrf_checks=True)
    csrf_client.login(username="alice", password="pw-alice")
    assert_error(csrf_client.post(f"{API}/workflows/", noop_workflow(), format="json"), 403, "PERMISSION_DENIED")


# --- ownership --------------------------------------------------------------------------------


def test_users_see_and_change_only_their_own_workflows(api_a, api_b, api_staff):
    created = api_a.post(f"{API}/workflows/", noop_workflow("alices"), format="json")
    assert created.status_code == 201, created.content
    wf = created.json()["workflow_id"]
    api_b.post(f"{API}/workflows/", noop_workflow("bobs"), format="json")

    for method, path, data in [
        ("get", f"/workflows/{wf}/", None), ("get", "/workflows/alices/", None),
        ("patch", f"/workflows/{wf}/", {"priority": 1}), ("delete", f"/workflows/{wf}/", None),
        ("post", f"/workflows/{wf}/execute/", {"input_data": {}}), ("get", f"/workflows/{wf}/status/", None),
        ("post", f"/workflows/{wf}/update/", {"updates": {"priority": 1}}), ("post", f"/workflows/{wf}/pause/", None),
        ("post", f"/workflows/{wf}/resume/", None), ("get", f"/workflows/{wf}/metrics/", None),
        ("get", f"/workflows/{wf}/audit/", None), ("post", f"/workflows/{wf}/agents/", {"task_id": "s0",
                                                                                        "agent_type": "x"}),
    ]:
        assert_error(getattr(api_b, method)(API + path, data, format="json"), 404, "WORKFLOW_NOT_FOUND")

    names_b = [w["name"] for w in api_b.get(f"{API}/workflows/").json()["workflows"]]
    assert names_b == ["bobs"]
    names_staff = sorted(w["name"] for w in api_staff.get(f"{API}/workflows/").json()["workflows"])
    assert names_staff == ["alices", "bobs"]
    assert api_staff.get(f"{API}/workflows/{wf}/").json()["workflow_id"] == wf
    assert Workflow.objects.get(pk=wf).priority == 5  # nothing changed by bob


def test_users_see_only_their_own_executions(api_a, api_b, api_staff, alice):
    wf = api_a.post(f"{API}/workflows/", noop_workflow(), format="json").json()["workflow_id"]
    started = api_a.post(f"{API}/workflows/{wf}/execute/", {"input_data": {"x": 1}}, format="json")
    assert started.status_code == 202, started.content
    execution_id = started.json()["execution_id"]
    assert Execution.objects.get(pk=execution_id).owner == alice
    for method, path in [("get", "/"), ("get", "/audit/"), ("post", "/cancel/"), ("post", "/retry/")]:
        assert_error(getattr(api_b, method)(f"{API}/executions/{execution_id}{path}"), 404, "EXECUTION_NOT_FOUND")
    assert api_a.get(f"{API}/executions/{execution_id}/").json()["execution_id"] == execution_id
    assert api_staff.get(f"{API}/executions/{execution_id}/").status_code == 200


# --- the one error body -----------------------------------------------------------------------


def test_malformed_json_is_400(api_a):
    response = api_a.generic("POST", f"{API}/workflows/", b'{"name": "x", "steps": [', content_type="application/json")
    assert_error(response, 400, "INVALID_INPUT_DATA")
    response = api_a.generic("POST", f"{API}/workflows/", b"\xff\xfe\x00garbage", content_type="application/json")
    assert_error(response, 400, "INVALID_INPUT_DATA")


@pytest.mark.parametrize("body", [
    [], "a string", 7, None,
    {"name": "x"},                                     # steps missing
    {"name": "x", "steps": "not-a-list"},
    {"name": "x", "steps": ["not-an-object"]},
    {"name": ["x"], "steps": [{"name": "a", "type": "test_noop"}]},
    {"name": "x" * 201, "steps": [{"name": "a", "type": "test_noop"}]},
    {"name": "x", "steps": [{"name": "a", "type": "test_noop"}], "priority": 11},
    {"name": "x", "steps": [{"name": "a", "type": "test_noop"}], "priority": "high"},
    {"name": "x", "steps": [{"name": "a", "type": "test_noop"}], "bogus": 1},
])
def test_wrong_shapes_are_400_naming_the_field(api_a, body):
    response = api_a.post(f"{API}/workflows/", json.dumps(body), content_type="application/json")
    error = assert_error(response, 400, "INVALID_INPUT_DATA")
    if isinstance(body, dict):
        assert error["details"].get("field"), error
    assert not Workflow.objects.exists()


def test_an_invalid_definition_is_422_with_field_errors(api_a):
    body = {"name": "bad", "steps": [{"name": "a", "type": "no_such_type"}],
            "triggers": [{"type": "schedule", "cron": "not a cron"}]}
    error = assert_error(api_a.post(f"{API}/workflows/", body, format="json"), 422, "INVALID_DEFINITION")
    fields = [e["field"] for e in error["details"]["errors"]]
    assert any("steps" in f for f in fields) and any("triggers" in f for f in fields)
    assert not Workflow.objects.exists()


def test_bad_params_of_a_step_are_422(api_a):
    body = {"name": "bad", "steps": [{"name": "a", "type": "test_noop", "params": {"sleep": -1}}]}
    assert_error(api_a.post(f"{API}/workflows/", body, format="json"), 422, "INVALID_DEFINITION")


def test_duplicate_name_is_409(api_a):
    assert api_a.post(f"{API}/workflows/", noop_workflow("dup"), format="json").status_code == 201
    assert_error(api_a.post(f"{API}/workflows/", noop_workflow("dup"), format="json"), 409, "CONFLICT")


def test_deleting_a_workflow_with_unfinished_executions_is_409(api_a):
    wf = api_a.post(f"{API}/workflows/", noop_workflow(), format="json").json()["workflow_id"]
    api_a.post(f"{API}/workflows/{wf}/execute/", {}, format="json")
    assert_error(api_a.delete(f"{API}/workflows/{wf}/"), 409, "CONFLICT")


def test_unknown_ids_are_404(api_a):
    assert_error(api_a.get(f"{API}/workflows/{uuid.uuid4()}/"), 404, "WORKFLOW_NOT_FOUND")
    assert_error(api_a.get(f"{API}/workflows/no-such-name/status/"), 404, "WORKFLOW_NOT_FOUND")
    assert_error(api_a.get(f"{API}/executions/{uuid.uuid4()}/"), 404, "EXECUTION_NOT_FOUND")
    assert_error(api_a.get(f"{API}/executions/not-a-uuid/audit/"), 404, "EXECUTION_NOT_FOUND")
    assert_error(api_a.post(f"{API}/dead-letters/{uuid.uuid4()}/redrive/"), 400, "INVALID_INPUT_DATA")


def test_unknown_api_paths_and_methods_use_the_error_body(api_a):
    assert_error(api_a.get("/api/v1/nothing-here/"), 404, "NOT_FOUND")
    assert_error(api_a.get("/api/v1/dead-letters/not-a-uuid/redrive/"), 404, "NOT_FOUND")
    assert_error(api_a.put(f"{API}/workflows/", {}, format="json"), 405, "METHOD_NOT_ALLOWED")
    assert_error(api_a.get(f"{API}/workflows/x/execute/"), 405, "METHOD_NOT_ALLOWED")


def test_form_bodies_are_415(api_a):
    response = api_a.post(f"{API}/workflows/", {"name": "x"})  # multipart
    assert_error(response, 415, "UNSUPPORTED_MEDIA_TYPE")


def test_huge_payloads_are_refused_without_a_500(api_a, settings):
    settings.DATA_UPLOAD_MAX_MEMORY_SIZE = 100_000
    big = {"name": "big", "steps": [{"name": "a", "type": "test_noop", "params": {"value": "x" * 200_000}}]}
    response = api_a.post(f"{API}/workflows/", json.dumps(big), content_type="application/json")
    assert_error(response, 413, "PAYLOAD_TOO_LARGE")
    deep = "[" * 5000 + "]" * 5000
    response = api_a.post(f"{API}/workflows/", '{"name": "deep", "steps": ' + deep + "}",
                          content_type="application/json")
    assert response.status_code in (400, 422), response.content[:300]
    assert_error(response, response.status_code)


def test_bad_query_parameters_are_400(api_a):
    assert_error(api_a.get(f"{API}/workflows/?limit=0"), 400, "INVALID_INPUT_DATA")
    assert_error(api_a.get(f"{API}/workflows/?limit=abc"), 400, "INVALID_INPUT_DATA")
    assert_error(api_a.get(f"{API}/workflows/?status=sleeping"), 400, "INVALID_INPUT_DATA")
    assert_error(api_a.get(f"{API}/workflows/?surprise=1"), 400, "INVALID_INPUT_DATA")
    assert_error(api_a.get(f"{API}/dead-letters/?status=nope"), 400, "INVALID_INPUT_DATA")
    assert_error(api_a.get(f"{API}/metrics/?window=forever"), 400, "INVALID_INPUT_DATA")


def test_unicode_and_nul_bytes_never_500(api_a):
    body = {"name": "📈 ünïcødé — 株式", "description": "\u202e x", "steps": [{"name": "ß", "type": "test_noop"}]}
    response = api_a.post(f"{API}/workflows/", body, format="json")
    assert response.status_code in (201, 422), response.content
    body["description"] = "nul \u0000 byte"
    assert_error(api_a.post(f"{API}/workflows/", body, format="json"), 400, "INVALID_INPUT_DATA")
    assert api_a.get(f"{API}/workflows/%F0%9F%93%88/").status_code == 404
    assert_error(api_a.get(f"{API}/workflows/%F0%9F%93%88%00/"), 400, "INVALID_INPUT_DATA")
    assert_error(api_a.get(f"{API}/workflows/?status=%00"), 400, "INVALID_INPUT_DATA")
    lone_surrogates = b'{"name": "s\\udfff", "description": "\\ud800", "steps": [{"name": "a", "type": "test_noop"}]}'
    response = api_a.generic("POST", f"{API}/workflows/", lone_surrogates, content_type="application/json")
    assert_error(response, 400, "INVALID_INPUT_DATA")
    response = api_a.generic("POST", f"{API}/workflows/x/execute/", b'{"input_data": {"\\u0000": "\\udfff"}}',
                             content_type="application/json")
    assert response.status_code in (400, 404)


def test_an_unexpected_error_is_500_with_the_body(api_a, monkeypatch):
    def boom(**kwargs):
        raise RuntimeError("secret-ish internals")

    monkeypatch.setattr(operations, "agent_list", boom)
    error = assert_error(api_a.get(f"{API}/agents/"), 500, "INTERNAL_ERROR")
    assert "secret" not in error["message"]


def test_execution_timeout_is_504(api_a, monkeypatch):
    def slow(**kwargs):
        raise operations.OperationError("EXECUTION_TIMEOUT", "still running", {"execution_id": "e"})

    monkeypatch.setattr(operations, "workflow_execute", slow)
    assert_error(api_a.post(f"{API}/workflows/x/execute/", {"async": False}, format="json"), 504, "EXECUTION_TIMEOUT")


def test_queue_full_is_429(api_staff, monkeypatch):
    api_a = api_staff

    def full(**kwargs):
        raise operations.OperationError("QUEUE_FULL", "queue events is full", {"queue": "events"})

    monkeypatch.setattr(operations, "queue_send", full, raising=False)
    response = api_a.post(f"{API}/queues/events/messages/", {"message": {"a": 1}}, format="json")
    assert_error(response, 429, "QUEUE_FULL")
    assert response["Retry-After"]


# --- throttling -------------------------------------------------------------------------------


def test_writes_are_throttled_per_user_reads_are_not(api_a, api_b, alice, bob, settings):
    settings.NEXUS_API_WRITE_RATE = "3/min"
    for user in (alice, bob):
        cache.delete(f"throttle_writes_{user.pk}")
    try:
        for _ in range(3):
            assert api_a.post(f"{API}/workflows/{ANY}/pause/").status_code == 404
        response = api_a.post(f"{API}/workflows/{ANY}/pause/")
        error = assert_error(response, 429, "THROTTLED")
        assert int(response["Retry-After"]) >= 1 and error["details"]["retry_after"] >= 1
        assert api_a.get(f"{API}/workflows/").status_code == 200  # reads are not throttled
        assert api_b.post(f"{API}/workflows/{ANY}/pause/").status_code == 404  # per user
    finally:
        for user in (alice, bob):
            cache.delete(f"throttle_writes_{user.pk}")


# --- behaviour of the endpoints (beyond the spec calls in test_api_spec.py) -------------------


def test_list_paginates_and_filters(api_a):
    for i in range(3):
        api_a.post(f"{API}/workflows/", noop_workflow(f"wf{i}"), format="json")
    api_a.post(f"{API}/workflows/wf1/pause/")
    page = api_a.get(f"{API}/workflows/?limit=2").json()
    assert page["count"] == 2 and page["total"] == 3 and page["next"] and page["previous"] is None
    page2 = api_a.get(page["next"]).json()
    assert page2["count"] == 1 and page2["next"] is None and page2["previous"]
    paused = api_a.get(f"{API}/workflows/?status=paused").json()
    assert [w["name"] for w in paused["workflows"]] == ["wf1"]


def test_patch_pause_resume_delete(api_a):
    wf = api_a.post(f"{API}/workflows/", noop_workflow(), format="json").json()["workflow_id"]
    patched = api_a.patch(f"{API}/workflows/{wf}/", {"description": "new", "priority": 8}, format="json")
    assert patched.status_code == 200, patched.content
    assert patched.json()["version"] == 2 and sorted(patched.json()["changed"]) == ["description", "priority"]
    detail = api_a.get(f"{API}/workflows/{wf}/").json()
    assert detail["description"] == "new" and detail["priority"] == 8
    assert_error(api_a.patch(f"{API}/workflows/{wf}/", {"name": "renamed"}, format="json"), 400)
    assert_error(api_a.patch(f"{API}/workflows/{wf}/", {}, format="json"), 400, "INVALID_INPUT_DATA")
    assert api_a.post(f"{API}/workflows/{wf}/pause/").json()["status"] == "paused"
    assert api_a.post(f"{API}/workflows/{wf}/resume/").json()["status"] == "active"
    assert api_a.delete(f"{API}/workflows/{wf}/").json()["deleted"] is True
    assert_error(api_a.get(f"{API}/workflows/{wf}/"), 404, "WORKFLOW_NOT_FOUND")


def test_agent_assignment_and_agent_list(api_a):
    wf = api_a.post(f"{API}/workflows/", noop_workflow(), format="json").json()["workflow_id"]
    reply = api_a.post(f"{API}/workflows/{wf}/agents/", {"task_id": "s1", "agent_type": "analyst",
                                                         "use_vector_similarity": False}, format="json")
    assert reply.status_code == 200, reply.content
    assert reply.json()["assignment"]["step"] == "s1" and reply.json()["assignment"]["queue"] == "agent.analyst"
    assert_error(api_a.post(f"{API}/workflows/{wf}/agents/", {"task_id": "nope", "agent_type": "analyst"},
                            format="json"), 400, "INVALID_INPUT_DATA")
    agents = api_a.get(f"{API}/agents/").json()
    assert [a["type"] for a in agents["agents"]] == ["analyst"]


def test_dead_letters_and_system_metrics(api_a):
    reply = api_a.get(f"{API}/dead-letters/").json()
    assert reply["success"] and reply["dead_letters"] == [] and reply["total"] == 0
    metrics = api_a.get(f"{API}/metrics/?window=24h").json()
    assert metrics["success"] and "success_rate" in metrics and "cost_breakdown" in metrics


def test_redrive_many_validates_ids(api_a):
    assert_error(api_a.post(f"{API}/dead-letters/redrive/", {"dead_letter_ids": []}, format="json"), 400)
    assert_error(api_a.post(f"{API}/dead-letters/redrive/", {"dead_letter_ids": ["x"]}, format="json"), 400)


def test_openapi_schema_documents_every_path(api_a):
    schema = api_a.get("/api/schema/?format=json").json()
    paths = set(schema["paths"])
    for expected in ["/api/v1/workflows/", "/api/v1/workflows/{workflow_id}/execute/", "/api/v1/events/",
                     "/api/v1/queues/{queue_name}/messages/", "/api/v1/dead-letters/{dead_letter_id}/redrive/",
                     "/api/v1/trading/kill-switch/", "/api/v1/metrics/", "/api/v1/executions/{execution_id}/retry/"]:
        assert expected in paths
    execute = schema["paths"]["/api/v1/workflows/{workflow_id}/execute/"]["post"]
    ref = execute["requestBody"]["content"]["application/json"]["schema"]["$ref"].rsplit("/", 1)[1]
    assert "async" in schema["components"]["schemas"][ref]["properties"]
    assert "404" in execute["responses"] and "429" in execute["responses"]


def test_prometheus_metrics_are_read_from_the_database(api_staff, api_a):
    wf = api_a.post(f"{API}/workflows/", noop_workflow(), format="json").json()["workflow_id"]
    api_a.post(f"{API}/workflows/{wf}/execute/", {}, format="json")
    response = api_staff.get("/metrics")
    assert response.status_code == 200 and response["Content-Type"].startswith("text/plain")
    text = response.content.decode()
    assert 'nexus_executions{status="queued"} 1.0' in text
    for family in ("nexus_step_duration_seconds", "nexus_broker_queue_length", "nexus_dead_letters"):
        assert f"# TYPE {family} " in text, family
    assert 'nexus_broker_queue_length{queue="workflows"}' in text
    assert "nexus_scrape_error{" not in text, [line for line in text.splitlines() if "scrape_error" in line]


def _openapi_validator(schema: dict, path: str, method: str, status: int):
    import jsonschema

    def fix(node):
        if isinstance(node, dict):
            node = {k: fix(v) for k, v in node.items()}
            if node.pop("nullable", False) and "type" in node:
                node["type"] = [node["type"], "null"]
            if "$ref" in node:
                node["$ref"] = node["$ref"].replace("#/components/schemas/", "#/$defs/")
            return node
        if isinstance(node, list):
            return [fix(v) for v in node]
        return node

    response = schema["paths"][path][method]["responses"][str(status)]
    body = fix(response["content"]["application/json"]["schema"])
    body["$defs"] = fix(schema["components"]["schemas"])
    return jsonschema.Draft202012Validator(body)


def test_replies_match_the_documented_response_schemas(api_a, api_staff, redis_test_client):
    schema = api_a.get("/api/schema/?format=json").json()

    def check(response, path, method):
        errors = list(_openapi_validator(schema, "/api/v1" + path, method,
                                         response.status_code).iter_errors(response.json()))
        assert not errors, [e.message for e in errors]

    created = api_a.post(f"{API}/workflows/", noop_workflow(), format="json")
    check(created, "/workflows/", "post")
    wf = created.json()["workflow_id"]
    check(api_a.get(f"{API}/workflows/?limit=1"), "/workflows/", "get")
    check(api_a.post(f"{API}/workflows/{wf}/execute/", {"input_data": {}}, format="json"),
          "/workflows/{workflow_id}/execute/", "post")
    check(api_a.get(f"{API}/workflows/{wf}/audit/"), "/workflows/{workflow_id}/audit/", "get")
    check(api_a.get(f"{API}/workflows/{wf}/metrics/"), "/workflows/{workflow_id}/metrics/", "get")
    check(api_a.get(f"{API}/metrics/"), "/metrics/", "get")
    check(api_a.get(f"{API}/queues/"), "/queues/", "get")
    check(api_a.get(f"{API}/workflows/nope/"), "/workflows/{workflow_id}/", "get")


def test_token_for_username_and_password(alice, settings):
    client = APIClient()
    reply = client.post(f"{API}/auth/token/", {"username": "alice", "password": "pw-alice"}, format="json")
    assert reply.status_code == 200 and reply.json()["token"]
    client.credentials(HTTP_AUTHORIZATION=f"Token {reply.json()['token']}")
    assert client.get(f"{API}/workflows/").status_code == 200
    wrong = APIClient().post(f"{API}/auth/token/", {"username": "alice", "password": "nope"}, format="json")
    assert_error(wrong, 401, "AUTHENTICATION_FAILED")
    assert "nope" not in wrong.content.decode()
    settings.NEXUS_API_LOGIN_RATE = "2/min"
    cache.delete("throttle_login_127.0.0.1")
    try:
        for _ in range(2):
            APIClient().post(f"{API}/auth/token/", {"username": "alice", "password": "x"}, format="json")
        limited = APIClient().post(f"{API}/auth/token/", {"username": "alice", "password": "x"}, format="json")
        assert_error(limited, 429, "THROTTLED")
    finally:
        cache.delete("throttle_login_127.0.0.1")



@pytest.mark.django_db
def test_list_filters_and_pagination_links_keep_the_filters():
    from django.contrib.auth import get_user_model
    from rest_framework.test import APIClient

    staff = get_user_model().objects.create_user("lister", password="pw", is_staff=True)
    client = APIClient()
    client.force_authenticate(staff)
    for name in ("gamma-1", "gamma-2", "delta"):
        client.post("/api/v1/workflows/", {"name": name, "steps": [{"name": "a", "type": "test_noop"}]}, format="json")
    reply = client.get("/api/v1/workflows/", {"name": "gamma", "limit": 1}).json()
    assert reply["total"] == 2 and reply["count"] == 1
    assert "name=gamma" in reply["next"] and "offset=1" in reply["next"]
    bad = client.get("/api/v1/workflows/", {"priority_min": 11})
    assert bad.status_code == 400 and bad.json()["success"] is False
