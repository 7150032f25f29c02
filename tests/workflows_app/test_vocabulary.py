"""The vocabulary of a definition, typed everywhere: the JSON Schema unions over the registered step
and trigger types (workflows_app.schemas), GET /api/v1/step-types/ and /trigger-types/, OpenAPI's
WorkflowStep/WorkflowTrigger, the admin's step type choice and docs/steps.md (fails when stale)."""
from __future__ import annotations

import jsonschema
import pytest
from django.contrib.auth import get_user_model
from django.core.management import call_command
from django.core.management.base import CommandError
from django.urls import reverse
from rest_framework.test import APIClient

from tests.support.api import API, assert_error, client_for, make_user
from workflows_app import definitions, operations, schemas
from workflows_app.admin import StepForm
from workflows_app.errors import OperationError
from workflows_app.management.commands import generate_docs
from workflows_app.registry import StepType, registry

pytestmark = pytest.mark.django_db

TUTORIAL = {  # README's walkthrough definition
    "name": "my-trading-workflow",
    "description": "Automated trading workflow with news analysis",
    "steps": [
        {"name": "analyze_news", "type": "news_analysis", "params": {"symbols": ["AAPL", "MSFT"]}},
        {"name": "market_analysis", "type": "technical_analysis", "params": {"indicators": ["RSI", "MACD"]}},
        {"name": "generate_signals", "type": "signal_generation", "params": {"threshold": 0.7}},
        {"name": "execute_trades", "type": "trade_execution", "params": {"risk_limit": 0.02}},
    ],
    "triggers": [{"type": "schedule", "cron": "0 9 * * 1-5"}],
}


@pytest.fixture
def api():
    return client_for(make_user("vocabulary-reader"))


def step_validator() -> jsonschema.Draft202012Validator:
    defs: dict = {}
    schema = schemas.step_json_schema(defs)
    return jsonschema.Draft202012Validator({**schema, "$defs": defs})


def trigger_validator() -> jsonschema.Draft202012Validator:
    defs: dict = {}
    schema = schemas.trigger_json_schema(defs)
    return jsonschema.Draft202012Validator({**schema, "$defs": defs})


# --- schemas.py ---------------------------------------------------------------------------------


def test_the_definition_schema_is_valid_json_schema_and_accepts_the_tutorial():
    schema = schemas.definition_json_schema()
    jsonschema.Draft202012Validator.check_schema(schema)
    errors = [e.message for e in jsonschema.Draft202012Validator(schema).iter_errors(TUTORIAL)]
    assert not errors, errors


def test_each_tutorial_step_validates_against_the_step_schema():
    validator = step_validator()
    for step in TUTORIAL["steps"]:
        assert not list(validator.iter_errors(step)), step


@pytest.mark.parametrize("step", [
    {"name": "a", "type": "no_such_type"},
    {"name": "no_such_type"},  # no type: the name is the type
    {"name": "a", "type": "trade_execution", "params": {"risk_limit": 3}},  # above its bound
    {"name": "a", "type": "trade_execution", "params": {"no_such_param": 1}},
    {"name": "a", "type": "trade_execution", "unknown_field": 1},
    {"name": "wait", "params": {"seconds": "soon"}},  # typed by its name when type is omitted
])
def test_the_step_schema_refuses_what_the_validator_refuses(step):
    assert list(step_validator().iter_errors(step)), step
    with pytest.raises(OperationError):
        definitions.validate_definition({"name": "refused", "steps": [step]})


def test_a_step_without_type_is_typed_by_its_name():
    step = {"name": "wait", "params": {"seconds": 0}}
    assert not list(step_validator().iter_errors(step))
    definitions.validate_definition({"name": "accepted", "steps": [step]})


def test_the_step_union_has_one_variant_per_registered_type_with_its_params():
    defs: dict = {}
    schema = schemas.step_json_schema(defs)
    assert len(schema["oneOf"]) == len(registry.step_types)
    assert defs[schemas.STEP_COMMON]["properties"]["type"]["enum"] == sorted(registry.step_types)
    assert "risk_limit" in defs["params__trade_execution"]["properties"]
    assert "$defs" not in str(defs["params__trade_execution"]), "nested defs are hoisted"


@pytest.mark.parametrize("trigger, valid", [
    ({"type": "schedule", "cron": "0 9 * * 1-5"}, True),
    ({"type": "manual"}, True),
    ({"type": "no_such_trigger"}, False),
    ({"type": "schedule"}, False),  # cron is required
    ({"type": "manual", "cron": "0 9 * * 1-5"}, False),  # another type's setting
    ({"cron": "0 9 * * 1-5"}, False),
])
def test_the_trigger_schema_types_the_settings_beside_type(trigger, valid):
    assert (not list(trigger_validator().iter_errors(trigger))) is valid
    if not valid:
        with pytest.raises(OperationError):
            definitions.validate_definition({"name": "refused", "steps": [{"name": "wait"}], "triggers": [trigger]})


# --- GET /api/v1/step-types/ and /trigger-types/ -----------------------------------------------


def test_the_vocabulary_endpoints_need_a_user():
    for path in ("step-types", "trigger-types"):
        assert_error(APIClient().get(f"{API}/{path}/"), 401)


def test_step_types_lists_every_registered_type_with_its_defaults_and_params_schema(api):
    reply = api.get(f"{API}/step-types/").json()
    assert reply["success"] is True and reply["count"] == len(reply["step_types"])
    by_name = {t["name"]: t for t in reply["step_types"]}
    assert set(by_name) == set(registry.step_types)
    for name, listed in by_name.items():
        step_type = registry.step_types[name]
        assert set(listed) == {"name", "description", "queue", "timeout", "retry", "action", "params_schema"}
        assert (listed["description"], listed["queue"], listed["timeout"]) == (
            step_type.description, step_type.queue, step_type.timeout)
        assert listed["retry"]["max_retries"] == step_type.retry.max_retries
        jsonschema.Draft202012Validator.check_schema(listed["params_schema"])
        assert listed["params_schema"]["type"] == "object"
    trade = by_name["trade_execution"]
    assert trade["queue"] == "trading" and "risk_limit" in trade["params_schema"]["properties"]
    assert trade["params_schema"]["properties"]["risk_limit"]["maximum"] == 0.5


def test_trigger_types_lists_every_registered_type_with_its_event_kinds_and_settings_schema(api):
    reply = api.get(f"{API}/trigger-types/").json()
    assert reply["success"] is True and reply["count"] == len(reply["trigger_types"])
    by_name = {t["name"]: t for t in reply["trigger_types"]}
    assert set(by_name) == set(registry.trigger_types)
    for name, listed in by_name.items():
        assert set(listed) == {"name", "description", "event_kinds", "params_schema"}
        assert listed["event_kinds"] == list(registry.trigger_types[name].event_kinds)
        jsonschema.Draft202012Validator.check_schema(listed["params_schema"])
    assert by_name["schedule"]["event_kinds"] == [] and "cron" in by_name["schedule"]["params_schema"]["required"]
    assert by_name["webhook"]["event_kinds"] == ["webhook"]


def test_openapi_publishes_the_endpoints_and_the_step_and_trigger_unions(api):
    schema = api.get("/api/schema/?format=json").json()
    assert {"/api/v1/step-types/", "/api/v1/trigger-types/"} <= set(schema["paths"])
    components = schema["components"]["schemas"]
    create = components["WorkflowCreateRequest"]["properties"]
    assert create["steps"]["items"] == {"$ref": "#/components/schemas/WorkflowStep"}
    assert create["triggers"]["items"] == {"$ref": "#/components/schemas/WorkflowTrigger"}
    assert len(components["WorkflowStep"]["oneOf"]) == len(registry.step_types)
    assert len(components["WorkflowTrigger"]["oneOf"]) == len(registry.trigger_types)
    trade = components["step__trade_execution"]["allOf"][1]["properties"]["params"]["$ref"].rsplit("/", 1)[1]
    risk_limit = components[trade]["properties"]["risk_limit"]
    assert risk_limit["minimum"] == 0 and risk_limit["exclusiveMinimum"] is True  # the OpenAPI 3.0 dialect
    refs = set(_refs(components))
    assert refs and all(r.startswith("#/components/schemas/") and r.rsplit("/", 1)[1] in components for r in refs)


def _refs(node):
    if isinstance(node, dict):
        if isinstance(node.get("$ref"), str):
            yield node["$ref"]
        for value in node.values():
            yield from _refs(value)
    elif isinstance(node, list):
        for value in node:
            yield from _refs(value)


# --- the admin ----------------------------------------------------------------------------------


def test_the_admin_step_type_is_a_choice_of_the_registered_types(client):
    form = StepForm()
    choices = [value for value, _ in form.fields["type"].widget.choices]
    assert choices[0] == "" and set(choices[1:]) == set(registry.step_types)
    created = operations.workflow_create(name="choice-flow", steps=[{"name": "first", "type": "test_noop"}])
    client.force_login(get_user_model().objects.create_superuser("chooser", "c@example.com", "pw"))
    page = client.get(reverse("admin:workflows_app_workflow_change", args=[created["workflow_id"]])).content.decode()
    assert '<select name="steps-0-type"' in page and '<option value="test_noop" selected>' in page


# --- docs/steps.md ------------------------------------------------------------------------------


def test_docs_steps_md_is_generated_from_the_registry_and_current():
    text = generate_docs.render_steps_markdown()
    assert generate_docs.DOCS_PATH.read_text(encoding="utf-8") == text, (
        "docs/steps.md is stale: run `python manage.py generate_docs`")
    call_command("generate_docs", "--check")
    for name in ("trade_execution", "conditional", "wait"):
        assert f"### `{name}`" in text
    for name in ("schedule", "webhook", "price_change"):
        assert f"### `{name}`" in text
    assert "| `risk_limit` | number | `0.02` | > 0.0, ≤ 0.5 |" in text
    assert "test_noop" not in text, "types a test module registers are not documented"


def test_the_docs_check_fails_when_an_app_registers_a_new_type(monkeypatch):
    def handler(ctx):
        return {}

    handler.__module__ = "workflows_app.steps"  # as if the engine registered it
    monkeypatch.setitem(registry.step_types, "newly_added", StepType("newly_added", handler, description="New."))
    assert "### `newly_added`" in generate_docs.render_steps_markdown()
    with pytest.raises(CommandError, match="stale"):
        call_command("generate_docs", "--check")
