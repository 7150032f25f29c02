"""Priority, worker loss and the reconciler, with worker subprocesses on their own queues."""
import threading
import time

import pytest
from django.db import connection
from django.utils import timezone

from tests.support.waiting import wait_for
from tests.workflows_app.helpers import create
from tests.workflows_app.support import client
from workflows_app import operations
from workflows_app.engine import reconcile, wait_until_final
from workflows_app.models import Execution, StepRun

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.slow]


def test_higher_priority_workflow_is_consumed_first(worker_process):
    tag = f"prio-{time.monotonic_ns()}"
    low = create("low", [{"name": "s", "type": "test_record", "params": {"tag": tag, "sleep": 0.05}}],
                 priority=1, queue="prio-test")
    high = create("high", [{"name": "s", "type": "test_record", "params": {"tag": tag, "sleep": 0.05}}],
                  priority=9, queue="prio-test")
    low_ids = [operations.workflow_execute(workflow_id=low)["execution_id"] for _ in range(5)]
    high_id = operations.workflow_execute(workflow_id=high)["execution_id"]
    # all six messages are waiting in the queue (sent synchronously above) before any worker consumes it
    worker_process(queues="prio-test", concurrency=1)
    for pk in [*low_ids, high_id]:
        assert wait_until_final(pk, 120).status == "succeeded"
    order = sorted(StepRun.objects.filter(execution_id__in=[*low_ids, high_id]), key=lambda r: r.started_at)
    assert str(order[0].execution_id) == high_id


def test_worker_killed_mid_step_execution_completes_and_side_effect_happens_once(worker_process, settings):
    tag = f"kill-{time.monotonic_ns()}"
    timeout = 30  # the step's time limit: far above its 5 s even on a busy machine (the clock below is explicit)
    wf = create("killed", [
        {"name": "effect", "type": "test_side_effect", "params": {"tag": tag, "sleep": 5}, "timeout": timeout},
        {"name": "after", "type": "test_noop"},
    ], queue="kill-test")
    first = worker_process(queues="kill-test", concurrency=1)
    execution_id = operations.workflow_execute(workflow_id=wf)["execution_id"]
    r = client()
    wait_for(lambda: r.llen(f"test:attempts:{tag}") == 1, timeout=120, message="first attempt started")
    first.kill()  # SIGKILL mid-step: the message is never acked
    lost = Execution.objects.get(pk=execution_id)
    assert lost.status == "running"

    worker_process(queues="kill-test", concurrency=1)
    # Lost messages are found by the reconciler once the step's timeout plus a margin passed. The
    # reconciler's clock is driven from the last heartbeat, not from how long the restart took.
    beat = lost.heartbeat_at
    assert reconcile(now=beat + timezone.timedelta(seconds=timeout), margin=1) == []  # the step may still run
    later = beat + timezone.timedelta(seconds=timeout + 1 + 1)
    assert reconcile(now=later, margin=1) == [execution_id]
    execution = wait_until_final(execution_id, 120)
    assert execution.status == "succeeded", execution.error
    assert int(r.get(f"test:effects:{tag}")) == 1          # the side effect happened exactly once
    assert r.lrange(f"test:attempts:{tag}", 0, -1) == ["1", "2"]
    assert execution.dispatch_count == 2


def test_two_reconcilers_at_once_dispatch_once():
    wf = create("stale", [{"name": "s", "type": "test_noop"}], queue="nobody-consumes-this")
    execution_id = operations.workflow_execute(workflow_id=wf)["execution_id"]
    # Silent for an hour: lost, as far as any reconciler can tell.
    Execution.objects.filter(pk=execution_id).update(heartbeat_at=timezone.now() - timezone.timedelta(hours=1))
    results = []

    def reconcile_in_thread():
        try:
            results.append(reconcile(margin=1))
        finally:
            connection.close()

    threads = [threading.Thread(target=reconcile_in_thread) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(len(r) for r in results) == [0, 1]
    assert Execution.objects.get(pk=execution_id).dispatch_count == 2


def test_agent_assignment_moves_the_step_to_the_agents_queue(worker_process):
    wf = create("assigned", [{"name": "first", "type": "test_noop"}, {"name": "second", "type": "test_noop"}],
                queue="assign-test")
    reply = operations.workflow_agent_assign(workflow_id=wf, task_id="second", agent_type="analyst")
    assert reply["assignment"]["queue"] == "agent.analyst" and reply["version"] == 2
    worker_process(queues="assign-test,agent.analyst", concurrency=1)
    execution = wait_until_final(operations.workflow_execute(workflow_id=wf)["execution_id"], 120)
    assert execution.status == "succeeded", execution.error
    queues = dict(StepRun.objects.filter(execution=execution).values_list("step_name", "queue"))
    assert queues == {"first": "assign-test", "second": "agent.analyst"}
