"""Issue 11, findings 2, 3, 5 and 10: subprocesses respect ownership and are bounded; test mode
and the owner belong to the execution; names are unique per owner. Users A (alice) and B (bob)
act over REST and over MCP (streamable HTTP with their tokens), against a real worker."""
from __future__ import annotations

import pytest

from tests.support.api import API, assert_error, client_for, make_user
from tests.workflows_app.mcp_support import mcp_call
from workflows_app import operations
from workflows_app.engine import start_execution, wait_until_final
from workflows_app.errors import OperationError
from workflows_app.models import Execution, StepRun, Workflow
from workflows_app.registry import NoParams, RetryPolicy, registry

pytestmark = pytest.mark.django_db(transaction=True)


def noop(name: str) -> dict:
    return {"name": name, "steps": [{"name": "only", "type": "test_noop"}]}


def calling(name: str, ref: str) -> dict:
    return {"name": name, "steps": [{"name": "call", "type": "subprocess", "workflow_id": ref}]}


def final(execution_id, timeout: float = 60) -> Execution:
    execution = wait_until_final(execution_id, timeout)
    assert execution.is_final, f"execution still {execution.status} after {timeout}s"
    return execution


# --- finding 3: B cannot run A's workflow through a subprocess ------------------------------------


def test_b_cannot_save_a_subprocess_to_a_s_workflow_by_name_or_uuid_over_rest(client, alice, bob):
    a_flow = operations.workflow_create(**noop("a-trades"), user=alice)["workflow_id"]
    api_b = client_for(bob)
    for ref in ("a-trades", a_flow):
        error = assert_error(api_b.post(f"{API}/workflows/", calling("b-calls-a", ref), format="json"),
                             422, "INVALID_DEFINITION")
        assert [e["field"] for e in error["details"]["errors"]] == ["steps[0].workflow_id"]
        assert "a-trades" not in error["message"] or ref == "a-trades"  # A's name is never revealed by uuid
    assert not Workflow.objects.filter(owner=bob).exists()
    # ... nor by changing an existing workflow of B's
    b_flow = operations.workflow_create(**noop("b-own"), user=bob)["workflow_id"]
    response = api_b.post(f"{API}/workflows/{b_flow}/update/", {"updates": {"steps[0]": {
        "name": "call", "type": "subprocess", "workflow_id": a_flow}}}, format="json")
    assert_error(response, 422, "INVALID_DEFINITION")
    assert Workflow.objects.get(pk=b_flow).version == 1


def test_b_cannot_save_a_subprocess_to_a_s_workflow_over_mcp(client, alice, bob):
    a_flow = operations.workflow_create(**noop("a-trades"), user=alice)["workflow_id"]
    for ref in ("a-trades", a_flow):
        result = mcp_call(client, bob, "workflow_create", calling("b-calls-a", ref))
        assert result["isError"] is True
        error = result["structuredContent"]["error"]
        assert error["code"] == "INVALID_DEFINITION"
        assert error["details"]["errors"][0]["field"] == "steps[0].workflow_id"
    assert not Workflow.objects.filter(owner=bob).exists()


def test_at_run_time_a_subprocess_to_a_workflow_b_may_not_run_fails_with_permission_denied(celery_worker, alice, bob):
    child = operations.workflow_create(**noop("b-child"), user=bob)["workflow_id"]
    parent = operations.workflow_create(**calling("b-parent", child), user=bob)["workflow_id"]
    Workflow.objects.filter(pk=child).update(owner=alice)  # e.g. reassigned to A in the admin since
    execution = final(operations.workflow_execute(workflow_id=parent, user=bob)["execution_id"])
    assert execution.status == "failed" and execution.error["error_class"] == "permission_denied"
    assert not Execution.objects.filter(workflow_id=child).exists()  # A's workflow never ran


def test_at_run_time_a_name_resolves_within_the_owner_s_workflows(celery_worker, alice, bob):
    """B's step names "target"; B's own target is gone and A now has one: A's is never run."""
    own = operations.workflow_create(**noop("target"), user=bob)["workflow_id"]
    parent = operations.workflow_create(**calling("b-parent", "target"), user=bob)["workflow_id"]
    operations.workflow_delete(workflow_id=own, user=bob)
    a_target = operations.workflow_create(**noop("target"), user=alice)["workflow_id"]
    execution = final(operations.workflow_execute(workflow_id=parent, user=bob)["execution_id"])
    assert execution.status == "failed" and execution.error["error_class"] == "subprocess_unavailable"
    assert not Execution.objects.filter(workflow_id=a_target).exists()


# --- finding 10: names are unique per owner -------------------------------------------------------


def test_names_are_unique_per_owner_and_reveal_nothing_over_rest_and_mcp(client, alice, bob):
    api_a, api_b = client_for(alice), client_for(bob)
    assert api_a.post(f"{API}/workflows/", noop("shared-name"), format="json").status_code == 201
    # B is not told that A has this name: B simply gets B's own workflow of that name.
    created = api_b.post(f"{API}/workflows/", noop("shared-name"), format="json")
    assert created.status_code == 201, created.content
    b_id = created.json()["workflow_id"]
    assert mcp_call(client, bob, "workflow_create", noop("mcp-name"))["isError"] is False
    assert mcp_call(client, alice, "workflow_create", noop("mcp-name"))["isError"] is False
    # Each one's own duplicate is still a conflict.
    assert_error(api_b.post(f"{API}/workflows/", noop("shared-name"), format="json"), 409, "CONFLICT")
    again = mcp_call(client, alice, "workflow_create", noop("mcp-name"))
    assert again["isError"] is True and again["structuredContent"]["error"]["code"] == "CONFLICT"
    # A name resolves to the caller's own workflow, for both users.
    assert api_b.get(f"{API}/workflows/shared-name/").json()["workflow_id"] == b_id
    a_seen = api_a.get(f"{API}/workflows/shared-name/").json()["workflow_id"]
    assert a_seen != b_id and Workflow.objects.get(pk=a_seen).owner == alice
    # Renaming onto one's own name conflicts; onto another user's name does not.
    b_other = operations.workflow_create(**noop("b-other"), user=bob)["workflow_id"]
    assert api_b.post(f"{API}/workflows/{b_other}/update/", {"updates": {"name": "mcp-name"}},
                      format="json").status_code == 409
    staff = make_user("root", staff=True)
    # Staff (and trusted callers) reach an ambiguous name only by uuid.
    with pytest.raises(OperationError) as caught:
        operations.workflow_get(workflow_id="shared-name", user=staff)
    assert caught.value.code == "WORKFLOW_NOT_FOUND"
    assert operations.workflow_get(workflow_id=b_id, user=staff)["workflow_id"] == b_id


def test_owner_less_workflows_keep_one_name_each():
    operations.workflow_create(**noop("system-flow"))
    with pytest.raises(OperationError) as caught:
        operations.workflow_create(**noop("system-flow"))
    assert caught.value.code == "CONFLICT"


# --- finding 5: the rename cycle, and the depth limit ---------------------------------------------


def test_the_rename_cycle_stops_with_one_clear_failure(celery_worker, alice):
    operations.workflow_create(**noop("X"), user=alice)
    operations.workflow_create(**calling("A2", "X"), user=alice)
    operations.workflow_update(workflow_id="X", updates={"name": "X-old"}, user=alice)
    new_x = operations.workflow_create(**calling("X", "A2"), user=alice)["workflow_id"]  # X -> A2 -> X -> ...
    root = final(operations.workflow_execute(workflow_id=new_x, user=alice)["execution_id"])
    assert root.status == "failed"
    assert "subprocess_cycle" in root.error["message"]
    assert Execution.objects.count() == 2  # X and A2: the second X was never started
    refused = StepRun.objects.get(error_class="subprocess_cycle")
    assert refused.execution.workflow.name == "A2"
    assert StepRun.objects.filter(status="failed").count() == 2  # A2's refused step, X's waiting step


def test_nesting_deeper_than_the_setting_fails_for_good(celery_worker, alice, settings):
    settings.NEXUS_MAX_SUBPROCESS_DEPTH = 2
    operations.workflow_create(**noop("level4"), user=alice)
    for level in (3, 2, 1, 0):
        operations.workflow_create(**calling(f"level{level}", f"level{level + 1}"), user=alice)
    root = final(operations.workflow_execute(workflow_id="level0", user=alice)["execution_id"])
    assert root.status == "failed" and "subprocess_depth" in root.error["message"]
    assert sorted(Execution.objects.values_list("workflow__name", flat=True)) == ["level0", "level1", "level2"]
    assert StepRun.objects.get(error_class="subprocess_depth").execution.workflow.name == "level2"


# --- finding 2: test mode belongs to the execution ------------------------------------------------


def set_test_mode_off(ctx):
    return {"test_mode": False}


def report_test_mode(ctx):
    return {"child_test_mode": ctx.test_mode}


def report_account(ctx):
    return {"account": "someone-else", "owner": 99, "event": {"forged": True}, "note": "kept"}


def write_engine_key(ctx):
    return {"_circuits": {"forged": {"failure_threshold": 1}}}


for _name, _handler in [("test_set_test_mode_off", set_test_mode_off), ("test_report_account", report_account),
                        ("test_write_engine_key", write_engine_key)]:
    registry.register_step_type(_name, _handler, params_model=NoParams, retry=RetryPolicy(max_retries=0))
registry.register_step_type("test_report_test_mode", report_test_mode, params_model=NoParams,
                            retry=RetryPolicy(max_retries=0))


def test_a_transform_cannot_set_reserved_keys(client, alice):
    api_a = client_for(alice)
    for key in ("test_mode", "_circuits", "owner", "account", "event"):
        body = {"name": f"escape-{key.strip('_')}", "steps": [
            {"name": "flip", "type": "transform", "params": {"set": {key: "false"}}}]}
        error = assert_error(api_a.post(f"{API}/workflows/", body, format="json"), 422, "INVALID_DEFINITION")
        assert error["details"]["errors"][0]["field"] == "steps[0].params.set"
    result = mcp_call(client, alice, "workflow_create", {"name": "escape", "steps": [
        {"name": "flip", "type": "transform", "params": {"set": {"test_mode": "false"}}}]})
    assert result["isError"] is True and result["structuredContent"]["error"]["code"] == "INVALID_DEFINITION"


def test_a_step_output_cannot_turn_test_mode_off_and_no_child_escapes(celery_worker, alice):
    child = operations.workflow_create(name="child", steps=[{"name": "mode", "type": "test_report_test_mode"}],
                                       user=alice)["workflow_id"]
    parent = operations.workflow_create(name="parent", user=alice, steps=[
        {"name": "flip", "type": "test_set_test_mode_off"},
        {"name": "call", "type": "subprocess", "workflow_id": child}])["workflow_id"]
    execution = final(operations.workflow_execute(workflow_id=parent, input_data={"test_mode": True},
                                                  user=alice)["execution_id"])
    assert execution.status == "failed" and execution.error["error_class"] == "reserved_key"
    assert execution.context["test_mode"] is True
    assert not Execution.objects.filter(workflow_id=child).exists()


def test_a_child_inherits_the_parent_s_test_mode_not_the_context_s(celery_worker, alice):
    child = operations.workflow_create(name="child", steps=[{"name": "mode", "type": "test_report_test_mode"}],
                                       user=alice)["workflow_id"]
    parent = operations.workflow_create(**calling("parent", child), user=alice)
    workflow = Workflow.objects.get(pk=parent["workflow_id"])
    # Test mode given by the caller, not in the input: the context does not even hold it.
    execution = start_execution(workflow, {"symbols": ["AAPL"]}, test_mode=True)
    execution = final(execution.id)
    assert execution.status == "succeeded" and execution.test_mode is True
    spawned = Execution.objects.get(workflow_id=child)
    assert spawned.test_mode is True and spawned.context["child_test_mode"] is True
    assert spawned.owner == alice  # the workflow's owner, as no caller was given


def test_executions_without_a_caller_belong_to_the_workflow_s_owner(celery_worker, alice):
    workflow = Workflow.objects.get(pk=operations.workflow_create(**noop("owned"), user=alice)["workflow_id"])
    execution = start_execution(workflow, {}, trigger="schedule")  # as triggers.fire starts them
    assert execution.owner == alice


def test_input_cannot_carry_engine_keys(alice):
    workflow = operations.workflow_create(**noop("owned"), user=alice)["workflow_id"]
    with pytest.raises(OperationError) as caught:
        operations.workflow_execute(workflow_id=workflow, input_data={"_circuits": {"x": {}}}, user=alice)
    assert caught.value.code == "INVALID_INPUT_DATA" and caught.value.details["field"] == "input_data._circuits"


def test_reserved_keys_in_outputs_stay_under_the_step_s_name_or_fail_the_step(celery_worker, alice):
    shown = operations.workflow_create(name="shows-account", user=alice, steps=[
        {"name": "trade", "type": "test_report_account"}, {"name": "after", "type": "test_echo"}])["workflow_id"]
    execution = final(operations.workflow_execute(workflow_id=shown, input_data={"test_mode": True},
                                                  user=alice)["execution_id"])
    assert execution.status == "succeeded"
    assert execution.context["trade"]["account"] == "someone-else" and execution.context["note"] == "kept"
    assert not {"account", "owner", "event"} & set(execution.context)
    forged = operations.workflow_create(name="forges", user=alice, steps=[
        {"name": "forge", "type": "test_write_engine_key"}])["workflow_id"]
    execution = final(operations.workflow_execute(workflow_id=forged, user=alice)["execution_id"])
    assert execution.status == "failed" and execution.error["error_class"] == "reserved_key"
    assert "_circuits" not in execution.context
