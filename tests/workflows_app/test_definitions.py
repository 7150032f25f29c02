"""Whole-definition validation: field-level errors, nothing stored on failure."""
import pytest

from workflows_app import operations
from workflows_app.errors import OperationError
from workflows_app.models import Step, Trigger, Workflow, WorkflowVersion

pytestmark = pytest.mark.django_db


def refuse(**kwargs) -> list[dict]:
    with pytest.raises(OperationError) as caught:
        operations.workflow_create(**kwargs)
    assert caught.value.code == "INVALID_DEFINITION"
    assert not Workflow.objects.exists() and not WorkflowVersion.objects.exists()
    assert not Step.objects.exists() and not Trigger.objects.exists()
    return caught.value.details["errors"]


def fields(errors: list[dict]) -> set[str]:
    return {e["field"] for e in errors}


def test_unknown_step_type_names_the_field():
    errors = refuse(name="w", steps=[{"name": "a", "type": "no_such_type"}])
    assert fields(errors) == {"steps[0].type"}


def test_step_without_type_takes_its_name_and_unknown_name_is_refused_on_name():
    errors = refuse(name="w", steps=[{"name": "not_a_type"}])
    assert fields(errors) == {"steps[0].name"}


def test_bad_params_name_the_param():
    errors = refuse(name="w", steps=[{"name": "c", "type": "circuit_breaker", "params": {"failure_threshold": -1}}])
    assert "steps[0].params.failure_threshold" in fields(errors)
    errors = refuse(name="w", steps=[{"name": "c", "type": "circuit_breaker", "params": {"bogus": 1}}])
    assert "steps[0].params.bogus" in fields(errors)


def test_duplicate_names_actions_and_expressions():
    errors = refuse(name="w", steps=[
        {"name": "a", "type": "test_noop"},
        {"name": "a", "type": "test_noop"},
        {"name": "h", "type": "conditional", "condition": "x.__class__", "actions": ["nothing_here"]},
    ])
    assert {"steps[1].name", "steps[2].condition", "steps[2].actions[0]"} <= fields(errors)


def test_priority_and_trigger_errors():
    errors = refuse(name="w", priority=11, steps=[{"name": "a", "type": "test_noop"}])
    assert fields(errors) == {"priority"}
    errors = refuse(name="w", steps=[{"name": "a", "type": "test_noop"}],
                    triggers=[{"type": "schedule", "cron": "61 * * * *"}, {"type": "schedule", "cron": "0 9 * * 1-5",
                                                                         "timezone": "Mars/Olympus"}, {"type": "nope"}])
    assert fields(errors) == {"triggers[0].cron", "triggers[1].timezone", "triggers[2].type"}


def test_subprocess_needs_an_existing_workflow_and_refuses_cycles():
    errors = refuse(name="w", steps=[{"name": "s", "type": "subprocess"}])
    assert fields(errors) == {"steps[0].workflow_id"}
    errors = refuse(name="w", steps=[{"name": "s", "type": "subprocess", "workflow_id": "missing-workflow"}])
    assert fields(errors) == {"steps[0].workflow_id"}
    # a -> b exists; making b run a is a cycle
    operations.workflow_create(name="b", steps=[{"name": "x", "type": "test_noop"}])
    operations.workflow_create(name="a", steps=[{"name": "run_b", "type": "subprocess", "workflow_id": "b"}])
    with pytest.raises(OperationError) as caught:
        operations.workflow_update(workflow_id="b", updates={"steps[0]": {"name": "run_a", "type": "subprocess",
                                                                        "workflow_id": "a"}})
    assert caught.value.details["errors"][0]["field"] == "steps[0].workflow_id"
    assert Workflow.objects.get(name="b").version == 1
    with pytest.raises(OperationError):
        operations.workflow_create(name="self", steps=[{"name": "me", "type": "subprocess", "workflow_id": "self"}])


def test_create_reply_matches_the_specification_shape():
    reply = operations.workflow_create(
        name="shape", description="d", steps=[{"name": "a", "type": "test_noop"}],
        triggers=[{"type": "schedule", "cron": "0 9 * * 1-5"}])
    assert reply["success"] is True and reply["status"] == "active" and reply["priority"] == 5
    assert reply["version"] == 1 and reply["name"] == "shape" and reply["description"] == "d"
    assert reply["features"] == ["scheduling", "retries"]  # computed from the definition (docs/api.md)
    assert Step.objects.filter(workflow_id=reply["workflow_id"]).count() == 1


def test_duplicate_workflow_name_is_a_conflict():
    operations.workflow_create(name="dup", steps=[{"name": "a", "type": "test_noop"}])
    with pytest.raises(OperationError) as caught:
        operations.workflow_create(name="dup", steps=[{"name": "a", "type": "test_noop"}])
    assert caught.value.code == "CONFLICT"


def test_update_by_index_and_by_name_makes_a_new_version():
    created = operations.workflow_create(name="upd", steps=[
        {"name": "c", "type": "circuit_breaker"}, {"name": "d", "type": "circuit_breaker"}])
    reply = operations.workflow_update(workflow_id=created["workflow_id"], updates={
        "steps[0].params.failure_threshold": 9, "steps[d].params.reset_timeout": 5, "priority": 7})
    assert reply["version"] == 2 and reply["previous_version"] == 1
    assert set(reply["changed"]) == {"steps[0].params.failure_threshold", "steps[d].params.reset_timeout", "priority"}
    wf = Workflow.objects.get(pk=created["workflow_id"])
    steps = wf.current_version.definition["steps"]
    assert steps[0]["params"]["failure_threshold"] == 9 and steps[1]["params"]["reset_timeout"] == 5
    assert wf.priority == 7 and wf.versions.count() == 2
    assert wf.versions.get(number=1).definition["steps"][0]["params"]["failure_threshold"] == 5


def test_update_is_atomic_and_names_the_bad_path():
    created = operations.workflow_create(name="atomic", steps=[{"name": "c", "type": "circuit_breaker"}])
    for updates, field in [({"steps[5].params.x": 1}, "updates.steps[5].params.x"),
                           ({"steps[nope].params.x": 1}, "updates.steps[nope].params.x"),
                           ({"owner": 1}, "updates.owner")]:
        with pytest.raises(OperationError) as caught:
            operations.workflow_update(workflow_id=created["workflow_id"], updates=updates)
        assert caught.value.details["errors"][0]["field"] == field
    with pytest.raises(OperationError) as caught:  # valid path, invalid value: refused by the schema
        operations.workflow_update(workflow_id=created["workflow_id"],
                                   updates={"steps[0].params.failure_threshold": 2, "priority": 99})
    assert caught.value.code == "INVALID_DEFINITION"
    wf = Workflow.objects.get(pk=created["workflow_id"])
    assert wf.version == 1 and wf.current_version.definition["steps"][0]["params"]["failure_threshold"] == 5


def test_unknown_and_badly_typed_arguments_are_refused():
    with pytest.raises(OperationError) as caught:
        operations.workflow_create(name="x", steps=[{"name": "a", "type": "test_noop"}], colour="red")
    assert caught.value.details == {"field": "colour"}
    with pytest.raises(OperationError) as caught:
        operations.workflow_list(limit="many")
    assert caught.value.details == {"field": "limit"}
    with pytest.raises(OperationError) as caught:
        operations.workflow_status(workflow_id="not-there")
    assert caught.value.code == "WORKFLOW_NOT_FOUND"


def test_workflow_list_filters_paginates_and_names_bad_filters():
    for name, priority in [("alpha-one", 2), ("alpha-two", 8), ("beta", 9)]:
        operations.workflow_create(name=name, priority=priority, steps=[{"name": "a", "type": "test_noop"}])
    operations.workflow_pause(workflow_id="beta")
    assert operations.workflow_list(name="ALPHA")["total"] == 2
    assert [w["name"] for w in operations.workflow_list(priority_min=8)["workflows"]] == ["beta", "alpha-two"]
    assert operations.workflow_list(status="paused")["workflows"][0]["name"] == "beta"
    page = operations.workflow_list(limit=1, offset=1)
    assert page["count"] == 1 and page["total"] == 3
    for bad, field in [({"status": "sleeping"}, "status"), ({"priority_min": "high"}, "priority_min"),
                       ({"created_after": "yesterday"}, "created_after")]:
        with pytest.raises(OperationError) as caught:
            operations.workflow_list(**bad)
        assert caught.value.code == "INVALID_INPUT_DATA" and caught.value.details["field"] == field
