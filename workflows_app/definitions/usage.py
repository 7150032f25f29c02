"""What a definition uses ("features" in the create reply), computed from the definition alone."""
from __future__ import annotations

from workflows_app.definitions.specs import execution_groups, step_type_name
from workflows_app.registry import registry

FEATURES = {  # name -> what the definition uses to earn it (docs/api.md "features")
    "message_queues": "a step or conditional action sends to a named queue (its params name a `queue`)",
    "agent_assignment": "a step is assigned to an agent (`agent`, e.g. by workflow_agent_assign)",
    "scheduling": "a `schedule` trigger",
    "event_triggers": "a trigger other than schedule/manual (market, news, webhook, event)",
    "conditional_logic": "a step with a `condition`",
    "parallel_execution": "steps that run in parallel (`parallel` or a shared `group`)",
    "saga_compensation": "a step with `compensate`",
    "subprocess": "a `subprocess` step",
    "circuit_breaker": "a `circuit_breaker` step",
    "retries": "a step whose retry policy (its `retry`, else its type's) allows at least one retry",
}


def _step_types(step: dict) -> list:
    names = [step_type_name(step), *step.get("actions", [])]
    return [t for t in (registry.get_step_type(n) for n in names) if t is not None]


def _sends_to_queue(step: dict) -> bool:
    return any("queue" in getattr(t.params_model, "model_fields", {}) for t in _step_types(step))


def _retries(step: dict) -> bool:
    if step.get("retry") is not None:
        return int(step["retry"].get("max_retries", 3)) > 0
    step_type = registry.get_step_type(step_type_name(step))
    return step_type is not None and step_type.retry.max_retries > 0


def features(definition: dict) -> list[str]:
    """What a definition uses, for the create reply: computed from the definition alone (nothing is
    claimed by default; the engine-wide audit trail and dead letters are not features, see docs/api.md)."""
    steps = definition.get("steps", [])
    triggers = definition.get("triggers", [])
    checks = {
        "message_queues": any(_sends_to_queue(s) for s in steps),
        "agent_assignment": any(s.get("agent") for s in steps),
        "scheduling": any(t.get("type") in ("schedule", "market_schedule") for t in triggers),
        "event_triggers": any(t.get("type") not in ("schedule", "market_schedule", "manual") for t in triggers),
        "conditional_logic": any(s.get("condition") for s in steps),
        "parallel_execution": any(len(g) > 1 for g in execution_groups(steps)),
        "saga_compensation": any(s.get("compensate") for s in steps),
        "subprocess": any(step_type_name(s) == "subprocess" for s in steps),
        "circuit_breaker": any(step_type_name(s) == "circuit_breaker" for s in steps),
        "retries": any(_retries(s) for s in steps),
    }
    return [name for name in FEATURES if checks[name]]
