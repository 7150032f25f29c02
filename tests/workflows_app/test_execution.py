"""The executor on a real worker and a real Redis: step types, retries, dead letters, sagas,
subprocesses, parallel groups, versions, cancellation and the audit trail."""
import time

import pytest

from tests.support.waiting import wait_for
from tests.workflows_app.helpers import create, events, run
from tests.workflows_app.support import client
from workflows_app import operations
from workflows_app.errors import OperationError
from workflows_app.models import DeadLetter, Execution, StepRun

pytestmark = pytest.mark.django_db(transaction=True)


def test_context_holds_outputs_by_name_and_at_top_level(celery_worker):
    wf = create("ctx", [
        {"name": "classify_it", "type": "classify", "params": {"categories": ["urgent", "normal", "ignore"]}},
        {"name": "shape", "type": "transform", "params": {"set": {"cat": "category", "same": "classify_it.category",
                                                                 "sym": "symbols[0]"}}},
        {"name": "say", "type": "notify", "params": {"message": "got {cat} for {sym}"}},
    ])
    execution = run(wf, {"symbols": ["AAPL"], "event": {"priority": "high"}})
    assert execution.status == "succeeded", execution.error
    assert execution.context["classify_it"]["category"] == "urgent"
    assert execution.context["shape"] == {"cat": "urgent", "same": "urgent", "sym": "AAPL"}
    assert execution.context["say"]["message"] == "got urgent for AAPL"
    assert "notification" in events(execution)


def test_conditional_true_runs_actions_and_false_skips(celery_worker):
    wf = create("cond", [
        {"name": "event_classifier", "type": "classify", "params": {"categories": ["urgent", "normal", "ignore"]}},
        {"name": "urgent_handler", "type": "conditional", "condition": "category == 'urgent'",
         "actions": ["test_noop", "alert"]},
        {"name": "normal_handler", "type": "conditional", "condition": "category == 'normal'",
         "actions": ["test_noop"]},
        {"name": "alert", "type": "notify", "params": {"message": "urgent!"}, "condition": "false"},
    ])
    execution = run(wf, {"event": {"severity": 0.9}})
    assert execution.status == "succeeded", execution.error
    urgent = execution.context["urgent_handler"]
    assert urgent["matched"] is True and set(urgent["actions"]) == {"test_noop", "alert"}
    assert urgent["actions"]["alert"]["message"] == "urgent!"
    assert execution.context["normal_handler"] == {"matched": False, "condition": "category == 'normal'"}
    statuses = dict(StepRun.objects.filter(execution=execution).values_list("step_name", "status"))
    assert statuses == {"event_classifier": "succeeded", "urgent_handler": "succeeded",
                        "normal_handler": "skipped", "alert": "skipped"}
    assert events(execution).count("step_skipped") == 2


def test_transient_failure_retries_with_backoff_then_succeeds(celery_worker):
    wf = create("flaky", [{"name": "f", "type": "test_flaky", "params": {"failures": 2},
                           "retry": {"max_retries": 3, "backoff": 0.2, "backoff_max": 1, "jitter": True}}])
    execution = run(wf)
    assert execution.status == "succeeded", execution.error
    runs = list(StepRun.objects.filter(execution=execution).order_by("attempt"))
    assert [r.status for r in runs] == ["retrying", "retrying", "succeeded"]
    assert [r.attempt for r in runs] == [1, 2, 3]
    assert runs[0].error_class == "rate_limit"
    from workflows_app.models import AuditEvent

    retrying = list(AuditEvent.objects.filter(execution=execution, event="step_retrying").order_by("id"))
    delays = [e.data["next_delay"] for e in retrying]
    assert 0.1 <= delays[0] <= 0.2 and 0.2 <= delays[1] <= 0.4  # exponential, with equal jitter
    assert retrying[0].data["attempt"] == 1 and retrying[0].data["error_class"] == "rate_limit"
    gap = (runs[1].started_at - runs[0].finished_at).total_seconds()
    assert gap >= delays[0] * 0.9  # the backoff really was waited


def test_exhausted_retries_dead_letter_then_redrive_succeeds(celery_worker):
    wf = create("exhaust", [{"name": "first", "type": "test_noop"},
                            {"name": "f", "type": "test_flaky", "params": {"failures": 3},
                             "retry": {"max_retries": 2, "backoff": 0.05, "jitter": False}}])
    execution = run(wf)
    assert execution.status == "failed"
    letter = DeadLetter.objects.get(execution=execution)
    assert letter.error_class == "rate_limit" and letter.attempts == 3 and letter.step_name == "f"
    assert "flaky failure 3" in letter.traceback and letter.payload["step"] == "f"
    assert execution.error["dead_letter_id"] == str(letter.id)
    listed = operations.dead_letters(status="pending")
    assert listed["total"] == 1 and listed["dead_letters"][0]["error"] == "rate_limit"

    reply = operations.dead_letter_redrive(dead_letter_id=str(letter.id))
    assert reply["redriven"][0]["status"] == "redriven"
    execution = wait_for(lambda: Execution.objects.filter(pk=execution.pk, status="succeeded").first(),
                         message="redriven execution succeeds")
    first_runs = StepRun.objects.filter(execution=execution, step_name="first")
    assert first_runs.count() == 1  # earlier steps are not run again
    assert StepRun.objects.filter(execution=execution, step_name="f", status="succeeded").get().attempt == 4
    assert "dead_letter_redriven" in events(execution) and "execution_retried" in events(execution)
    with pytest.raises(OperationError) as caught:
        operations.dead_letter_redrive(dead_letter_id=str(letter.id))
    assert caught.value.code == "CONFLICT"


def test_non_retryable_error_is_not_retried(celery_worker):
    wf = create("perm", [{"name": "f", "type": "test_fail", "params": {"transient": False,
                                                                     "error_class": "invalid_symbol"}}])
    execution = run(wf)
    assert execution.status == "failed"
    runs = StepRun.objects.filter(execution=execution)
    assert runs.count() == 1 and runs.get().status == "failed" and runs.get().error_class == "invalid_symbol"
    assert int(client().get(f"test:fail:{execution.id}:f")) == 1
    assert DeadLetter.objects.get(execution=execution).error_class == "invalid_symbol"
    assert events(execution)[-1] == "workflow_failed"


def test_saga_compensates_completed_steps_in_reverse_order(celery_worker):
    tag = f"saga-{time.monotonic_ns()}"
    wf = create("saga", [
        {"name": "reserve", "type": "test_record", "params": {"tag": tag}, "compensate": "test_undo"},
        {"name": "place", "type": "test_record", "params": {"tag": tag}, "compensate": "test_undo"},
        {"name": "update", "type": "test_record", "params": {"tag": tag}, "compensate": "test_undo"},
        {"name": "notify_all", "type": "test_fail", "params": {"transient": False}},
    ])
    r = client()
    r.delete("test:undo:t")
    execution = run(wf)
    assert execution.status == "compensated", execution.error
    assert r.lrange("test:undo:t", 0, -1) == ["update:update", "place:place", "reserve:reserve"]
    comp = list(StepRun.objects.filter(execution=execution, is_compensation=True).order_by("started_at"))
    assert [c.step_name for c in comp] == ["update", "place", "reserve"]
    trail = events(execution)
    assert trail.count("compensation_completed") == 3 and trail[-1] == "workflow_compensated"
    assert trail.index("compensation_started") > trail.index("step_failed")


def test_subprocess_runs_child_and_parent_waits(celery_worker):
    create("scanner-workflow", [{"name": "scan", "type": "transform", "params": {"set": {"found": "symbols"}}}])
    parent = create("master", [
        {"name": "market_scan", "type": "subprocess", "workflow_id": "scanner-workflow"},
        {"name": "after", "type": "transform", "params": {"set": {"n": "found[0]"}}},
    ])
    execution = run(parent, {"symbols": ["AAPL", "MSFT"]})
    assert execution.status == "succeeded", execution.error
    child = Execution.objects.get(parent=execution)
    assert child.status == "succeeded" and child.parent_step == "market_scan" and child.trigger == "subprocess"
    assert execution.context["market_scan"]["child_execution_id"] == str(child.id)
    assert execution.context["after"] == {"n": "AAPL"}
    assert child.finished_at <= StepRun.objects.get(execution=execution, step_name="after").started_at


def test_failed_child_fails_the_parent_step(celery_worker):
    create("bad-child", [{"name": "x", "type": "test_fail", "params": {"transient": False}}])
    parent = create("parent-of-bad", [{"name": "call", "type": "subprocess", "workflow_id": "bad-child"}])
    execution = run(parent)
    assert execution.status == "failed"
    assert execution.error["error_class"] == "subprocess_failed"


def test_parallel_group_runs_as_a_chord_into_a_join(celery_worker):
    tag = f"par-{time.monotonic_ns()}"
    wf = create("parallel", [
        {"name": "start", "type": "test_noop"},
        # each member sleeps long enough that all three start before one ends, even on a busy machine
        {"name": "a", "type": "test_record", "params": {"tag": tag, "sleep": 3}, "group": "g"},
        {"name": "b", "type": "test_record", "params": {"tag": tag, "sleep": 3}, "group": "g"},
        {"name": "c", "type": "test_record", "params": {"tag": tag, "sleep": 3}, "group": "g"},
        {"name": "end", "type": "transform", "params": {"set": {"all": "[a.recorded, b.recorded, c.recorded]"}}},
    ])
    execution = run(wf)
    assert execution.status == "succeeded", execution.error
    assert execution.context["end"]["all"] == ["a", "b", "c"]
    runs = {r.step_name: r for r in StepRun.objects.filter(execution=execution)}
    overlap = min(runs[n].finished_at for n in "abc") > max(runs[n].started_at for n in "abc")
    assert overlap  # the three ran at the same time
    assert runs["end"].started_at >= max(runs[n].finished_at for n in "abc")


def test_running_execution_keeps_its_version_while_the_workflow_is_updated(celery_worker):
    wf = create("versions", [{"name": "pause", "type": "wait", "params": {"seconds": 1.0}},
                             {"name": "echo", "type": "test_echo", "params": {"value": "old"}}])
    started = operations.workflow_execute(workflow_id=wf, input_data={})
    wait_for(lambda: StepRun.objects.filter(execution_id=started["execution_id"], step_name="pause").exists())
    operations.workflow_update(workflow_id=wf, updates={"steps[echo].params.value": "new"})
    from workflows_app.engine import wait_until_final

    first = wait_until_final(started["execution_id"], 120)
    assert first.status == "succeeded" and first.context["echo"]["value"] == "old" and first.version.number == 1
    second = run(wf)
    assert second.context["echo"]["value"] == "new" and second.version.number == 2


def test_sync_execute_returns_final_status_and_step_results(celery_worker):
    wf = create("sync", [{"name": "a", "type": "test_noop"}, {"name": "b", "type": "test_echo",
                                                             "params": {"value": 7}}])
    reply = operations.workflow_execute(workflow_id=wf, input_data={"k": 1}, **{"async": False})
    assert reply["status"] == "succeeded" and reply["steps"]["b"]["result"]["value"] == 7
    assert reply["completed_steps"] == ["a", "b"] and reply["duration"] > 0


def test_sync_execute_times_out_honestly(celery_worker):
    wf = create("slow", [{"name": "w", "type": "wait", "params": {"seconds": 3}}])
    with pytest.raises(OperationError) as caught:
        operations.workflow_execute(workflow_id=wf, timeout=1, **{"async": False})
    assert caught.value.code == "EXECUTION_TIMEOUT"
    assert caught.value.details["status"] in ("queued", "running", "waiting")  # a wait suspends


def test_cancel_stops_before_the_next_step(celery_worker):
    # The wait outlasts any delay in cancelling on a busy machine; the test then waits for it to end.
    wf = create("cancel", [{"name": "w", "type": "wait", "params": {"seconds": 4}}, {"name": "after", "type": "test_noop"}])
    started = operations.workflow_execute(workflow_id=wf)
    wait_for(lambda: StepRun.objects.filter(execution_id=started["execution_id"]).exists())
    assert operations.execution_cancel(execution_id=started["execution_id"])["status"] == "cancelled"
    wait_for(lambda: StepRun.objects.filter(execution_id=started["execution_id"], step_name="w",
                                            finished_at__isnull=False).exists(), message="the running step ended")
    time.sleep(0.5)  # the chain's next message, if any, would have been taken by now
    execution = Execution.objects.get(pk=started["execution_id"])
    assert execution.status == "cancelled"
    assert not StepRun.objects.filter(execution=execution, step_name="after").exists()
    with pytest.raises(OperationError) as caught:
        operations.execution_cancel(execution_id=started["execution_id"])
    assert caught.value.code == "CONFLICT"


def test_paused_workflow_refuses_to_execute(celery_worker):
    wf = create("paused", [{"name": "a", "type": "test_noop"}])
    operations.workflow_pause(workflow_id=wf)
    with pytest.raises(OperationError) as caught:
        operations.workflow_execute(workflow_id=wf)
    assert caught.value.code == "CONFLICT"
    operations.workflow_resume(workflow_id=wf)
    assert run(wf).status == "succeeded"


def test_status_audit_and_metrics_are_measured(celery_worker):
    wf = create("observed", [{"name": "a", "type": "test_noop"}, {"name": "b", "type": "test_fail",
                                                                 "params": {"transient": False}}])
    ok_wf = create("observed-ok", [{"name": "a", "type": "test_noop"}])
    failed = run(wf)
    succeeded = run(ok_wf)
    status = operations.workflow_status(execution_id=str(failed.id))
    assert status["status"] == "failed" and status["completed_steps"] == ["a"] and status["pending_steps"] == ["b"]
    assert status["progress"] == 0.5 and status["step_runs"][0]["duration"] >= 0
    trail = operations.workflow_audit_trail(execution_id=str(succeeded.id))
    names = [e["event"] for e in trail["events"]]
    assert names[:2] == ["execution_queued", "execution_dispatched"] or names[0] == "execution_queued"
    assert "workflow_started" in names and names[-1] == "workflow_completed"
    started = next(e for e in trail["events"] if e["event"] == "workflow_started")
    assert started["trigger"] == "manual"
    completed = next(e for e in trail["events"] if e["event"] == "step_completed")
    assert completed["step"] == "a" and completed["result"] == {"ok": True, "step": "a"}
    metrics = operations.workflow_metrics(workflow_id=wf)
    assert metrics["executions"] == 1 and metrics["success_rate"] == 0.0
    assert metrics["steps_performance"]["a"]["success_rate"] == 1.0
    assert metrics["steps_performance"]["b"]["success_rate"] == 0.0
    system = operations.workflow_metrics()
    assert system["executions"] >= 2 and system["p50"] is not None and system["p99"] >= system["p50"]
    assert system["cost_breakdown"]["executions"]["count"] == system["executions"]
    assert system["system"]["steps_executed"] >= 3  # step runs; messages_processed counts queue acknowledgements
