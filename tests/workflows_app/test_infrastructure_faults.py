"""Database and Redis faults on a step's path, made for real: a PostgreSQL backend terminated under
the worker (pg_terminate_backend), a Redis server killed under a step. The step is retried with
backoff and the execution completes with its side effect once; when the fault persists past the
retries, the execution ends with an `infrastructure` dead letter instead of staying `running`."""
import time

import pytest
from django.db import InterfaceError, OperationalError, connection
from redis.exceptions import ConnectionError as RedisConnectionError

from nexus_project.runtime import EmbeddedRedis
from tests.support.waiting import wait_for
from tests.workflows_app.helpers import create, events, run
from tests.workflows_app.support import client
from workflows_app import operations
from workflows_app.engine import wait_until_final
from workflows_app.errors import is_infrastructure
from workflows_app.models import AuditEvent, DeadLetter, Execution, StepRun

pytestmark = pytest.mark.django_db(transaction=True)
postgres_only = pytest.mark.skipif(connection.vendor != "postgresql", reason="pg_terminate_backend needs PostgreSQL")


def infra_retries(execution) -> list[AuditEvent]:
    return [e for e in AuditEvent.objects.filter(execution=execution, event="step_retrying")
            if e.data.get("error_class") == "infrastructure"]


def test_connection_errors_are_infrastructure_and_other_database_errors_are_not():
    from django.db import IntegrityError

    assert is_infrastructure(OperationalError("database is locked"))
    assert is_infrastructure(InterfaceError("connection already closed"))
    assert is_infrastructure(RedisConnectionError("Connection refused"))
    assert not is_infrastructure(IntegrityError("duplicate key"))
    assert not is_infrastructure(ValueError("bad input"))


@postgres_only
def test_backend_killed_while_the_step_runs_is_retried_and_completes_with_one_side_effect(celery_worker):
    tag = f"pgkill-{time.monotonic_ns()}"
    wf = create("pg-killed", [
        {"name": "effect", "type": "test_pg_victim", "params": {"tag": tag, "sleep": 60}, "timeout": 120},
        {"name": "after", "type": "test_noop"},
    ])
    execution_id = operations.workflow_execute(workflow_id=wf)["execution_id"]
    r = client()
    _, pid = r.blpop([f"test:pg-pid:{tag}"], timeout=120) or (None, None)
    assert pid, "the step never published its backend pid"
    with connection.cursor() as cursor:  # the test's own connection ends the worker's
        cursor.execute("SELECT pg_terminate_backend(%s)", [int(pid)])
        assert cursor.fetchone()[0] is True
    r.rpush(f"test:pg-killed:{tag}", 1)  # let the step return: its completion meets the dead connection

    execution = wait_until_final(execution_id, 120)
    assert execution.status == "succeeded", execution.error
    assert int(r.get(f"test:effects:{tag}")) == 1  # the side effect happened once
    assert r.lrange(f"test:attempts:{tag}", 0, -1) == ["1", "2"]
    retries = infra_retries(execution)
    assert len(retries) == 1 and retries[0].step == "effect"
    runs = list(StepRun.objects.filter(execution=execution, step_name="effect").order_by("attempt")
                .values_list("status", "error_class"))
    assert runs == [("retrying", "infrastructure"), ("succeeded", "")]
    assert events(execution)[-1] == "workflow_completed"
    assert not DeadLetter.objects.filter(execution=execution).exists()


@postgres_only
def test_step_whose_server_hangs_up_at_completion_is_retried_and_completes(celery_worker):
    tag = f"pgself-{time.monotonic_ns()}"
    wf = create("pg-self", [
        {"name": "first", "type": "test_noop"},
        {"name": "effect", "type": "test_pg_suicide", "params": {"tag": tag, "failures": 2}},
        {"name": "after", "type": "test_noop"},
    ])
    execution = run(wf, timeout=120)
    assert execution.status == "succeeded", execution.error
    r = client()
    assert int(r.get(f"test:effects:{tag}")) == 1
    assert r.lrange(f"test:attempts:{tag}", 0, -1) == ["1", "2", "3"]
    assert len(infra_retries(execution)) == 2
    assert StepRun.objects.get(execution=execution, step_name="effect", status="succeeded").attempt == 3


@postgres_only
def test_parallel_member_whose_connection_dies_is_retried_and_the_group_joins(celery_worker):
    tag = f"pgpar-{time.monotonic_ns()}"
    wf = create("pg-parallel", [
        {"name": "a", "type": "test_pg_suicide", "params": {"tag": tag, "failures": 1}, "group": "g"},
        {"name": "b", "type": "test_noop", "group": "g"},
        {"name": "end", "type": "transform", "params": {"set": {"got": "a.effects"}}},
    ])
    execution = run(wf, timeout=120)
    assert execution.status == "succeeded", execution.error
    assert execution.context["end"]["got"] == 1 and int(client().get(f"test:effects:{tag}")) == 1
    assert [e.step for e in infra_retries(execution)] == ["a"]


@postgres_only
def test_persistent_database_fault_ends_in_an_infrastructure_dead_letter(celery_worker, settings):
    tag = f"pgdead-{time.monotonic_ns()}"
    wf = create("pg-dead", [
        {"name": "effect", "type": "test_pg_suicide", "params": {"tag": tag, "failures": 1000}},
        {"name": "after", "type": "test_noop"},
    ])
    execution = run(wf, timeout=120)
    assert execution.status == "failed"
    assert execution.error["error_class"] == "infrastructure" and execution.error["step"] == "effect"
    letter = DeadLetter.objects.get(execution=execution)
    assert letter.error_class == "infrastructure" and letter.step_name == "effect"
    assert str(letter.id) == execution.error["dead_letter_id"]
    attempts = settings.NEXUS_INFRA_MAX_RETRIES + 1
    assert letter.attempts == attempts
    assert len(client().lrange(f"test:attempts:{tag}", 0, -1)) == attempts
    assert int(client().get(f"test:effects:{tag}")) == 1  # every attempt ran the handler, the effect once
    trail = events(execution)
    assert trail.count("step_retrying") == settings.NEXUS_INFRA_MAX_RETRIES
    assert trail[-3:] == ["step_failed", "dead_lettered", "workflow_failed"]
    assert not StepRun.objects.filter(execution=execution, step_name="after").exists()


def test_redis_killed_under_a_step_is_retried_then_compensated_with_an_infrastructure_dead_letter(
        celery_worker, tmp_path):
    server = EmbeddedRedis(tmp_path, record=False)  # the test's own redis-server, killed for real
    url = server.start()
    tag = f"redisdead-{time.monotonic_ns()}"
    wf = create("redis-dead", [
        {"name": "reserve", "type": "test_record", "params": {"tag": tag}, "compensate": "test_undo"},
        {"name": "probe", "type": "test_redis_probe", "params": {"tag": tag, "value": url}},
    ])
    try:
        assert run(wf, timeout=60).status == "succeeded"  # the server is up: the probe works
    finally:
        server.process.kill()
        server.process.wait(10)
    execution = run(wf, timeout=120)
    assert execution.status == "compensated", execution.error
    assert execution.error["error_class"] == "infrastructure" and execution.error["step"] == "probe"
    letter = DeadLetter.objects.get(execution=execution)
    assert letter.error_class == "infrastructure" and "Connection" in letter.error
    assert len(infra_retries(execution)) > 0
    undone = StepRun.objects.filter(execution=execution, is_compensation=True).values_list("step_name", "status")
    assert list(undone) == [("reserve", "succeeded")]
    assert events(execution)[-1] == "workflow_compensated"


def test_redelivered_step_after_a_committed_success_returns_the_stored_result(celery_worker):
    """The idempotent half of retrying: a step whose success committed is not run again."""
    from workflows_app.engine import run_step

    tag = f"redeliver-{time.monotonic_ns()}"
    wf = create("redeliver", [{"name": "effect", "type": "test_side_effect", "params": {"tag": tag}}])
    execution = run(wf)
    assert execution.status == "succeeded", execution.error
    stored = StepRun.objects.get(execution=execution, step_name="effect").result
    wait_for(lambda: client().llen(f"test:attempts:{tag}") == 1, message="the one attempt")
    Execution.objects.filter(pk=execution.pk).update(status="running")  # as if the final commit were redelivered
    assert run_step(str(execution.id), execution.dispatch_count, 0, 0) == stored
    assert client().llen(f"test:attempts:{tag}") == 1


@postgres_only
def test_a_step_whose_reused_connection_died_between_tasks_reconnects_without_a_retry():
    """A worker's connection lives across tasks; its backend killed between two steps (a database
    restart), the next step's load finds it dead, reconnects and runs: no infrastructure retry."""
    import psycopg

    from workflows_app import engine

    wf = create("pg-between", [{"name": "a", "type": "test_noop"}, {"name": "b", "type": "test_noop"}],
                queue="nobody-consumes-this-between")
    execution_id = operations.workflow_execute(workflow_id=wf)["execution_id"]
    engine.run_step(execution_id, 1, 0, 0)
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_backend_pid()")
        pid = cursor.fetchone()[0]
    params = connection.get_connection_params()
    with psycopg.connect(**params, autocommit=True) as other:
        assert other.execute("SELECT pg_terminate_backend(%s)", [pid]).fetchone()[0] is True
    time.sleep(0.2)
    engine.run_step(execution_id, 1, 1, 1)  # the first query meets the dead connection
    execution = Execution.objects.get(pk=execution_id)
    assert execution.status == "succeeded", execution.error
    assert not infra_retries(execution)
