"""The definition's shape: the root and step schemas, a step's type, the order steps run in.

A definition is plain JSON ({name, description, priority, queue, metadata, steps, triggers})."""
from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from workflows_app import expressions

NAME_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.\-]{0,99}$"
MAX_STEPS = 100
MAX_TRIGGERS = 50


class RetrySpec(BaseModel):
    model_config = ConfigDict(extra="forbid")
    max_retries: int = Field(3, ge=0, le=20)
    backoff: float = Field(1.0, ge=0, le=3600)
    backoff_max: float = Field(60.0, ge=0, le=86400)
    jitter: bool = True


class StepSpec(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: str = Field(pattern=NAME_PATTERN)
    type: str | None = Field(None, max_length=100)
    description: str = Field("", max_length=2000)
    params: dict[str, Any] = Field(default_factory=dict)
    condition: str | None = Field(None, max_length=expressions.MAX_LENGTH)
    actions: list[str] = Field(default_factory=list, max_length=20)
    parallel: bool = False
    group: str | None = Field(None, max_length=100)
    retry: RetrySpec | None = None
    timeout: int | None = Field(None, ge=1, le=86400)
    compensate: str | None = Field(None, max_length=100)
    agent: str | None = Field(None, max_length=100)
    workflow_id: str | None = Field(None, max_length=200)
    # An approval's branch when rejected (or expired): a later step's name; without it, a rejection fails.
    on_reject: str | None = Field(None, max_length=100)


class DefinitionSpec(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: str = Field(pattern=NAME_PATTERN)
    description: str = Field("", max_length=5000)
    priority: int = Field(5, ge=0, le=10)
    queue: str = Field("workflows", pattern=NAME_PATTERN)
    metadata: dict[str, Any] = Field(default_factory=dict)
    steps: list[dict[str, Any]] = Field(min_length=1, max_length=MAX_STEPS)
    triggers: list[dict[str, Any]] = Field(default_factory=list, max_length=MAX_TRIGGERS)


def step_type_name(step: dict) -> str:
    """A step without `type` takes its name as its type (the specification's saga lists only names)."""
    return step.get("type") or step["name"]


def execution_groups(steps: list[dict]) -> list[list[int]]:
    """Step indexes in running order: consecutive steps sharing a group (or all `parallel`) run together."""
    groups: list[list[int]] = []
    previous_key = None
    for index, step in enumerate(steps):
        key = step.get("group") or ("__parallel__" if step.get("parallel") else None)
        if key is not None and key == previous_key:
            groups[-1].append(index)
        else:
            groups.append([index])
        previous_key = key
    return groups
