"""A worker SIGKILLed with executions in flight while the other queues are flooded: the dedicated
maintenance consumer and beat (real subprocesses) resume every lost execution within
step timeout + margin + one reconcile period, every execution ends final, nothing happens twice.

Everything runs on a Redis of this module's own (the flood must not reach any other test's worker):
two worker subprocesses as in the Procfile (`worker` on every queue, `maintenance` on its own), a
real beat sending the reconciler every 2 s, and executions started from a client subprocess.
"""
from __future__ import annotations

import json
import threading
import time
from collections import Counter
from datetime import UTC, datetime

import pytest
from django.db.models import Count

from tests.support.waiting import wait_for
from tests.workflows_app.helpers import create
from tests.workflows_app.recovery_support import start_executions
from trading_app.models import Order
from workflows_app.models import AuditEvent, Execution, StepRun

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.slow]
TIMEOUT, MARGIN, EVERY = 5, 3, 2  # step timeout, reconcile margin and period (s) for this test
BOUND = TIMEOUT + MARGIN + EVERY
# Starvation guard, not a timing test: a starved reconciler resumed nothing for minutes (kombu's
# visibility timeout is an hour). The resume times themselves are printed and written up in
# docs/operations.md; on a busy machine processes get CPU late, so the ceiling is 10x the bound.
STARVED_AFTER = 10 * (5 + 3 + 2)
FINAL = {"succeeded", "failed", "cancelled", "timed_out", "compensated"}
N = 50
FLOOD = 120  # per queue: 2 x 120 one-second tasks on 4 processes keep the worker busy for > 60 s


def _steps(kind: str, tag: str) -> tuple[list, dict]:
    middle = ({"name": "effect", "type": "test_side_effect", "params": {"tag": tag, "sleep": 0.5}}
              if kind == "side_effect" else
              {"name": "buy", "type": "trade_execution", "params": {"signal": "BUY", "risk_limit": 0.001}})
    # Slow steps around the middle one that hold a worker (a `wait` no longer does: it suspends).
    steps = [{"name": "before", "type": "test_record", "params": {"tag": tag, "sleep": 0.5}}, middle,
             {"name": "after", "type": "test_record", "params": {"tag": tag, "sleep": 0.5}}]
    for step in steps:
        step["timeout"] = TIMEOUT
    return steps, ({"test_mode": True, "symbols": ["AAPL"]} if kind == "paper_buy" else {})


@pytest.mark.parametrize("kind", ["side_effect", "paper_buy"])
def test_lost_executions_resume_within_the_bound_while_the_other_queues_are_flooded(
        kind, own_redis, beats, worker_process, monkeypatch, settings):
    settings.NEXUS_SIM_NOW = "2025-09-17T17:00:00Z"  # the paper broker fills during market hours
    monkeypatch.setenv("NEXUS_SIM_NOW", settings.NEXUS_SIM_NOW)
    monkeypatch.setenv("REDIS_URL", own_redis.url)  # every subprocess below talks to our Redis
    monkeypatch.setenv("NEXUS_RECONCILE_MARGIN_SECONDS", str(MARGIN))
    monkeypatch.setenv("NEXUS_RECONCILE_EVERY", str(EVERY))
    tag = f"{kind}-{time.monotonic_ns()}"
    steps, input_data = _steps(kind, tag)
    wf = create(f"recover-{tag}", steps)
    slow = [{"name": "slow", "type": "test_record", "params": {"tag": f"{tag}-flood", "sleep": 1}, "timeout": TIMEOUT}]
    flood = [create(f"flood-{queue}-{tag}", slow, queue=queue) for queue in ("trading", "workflows")]

    worker_process(queues="maintenance", concurrency=1)  # the Procfile's `maintenance` process
    worker = worker_process(concurrency=4)  # the Procfile's `worker`: every queue of NEXUS_QUEUES
    beats(own_redis.url)
    ids = start_executions(own_redis.url, [(wf, N, input_data)])[wf]

    # The other queues flooded: the flood is sent from a client process started at once (it needs
    # seconds to boot on a busy machine) and keeps coming after the kill.
    flooding = threading.Thread(target=start_executions, daemon=True,
                                args=(own_redis.url, [(flood[0], FLOOD, {}), (flood[1], FLOOD, {})]))
    flooding.start()

    def started_middle() -> int:
        return StepRun.objects.filter(execution_id__in=ids, step_name=steps[1]["name"]).count()

    def time_to_kill() -> bool:
        # once the flood has begun, or before ours run out whatever the flood's pace (on a slow
        # machine the flood may begin late: it is still the backlog the restarted worker meets)
        flood_begun = Execution.objects.filter(workflow_id__in=flood).count() >= 20
        ours_left = Execution.objects.filter(pk__in=ids).exclude(status__in=FINAL).count()
        return started_middle() >= 5 and (flood_begun or ours_left <= N // 3)

    wait_for(time_to_kill, timeout=120, interval=0.1, message="executions mid-flight and the flood begun")
    worker.kill()  # SIGKILL the worker's whole process group: prefetched and running messages are lost
    killed_at = time.time()
    in_flight = set(Execution.objects.filter(pk__in=ids).exclude(status__in=FINAL).values_list("pk", flat=True))
    assert in_flight, "nothing was in flight at the kill"
    worker_process(concurrency=4)  # restarted, as supervisors do

    def final() -> int:
        return Execution.objects.filter(pk__in=ids, status__in=FINAL).count()

    wait_for(lambda: final() == N, timeout=900, interval=1, message=f"{N} executions final")
    flooding.join(timeout=600)
    done_at = time.time()

    statuses = Counter(Execution.objects.filter(pk__in=ids).values_list("status", flat=True))
    if kind == "paper_buy":
        # Fifty BUYs of one symbol on one account race for the 10 % position cap: sizing reads the
        # position before the order, the broker checks again under the account lock and may refuse
        # (risk_limit_breach). That refusal is the cap holding, not a recovery failure.
        refused = Execution.objects.filter(pk__in=ids, status="failed")
        assert all((e.error or {}).get("error_class") == "risk_limit_breach" for e in refused), \
            [e.error for e in refused]
        assert statuses["succeeded"] + statuses["failed"] == N, statuses
    else:
        assert statuses == {"succeeded": N}, statuses
    # lost executions were resumed by the reconciler within the bound, flood or not
    resumed = {}  # every lost execution, ours or the flood's (the killed worker held some of each)
    everyone = [*ids, *Execution.objects.filter(workflow_id__in=flood).values_list("pk", flat=True)]
    for event in AuditEvent.objects.filter(execution_id__in=everyone, event="execution_dispatched").order_by("timestamp"):
        if (event.data or {}).get("reason") == "reconciled" and event.timestamp.timestamp() > killed_at:
            resumed.setdefault(event.execution_id, event.timestamp.timestamp() - killed_at)
    assert resumed, "the reconciler resumed nothing: no execution was lost?"
    ours = sum(1 for pk in resumed if str(pk) in set(ids))
    assert max(resumed.values()) <= STARVED_AFTER, sorted(resumed.values())
    # ...while the flood still kept the queues busy (flood executions finished after the last resume)
    last_resume = datetime.fromtimestamp(killed_at + max(resumed.values()), tz=UTC)
    flood_left = Execution.objects.filter(workflow_id__in=flood, finished_at__gt=last_resume).count()
    assert flood_left > 0, "the flood was over before the reconciler ran: the test proved nothing"

    extra = {}
    if kind == "side_effect":
        r = own_redis.client()
        assert int(r.get(f"test:effects:{tag}")) == N  # one effect per execution, none twice
    else:
        orders = Order.objects.filter(execution_id__in=ids, parent__isnull=True)
        per_execution = list(orders.values("execution_id").annotate(n=Count("id")))
        assert all(row["n"] == 1 for row in per_execution), per_execution  # 0 duplicate orders
        assert orders.values("client_order_id").distinct().count() == orders.count()
        # each execution's own record of its trade names exactly the order that exists (the position
        # cap turns later BUYs of the same symbol into `skipped`, which places nothing)
        reported = {}
        for run in StepRun.objects.filter(execution_id__in=ids, step_name="buy", status="succeeded"):
            reported[str(run.execution_id)] = (run.result or {}).get("client_order_id")
        assert len(reported) == statuses["succeeded"]
        placed = {cid for cid in reported.values() if cid}
        assert placed and placed == set(orders.exclude(status="rejected").values_list("client_order_id", flat=True))
        extra["orders"], extra["skipped_by_caps"] = len(placed), statuses["succeeded"] - len(placed)
        extra["refused_by_broker_cap"] = statuses["failed"]
    print(json.dumps({"kind": kind, "in_flight_at_kill": len(in_flight), "resumed": len(resumed), "resumed_of_ours": ours,
                      "max_resume_after_kill_s": round(max(resumed.values()), 1), "bound_s": BOUND,
                      "all_final_after_kill_s": round(done_at - killed_at, 1), "flood_executions_finished_after_last_resume": flood_left, **extra}))


def test_a_message_waiting_behind_a_backlog_is_late_not_lost(own_redis, monkeypatch):
    """The reconciler leaves alone an execution whose message still waits in the broker (it would only
    send it to the back of the queue again), and resumes it once that message is gone."""
    from django.utils import timezone

    from workflows_app.engine import reconcile, waiting_dispatches

    wf = create(f"backlogged-{time.monotonic_ns()}", [{"name": "s", "type": "test_noop", "timeout": TIMEOUT}],
                queue="nobody-consumes-this-h1")
    execution_id = start_executions(own_redis.url, [(wf, 1, {})])[wf][0]
    monkeypatch.setattr("workflows_app.circuit._client", own_redis.client())  # look into our Redis
    waiting = waiting_dispatches()
    assert (execution_id, 1) in waiting
    later = timezone.now() + timezone.timedelta(seconds=TIMEOUT + MARGIN + 1)  # silent longer than the bound
    assert reconcile(now=later, margin=MARGIN, waiting=waiting) == []
    own_redis.client().flushdb()  # the message is gone (e.g. a Redis restarted empty): now it is lost
    assert reconcile(now=later, margin=MARGIN, waiting=waiting_dispatches()) == [execution_id]
