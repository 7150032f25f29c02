"""Figures named for what they count: `features` from the definition, message counts from messages."""
from __future__ import annotations

import pytest

from workflows_app import operations
from workflows_app.models import Agent

pytestmark = pytest.mark.django_db


def _features(steps, triggers=None) -> list[str]:
    return operations.workflow_create(name=f"f-{len(steps)}-{id(steps)}", steps=steps,
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
