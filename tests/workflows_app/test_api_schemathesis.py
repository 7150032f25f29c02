"""Property-based run of the whole REST API against its own OpenAPI document (schemathesis).

Every operation of /api/schema/ gets a bounded number of generated requests (valid and invalid),
sent in-process to the Django WSGI app, as a staff user and as a plain user; no response may be a 5xx, and every
response must match the documented schema (error bodies included) and status codes.
"""
from __future__ import annotations

import pytest
import schemathesis
from django.core.signals import request_finished, request_started
from django.core.wsgi import get_wsgi_application
from django.db import close_old_connections
from drf_spectacular.generators import SchemaGenerator
from hypothesis import HealthCheck, Phase, settings
from rest_framework.authtoken.models import Token
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

pytestmark = [pytest.mark.django_db, pytest.mark.slow]

EXAMPLES = 15

schema = schemathesis.openapi.from_dict(SchemaGenerator().get_schema(request=None, public=True))
schema.app = get_wsgi_application()


@pytest.fixture(params=["staff", "user"])
def token(request, django_user_model, settings):
    settings.NEXUS_API_WRITE_RATE = None
    settings.NEXUS_API_WEBHOOK_RATE = None
    settings.NEXUS_API_LOGIN_RATE = None
    settings.NEXUS_SYNC_WAIT_SECONDS = 0.2  # no worker here: a sync execute must give up quickly
    user = django_user_model.objects.create_user("fuzz", password="x", is_staff=request.param == "staff")
    # As django.test.Client does: the WSGI app must not close the test's database connection.
    request_started.disconnect(close_old_connections)
    request_finished.disconnect(close_old_connections)
    try:
        yield Token.objects.create(user=user).key
    finally:
        request_started.connect(close_old_connections)
        request_finished.connect(close_old_connections)


@schema.parametrize()
@settings(max_examples=EXAMPLES, deadline=None, derandomize=True, database=None,
          phases=[Phase.explicit, Phase.generate], suppress_health_check=list(HealthCheck))
def test_no_5xx_and_responses_match_the_schema(case, token):
    case.call_and_validate(
        headers={"Authorization": f"Token {token}"},
        checks=[not_a_server_error, response_schema_conformance, content_type_conformance,
                status_code_conformance],
    )
