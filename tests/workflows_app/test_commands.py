"""Management commands: each prints exactly its operation's dict with --json, a summary otherwise,
progress on stderr, and the error body (exit status 1) when the operation refuses."""
from __future__ import annotations

import json
from io import StringIO

import pytest
from django.core.management import call_command

from workflows_app import operations

pytestmark = pytest.mark.django_db(transaction=True)


def run(*args) -> tuple[int, str, str]:
    out, err = StringIO(), StringIO()
    code = 0
    try:
        call_command(*args, stdout=out, stderr=err)
    except SystemExit as exc:
        code = exc.code
    return code, out.getvalue(), err.getvalue()


@pytest.fixture
def workflow():
    return operations.workflow_create(name="cli-flow", steps=[
        {"name": "first", "type": "test_echo", "params": {"value": 1}},
        {"name": "second", "type": "test_noop"}], triggers=[{"type": "schedule", "cron": "0 9 * * 1-5"}])


def test_run_workflow_wait_prints_progress_and_final_status_json(celery_worker, workflow):
    code, out, err = run("run_workflow", "cli-flow", "--input", '{"symbols": ["AAPL"], "test_mode": true}',
                         "--wait", "--json", "--interval", "0.1")
    assert code == 0, err
    reply = json.loads(out)
    assert reply == json.loads(json.dumps(operations.workflow_status(execution_id=reply["execution_id"])))
    assert reply["status"] == "succeeded" and reply["completed_steps"] == ["first", "second"]
    assert "started" in err and "first attempt 1: succeeded" in err and "[2/2] second attempt 1: succeeded" in err


def test_run_workflow_sync_human_output(celery_worker, workflow):
    code, out, err = run("run_workflow", workflow["workflow_id"], "--sync")
    assert code == 0, err
    assert "cli-flow: succeeded" in out and "  first: succeeded" in out and "  second: succeeded" in out


def test_run_workflow_async_json_is_the_operation_reply(celery_worker, workflow):
    code, out, _ = run("run_workflow", "cli-flow", "--json")
    reply = json.loads(out)
    assert code == 0 and reply["success"] is True and reply["async"] is True
    assert set(reply) >= {"execution_id", "workflow_id", "workflow_name", "status", "started_at"}


def test_run_workflow_refusals_print_the_error_body():
    code, out, _ = run("run_workflow", "no-such-flow", "--json")
    assert code == 1
    assert json.loads(out) == {"success": False, "error": {"code": "WORKFLOW_NOT_FOUND", "message": "no workflow no-such-flow",
                                                           "details": {"field": "workflow_id"}}}
    code, _, err = run("run_workflow", "no-such-flow")
    assert code == 1 and "error WORKFLOW_NOT_FOUND" in err


def test_workflow_status_json_and_human(workflow):
    code, out, _ = run("workflow_status", "cli-flow", "--json")
    assert code == 0
    assert json.loads(out) == json.loads(json.dumps(operations.workflow_status(workflow_id=workflow["workflow_id"])))
    code, out, _ = run("workflow_status", "cli-flow")
    assert "cli-flow" in out and "trigger schedule" in out and "next run" in out
    code, out, _ = run("workflow_status", "--execution", "068487ca-a19d-43c0-bee1-df64c5fb6e9d", "--json")
    assert code == 1 and json.loads(out)["error"]["code"] == "EXECUTION_NOT_FOUND"


def test_workflow_status_of_an_execution(celery_worker, workflow):
    done = operations.workflow_execute(workflow_id=workflow["workflow_id"], **{"async": False})
    code, out, _ = run("workflow_status", "--execution", done["execution_id"])
    assert code == 0 and "succeeded (100%)" in out and "first #1: succeeded" in out


def test_queue_status_json_is_the_operation_reply():
    import uuid

    name = f"cli-{uuid.uuid4().hex[:8]}"  # Redis outlives each test's rows: a queue of this test's own
    operations.queue_create(name=name)
    operations.queue_send(queue_name=name, message={"type": "trade_signal", "symbol": "AAPL"})
    code, out, _ = run("queue_status", "--json", "--messages")
    assert code == 0
    reply = json.loads(out)
    assert reply["success"] is True and "queues" in reply and "total_messages" in reply
    assert next(q for q in reply["queues"] if q["name"] == name)["messages_available"] == 1
    code, out, _ = run("queue_status", name, "--messages")
    assert code == 0 and name in out and "total messages: 1" in out and "AAPL" in out
    code, out, _ = run("queue_status", "no-such-queue", "--json")
    assert code == 1 and json.loads(out)["error"]["code"] == "QUEUE_NOT_FOUND"


def test_process_dead_letters_applies_the_policies(celery_worker):
    from workflows_app.models import DeadLetter

    failed = operations.workflow_create(name="cli-dl", steps=[
        {"name": "boom", "type": "test_fail", "params": {"transient": False, "error_class": "invalid_symbol"}}])
    assert operations.workflow_execute(workflow_id=failed["workflow_id"], **{"async": False})["status"] == "failed"
    code, out, _ = run("process_dead_letters", "--json")
    assert code == 0 and json.loads(out)["success"] is True
    assert DeadLetter.objects.get(workflow_id=failed["workflow_id"]).status == "discarded"
    code, out, _ = run("process_dead_letters")
    assert code == 0 and "processed dead letters" in out


def test_nexus_op_calls_any_catalogue_operation_with_json_arguments(workflow):
    code, out, err = run("nexus_op", "workflow_list", "--args", '{"limit": 1}', "--json")
    assert code == 0, err
    assert json.loads(out) == json.loads(json.dumps(operations.workflow_list(limit=1)))
    code, out, _ = run("nexus_op", "workflow_list", "--args", '{"limit": 0}', "--json")
    assert code == 1 and json.loads(out)["error"] == {
        "code": "INVALID_INPUT_DATA", "message": "limit must be between 1 and 500", "details": {"field": "limit"}}
    code, out, _ = run("nexus_op", "--list")
    assert code == 0 and "workflow_create" in out and "trading_orders" in out
    code, out, _ = run("nexus_op", "workflow_execute", "--schema")
    assert code == 0 and json.loads(out)["properties"]["async"]["type"] == "boolean"
