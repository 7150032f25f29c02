"""Agent matching: a step goes to an agent type's queue, chosen by name or by similarity.

With similarity, the step (its name, type and param names) and each agent (its capabilities and
type) are bags of words; the agent with the highest cosine similarity wins.
"""
from __future__ import annotations

import math
import re
from collections import Counter

from celery import current_app

from workflows_app import definitions
from workflows_app.errors import OperationError
from workflows_app.models import Agent, Workflow
from workflows_app.services import workflows


def _tokens(text: str) -> Counter:
    return Counter(t for t in re.split(r"[^a-z0-9]+", text.lower()) if t)


def _cosine(a: Counter, b: Counter) -> float:
    dot = sum(a[t] * b[t] for t in a)
    norm = math.sqrt(sum(v * v for v in a.values())) * math.sqrt(sum(v * v for v in b.values()))
    return dot / norm if norm else 0.0


def best_match(step: dict, agent_type: str | None) -> tuple[str | None, float | None]:
    """The most similar agent's type (among agents of `agent_type` if given) and its similarity."""
    step_vector = _tokens(" ".join([step["name"], definitions.step_type_name(step), *step.get("params", {})]))
    candidates = Agent.objects.filter(type=agent_type) if agent_type else Agent.objects.all()
    scored = sorted(((_cosine(step_vector, _tokens(" ".join(map(str, a.capabilities)) + " " + a.type)), a)
                     for a in candidates), key=lambda pair: -pair[0])
    if not scored:
        return agent_type, None
    similarity, best = scored[0]
    return best.type, similarity


def assign(workflow: Workflow, step_name: str, agent_type: str | None, *, use_similarity: bool = False):
    """Route step `step_name` to an agent (a new workflow version); running workers start consuming
    the agent's queue at once. Returns (workflow, agent, similarity or None)."""
    step = next((s for s in workflow.current_version.definition["steps"] if s["name"] == step_name), None)
    if step is None:
        raise OperationError("INVALID_INPUT_DATA", f"workflow has no step '{step_name}'", {"field": "task_id"})
    similarity = None
    if use_similarity:
        agent_type, similarity = best_match(step, agent_type)
    if not agent_type:
        raise OperationError("INVALID_INPUT_DATA", "agent_type is required", {"field": "agent_type"})
    workflow, agent = workflows.assign_agent(workflow.id, step_name, agent_type)
    try:

        current_app.control.add_consumer(agent.queue, reply=False)
    except Exception:  # noqa: BLE001 - workers also pick agent queues up at start
        pass
    return workflow, agent, similarity
