"""Agent operations: route a step to an agent (its Celery queue), list the agents."""
from __future__ import annotations

from pydantic import Field, field_validator

from workflows_app import selectors
from workflows_app.operations.access import workflow_for
from workflows_app.operations.catalogue import catalogue
from workflows_app.operations.fields import Args, Flag, NoArgs, refuse, workflow_ref
from workflows_app.services import agents


class AgentAssignArgs(Args):
    workflow_id: str = workflow_ref()
    task_id: str = Field(..., max_length=100, description="The step's name.")
    agent_type: str = Field(None, max_length=50)
    use_vector_similarity: Flag = False

    @field_validator("task_id", mode="before")
    @classmethod
    def _step_name(cls, value):
        if not isinstance(value, str) or not value:
            raise refuse("must name a step of the workflow")
        return value


@catalogue.operation(AgentAssignArgs, description="Route a step to an agent (its Celery queue).")
def workflow_agent_assign(args: AgentAssignArgs, user) -> dict:
    workflow = workflow_for(args.workflow_id, user)
    workflow, agent, similarity = agents.assign(workflow, args.task_id, args.agent_type,
                                                use_similarity=args.use_vector_similarity)
    return {"success": True, "workflow_id": str(workflow.id), "version": workflow.version,
            "assignment": {"step": args.task_id, "agent": agent.name, "agent_type": agent.type, "queue": agent.queue,
                           "matching": "vector_similarity" if args.use_vector_similarity else "agent_type",
                           "similarity": round(similarity, 4) if similarity is not None else None}}


@catalogue.operation(NoArgs, description="The agents and their queues.")
def agent_list(args: NoArgs, user) -> dict:
    items = selectors.agents()
    return {"success": True, "agents": items, "count": len(items)}
