"""A reconciler re-dispatch racing a step: the old generation's message never runs the step, and a
success recorded under a superseded generation is carried forward instead of stalling the execution.

Seen in a flooded-worker recovery run: the reconciler's broker scan missed a message moving from
its queue to a worker, re-dispatched the execution while that message's step started, and the
step's completion (recorded, but superseded) left the cursor behind it; every later re-dispatch
found the step succeeded and returned, so the execution was re-dispatched again and again.

The engine functions are called directly with the rows arranged as the race leaves them (no
worker consumes the workflows' queue), which makes each interleaving deterministic.
"""
from __future__ import annotations

import uuid

import pytest
from django.db import transaction
from django.utils import timezone

from tests.workflows_app.helpers import create
from workflows_app import engine, operations
from workflows_app.engine.lifecycle import dispatch
from workflows_app.engine.runner import _start_attempt
from workflows_app.models import AuditEvent, Execution, StepRun

pytestmark = pytest.mark.django_db(transaction=True)
NOBODY = "nobody-consumes-this-races"  # the workflow queue: its canvases are never run by a worker


def _execution(steps: list) -> Execution:
    wf = create(f"race-{uuid.uuid4().hex[:8]}", steps, queue=NOBODY)
    reply = operations.workflow_execute(workflow_id=wf, input_data={"x": 1})
    return Execution.objects.select_related("version", "workflow").get(pk=reply["execution_id"])


def _steps(*names: str) -> list:
    return [{"name": n, "type": "test_echo", "params": {"value": n}} for n in names]


def test_a_step_does_not_start_under_a_generation_the_reconciler_replaced():
    loaded = _execution(_steps("a", "b"))  # what an old message's run_step loaded
    with transaction.atomic():  # meanwhile the reconciler re-dispatched it
        dispatch(Execution.objects.select_for_update().get(pk=loaded.pk), reason="reconciled")
    step = loaded.version.definition["steps"][0]
    with pytest.raises(engine.StaleMessage):
        _start_attempt(loaded, step, 0, 1, "test_echo", "task-1", NOBODY)
    assert not StepRun.objects.filter(execution_id=loaded.pk).exists()  # nothing started, nothing ran
    with pytest.raises(engine.StaleMessage):  # and the whole old message is dropped
        engine.run_step(str(loaded.pk), 1, 0, 0)
    # the new generation runs the step, once
    engine.run_step(str(loaded.pk), 2, 0, 0)
    assert StepRun.objects.filter(execution_id=loaded.pk, step_name="a").count() == 1


def test_a_success_recorded_under_a_superseded_generation_is_carried_forward():
    execution = _execution(_steps("a", "b"))
    # The race: step `a` succeeded while a reconciler re-dispatched the execution, so its result
    # was recorded but the cursor stayed on `a` (generation 2 now).
    StepRun.objects.create(execution=execution, step_name="a", step_type="test_echo", step_index=0, attempt=1,
                           status=StepRun.Status.SUCCEEDED, result={"echo": "a"},
                           started_at=timezone.now(), finished_at=timezone.now())
    with transaction.atomic():
        dispatch(Execution.objects.select_for_update().get(pk=execution.pk), reason="reconciled")
    execution.refresh_from_db()
    assert (execution.dispatch_count, execution.cursor) == (2, 0)

    assert engine.run_step(str(execution.pk), 2, 0, 0) == {"echo": "a"}  # the stored result, not re-run
    execution.refresh_from_db()
    assert execution.cursor == 1 and execution.context["a"] == {"echo": "a"}  # ...and taken forward
    assert StepRun.objects.filter(execution=execution, step_name="a").count() == 1
    assert AuditEvent.objects.filter(execution=execution, event="step_result_adopted").count() == 1

    engine.run_step(str(execution.pk), 2, 1, 1)
    execution.refresh_from_db()
    assert execution.status == Execution.Status.SUCCEEDED

    # a plain redelivery after success changes nothing
    with pytest.raises(engine.StaleMessage):
        engine.run_step(str(execution.pk), 2, 1, 1)
    assert AuditEvent.objects.filter(execution=execution, event="step_result_adopted").count() == 1


def test_a_redelivered_success_whose_result_was_applied_is_not_applied_twice():
    execution = _execution(_steps("a", "b", "c"))
    engine.run_step(str(execution.pk), 1, 0, 0)
    execution.refresh_from_db()
    assert execution.cursor == 1
    assert engine.run_step(str(execution.pk), 1, 0, 0)["value"] == "a"  # redelivered: stored result
    execution.refresh_from_db()
    assert execution.cursor == 1  # not advanced again
    assert not AuditEvent.objects.filter(execution=execution, event="step_result_adopted").exists()


def test_a_step_whose_predecessor_completion_was_lost_does_not_run_and_the_reconciler_resumes():
    """An asynchronous commit (runner.async_commit) lost in a database crash: the database is back
    at step `a`, whole, while the message of step `b` was already sent. `b` must not run (the final
    step would then finish the execution without `a`'s result); the reconciler re-runs from `a`."""
    execution = _execution(_steps("a", "b", "c"))
    engine.run_step(str(execution.pk), 1, 0, 0)
    lost = timezone.now() - timezone.timedelta(hours=1)  # `a`'s completion gone: cursor, heartbeat
    StepRun.objects.filter(execution=execution).delete()
    Execution.objects.filter(pk=execution.pk).update(cursor=0, heartbeat_at=lost, context={"x": 1})
    with pytest.raises(engine.StaleMessage):
        engine.run_step(str(execution.pk), 1, 1, 1)
    with pytest.raises(engine.StaleMessage):
        engine.run_step(str(execution.pk), 1, 2, 2)
    execution.refresh_from_db()
    assert (execution.cursor, execution.status) == (0, Execution.Status.RUNNING)
    assert not StepRun.objects.filter(execution=execution).exists()  # nothing ran past the cursor

    assert str(execution.pk) in engine.reconcile(waiting={})
    for i in range(3):
        engine.run_step(str(execution.pk), 2, i, i)
    execution.refresh_from_db()
    assert execution.status == Execution.Status.SUCCEEDED
    assert [execution.context[n]["value"] for n in "abc"] == ["a", "b", "c"]


@pytest.mark.parametrize("enabled", [True, False])
def test_only_an_intermediate_steps_completion_commits_asynchronously(settings, enabled):
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    settings.NEXUS_ASYNC_STEP_COMMIT = enabled
    execution = _execution(_steps("a", "b"))
    seen = []
    for i in range(2):
        with CaptureQueriesContext(connection) as captured:
            engine.run_step(str(execution.pk), 1, i, i)
        seen.append(sum("synchronous_commit" in q["sql"] for q in captured.captured_queries))
    expected = 1 if enabled and connection.vendor == "postgresql" else 0
    assert seen == [expected, 0]  # the final step's commit waits for the flush: `succeeded` is durable
