"""Helpers of the REST API tests: users with tokens, API clients, the error-body check. The
fixtures built on them (alice, bob, staff, api_a, ...) are in tests/conftest.py."""
from __future__ import annotations

from django.contrib.auth import get_user_model
from rest_framework.authtoken.models import Token
from rest_framework.test import APIClient

API = "/api/v1"


def make_user(username: str, *, staff: bool = False):
    user = get_user_model().objects.create_user(username=username, password="pw-" + username, is_staff=staff)
    return user


def client_for(user) -> APIClient:
    client = APIClient()
    token, _ = Token.objects.get_or_create(user=user)
    client.credentials(HTTP_AUTHORIZATION=f"Token {token.key}")
    return client


def assert_error(response, status: int, code: str | None = None) -> dict:
    assert response.status_code == status, (response.status_code, response.content[:500])
    assert response["Content-Type"].startswith("application/json"), response["Content-Type"]
    data = response.json()
    assert data["success"] is False
    assert set(data["error"]) == {"code", "message", "details"}
    assert isinstance(data["error"]["message"], str) and data["error"]["message"]
    assert isinstance(data["error"]["details"], dict)
    if code is not None:
        assert data["error"]["code"] == code, data
    return data["error"]


def noop_workflow(name: str = "api-wf", steps: int = 2) -> dict:
    return {"name": name, "description": "d", "steps": [{"name": f"s{i}", "type": "test_noop"} for i in range(steps)]}
