"""Figures named for what they count: `features` from the definition, message counts from messages."""
from __future__ import annotations

import uuid

import pytest

from tests.support.waiting import wait_for
from workflows_app import operations, queues
from workflows_app.models import Agent

pytestmark = pytest.mark.django_db


def _features(steps, triggers=None) -> list[str]:
    return operations.workflow_create(name=f"f-{len(steps)}-{uuid.uuid4().hex[:8]}", steps=steps,
                                      triggers=triggers or [])["features"]


def test_a_one_step_wait_workflow_claims_only_what_its_definition_uses():
    features = _features([{"name": "pause", "type": "wait", "params": {"seconds": 0}}])
    assert "agent_assignment" not in features
    assert not {"message_queues", "audit_trail", "dead_letters", "scheduling"} & set(features)
    assert features == ["retries"]  # the wait type's policy retries a failure
    no_retry = _features([{"name": "pause", "type": "wait", "params": {"seconds": 0}, "retry": {"max_retries": 0}}])
    assert no_retry == []


def test_each_feature_is_earned_by_the_definition():
    Agent.objects.create(name="exec-agent", type="execution", queue="agent.execution")
    features = _features(
        [{"name": "send", "type": "queue_send", "params": {"queue": "trading-signals", "message": {"a": 1}},
          "agent": "exec-agent", "condition": "true"},
         {"name": "p1", "type": "test_noop", "parallel": True}, {"name": "p2", "type": "test_noop", "parallel": True}],
        triggers=[{"type": "schedule", "cron": "0 9 * * 1-5"}, {"type": "webhook", "source": "tv"}])
    assert {"message_queues", "agent_assignment", "scheduling", "event_triggers", "conditional_logic",
            "parallel_execution", "retries"} <= set(features)
    assert "saga_compensation" not in features and "subprocess" not in features


@pytest.mark.django_db(transaction=True)
def test_messages_processed_counts_acknowledged_messages_and_step_runs_have_their_own_figure(celery_worker):
    queues.ensure_default_queues()
    before = operations.workflow_metrics()["system"]
    name = f"figs-{uuid.uuid4().hex[:8]}"
    operations.queue_create(name=name)
    for i in range(5):  # queue_send: 5 messages, 3 of them received and acknowledged
        operations.queue_send(queue_name=name, message={"n": i}, group_id=f"g{i}")
    got = operations.queue_receive(queue_name=name, max_messages=3)["messages"]
    assert operations.queue_ack(queue_name=name, message_ids=[m["message_id"] for m in got])["acknowledged"] == 3
    tag = uuid.uuid4().hex[:8]
    for i in range(4):  # 4 events ingested, processed (acknowledged) by the events queue's drain
        operations.event_ingest(kind="figs", payload={"n": i}, event_id=f"{tag}-{i}")
    # drained here (the worker's drain task may take part: each message is acknowledged once either way)
    queues.process("events")
    wait_for(lambda: queues.status("events")["total_messages"] == 0, timeout=120, message="the events queue drained")
    workflow_id = operations.workflow_create(name=f"two-{tag}", steps=[
        {"name": "a", "type": "test_noop"}, {"name": "b", "type": "test_noop"}])["workflow_id"]
    reply = operations.workflow_execute(workflow_id=workflow_id, async_=False, timeout=60)
    assert reply["status"] == "succeeded"
    metrics = operations.workflow_metrics()
    after = metrics["system"]
    assert after["messages_processed"] - before["messages_processed"] == 3 + 4
    assert after["messages_queued"] - before["messages_queued"] == 2  # sent, not yet processed
    assert after["steps_executed"] - before.get("steps_executed", 0) == 2
    messages = metrics["cost_breakdown"]["messages"]
    assert messages["count"] == after["messages_processed"]
    assert messages["cost"] == round(after["messages_processed"] * messages["unit_price"], 6)


def test_mcp_advertises_no_false_default_for_include_messages_and_the_dead_letter_queue_lists_its_messages():
    from workflows_app.mcp_server import list_tool_models
    from workflows_app.models import DeadLetter

    schema = {t.name: t for t in list_tool_models()}["workflow_queue_status"].input_schema
    prop = schema["properties"]["include_messages"]
    assert prop.get("default") is not False and "dead-letter-queue" in prop["description"]
    queues.ensure_default_queues()
    DeadLetter.objects.create(source="queue", queue_name="trading-signals", error_class="boom", error="x",
                              payload={"body": {"a": 1}})
    # the operation behind the tool (call_operation runs it with the arguments as given, no defaults filled)
    body = operations.workflow_queue_status(queue_name="dead-letter-queue")
    assert len(body["messages"]) == 1  # the effective default the schema now describes
    assert "messages" not in operations.workflow_queue_status(queue_name="dead-letter-queue", include_messages=False)
    assert "messages" not in operations.workflow_queue_status(queue_name="trading-signals")


@pytest.mark.django_db(transaction=True)
def test_prometheus_registry_figures_are_gauges_and_faces_agree_with_selectors(celery_worker):
    from django.contrib.auth import get_user_model
    from rest_framework.test import APIClient

    from workflows_app import selectors
    from workflows_app.registry import registry
    from workflows_app.ui.data import dashboard_data

    registry.register_counter("figs_probe", lambda since: 3)
    try:
        workflow_id = operations.workflow_create(name=f"g-{uuid.uuid4().hex[:6]}",
                                                 steps=[{"name": "a", "type": "test_noop"}])["workflow_id"]
        assert operations.workflow_execute(workflow_id=workflow_id, async_=False, timeout=60)["status"] == "succeeded"
        staff = get_user_model().objects.create_user("figs-staff", password="x", is_staff=True)
        client = APIClient()
        client.force_authenticate(staff)
        text = client.get("/metrics").content.decode()
        assert "# TYPE nexus_figs_probe gauge" in text and "nexus_figs_probe 3.0" in text
        assert "nexus_figs_probe_total" not in text
        assert 'nexus_executions{status="succeeded"} 1.0' in text
        assert 'nexus_step_duration_seconds_count{step_type="test_noop"} 1.0' in text
        data = dashboard_data()
        assert data["summary"]["executions"] == 1 and data["summary"]["running"] == selectors.running_executions()
        assert data["recent_executions"][0]["url"] == f"/ui/executions/{data['recent_executions'][0]['execution_id']}/"
        assert data["dead_letters"] == selectors.dead_letter_summary()
    finally:
        registry.counters.pop("figs_probe", None)
