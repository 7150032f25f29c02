"""The dashboard's JSON: staff only, figures measured from the rows, registered panels shown."""
from __future__ import annotations

import pytest
from django.contrib.auth import get_user_model
from django.urls import reverse

from workflows_app import operations
from workflows_app.registry import registry

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def staff_client(client):
    client.force_login(get_user_model().objects.create_user("ops", password="pw", is_staff=True))
    return client


def test_dashboard_is_staff_only(client):
    assert client.get(reverse("dashboard")).status_code == 302  # to the admin login
    assert client.get(reverse("dashboard-data")).status_code == 401
    client.force_login(get_user_model().objects.create_user("trader", password="pw"))
    assert client.get(reverse("dashboard")).status_code == 302
    response = client.get(reverse("dashboard-data"))
    assert response.status_code == 403 and response.json()["error"]["code"] == "PERMISSION_DENIED"


def test_dashboard_data_is_measured(staff_client, celery_worker):
    created = operations.workflow_create(name="dash-flow", steps=[{"name": "a", "type": "test_noop"},
                                                                  {"name": "b", "type": "test_echo"}])
    for _ in range(2):
        assert operations.workflow_execute(workflow_id=created["workflow_id"], **{"async": False})["status"] == "succeeded"
    failed = operations.workflow_create(name="dash-fail", steps=[
        {"name": "boom", "type": "test_fail", "params": {"transient": False, "error_class": "invalid_symbol"}}])
    assert operations.workflow_execute(workflow_id=failed["workflow_id"], **{"async": False})["status"] == "failed"

    page = staff_client.get(reverse("dashboard"))
    assert page.status_code == 200 and b"Executions per hour by status" in page.content
    data = staff_client.get(reverse("dashboard-data")).json()
    assert data["summary"]["executions"] == 3
    assert data["summary"]["success_rate"] == round(2 / 3, 4)
    series = data["executions_per_hour"]["series"]
    assert sum(series["succeeded"]) == 2 and sum(series["failed"]) == 1
    assert len(data["executions_per_hour"]["hours"]) in (24, 25)
    assert any(v is not None for v in data["latency"]["p50"])
    assert {r["step"] for r in data["step_durations"]} == {"a", "b", "boom"}
    assert {q["name"] for q in data["queues"]["queues"]} >= {"workflows", "events", "trading", "maintenance"}
    assert data["dead_letters"]["by_error_class"] == {"invalid_symbol": 1}
    assert data["dead_letters"]["recent"][0]["workflow"] == "dash-fail"
    recent = data["recent_executions"]
    assert [e["status"] for e in recent] == ["failed", "succeeded", "succeeded"]
    assert recent[0]["workflow"] == "dash-fail" and recent[0]["url"] == f"/ui/executions/{recent[0]['execution_id']}/"
    assert recent[0]["admin_url"].startswith("/admin/workflows_app/execution/")
    assert data["panels"] == [p for p in data["panels"] if p["name"] in registry.dashboard_panels]


def test_registered_panels_are_shown_and_a_broken_one_is_contained(staff_client):
    registry.register_dashboard_panel("test-pnl", lambda since: {
        "title": "P&L", "metrics": {"equity": 100000.0}, "columns": ["symbol", "qty"], "rows": [["AAPL", 10]]})
    registry.register_dashboard_panel("test-broken", lambda since: 1 / 0)
    try:
        panels = {p["name"]: p for p in staff_client.get(reverse("dashboard-data")).json()["panels"]}
    finally:
        registry.dashboard_panels.pop("test-pnl")
        registry.dashboard_panels.pop("test-broken")
    assert panels["test-pnl"]["metrics"] == {"equity": 100000.0} and panels["test-pnl"]["rows"] == [["AAPL", 10]]
    assert "division by zero" in panels["test-broken"]["error"]
