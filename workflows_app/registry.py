"""Registries the engine dispatches on. Domain apps fill them from their AppConfig.ready().

The engine knows nothing about trading: a step type is a name, a pydantic params model, a
handler and its defaults; a trigger type is a name, a params model and (for event triggers) an
evaluator; error classifiers map foreign exceptions to engine error classes; counters expose
domain figures (e.g. trades executed) to workflow_metrics. (A domain's own operations go into
the operation catalogue, ``workflows_app.operations.catalogue``.)
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from pydantic import BaseModel, ConfigDict


class NoParams(BaseModel):
    model_config = ConfigDict(extra="forbid")


@dataclass(frozen=True)
class RetryPolicy:
    max_retries: int = 3
    backoff: float = 1.0  # first delay, seconds; doubles every attempt
    backoff_max: float = 60.0
    jitter: bool = True


@dataclass
class StepContext:
    """What a handler sees. ``context`` is input_data plus every finished step's output
    (by step name and merged at the top level); it is a copy, handlers return their output."""

    execution_id: str
    workflow_id: str
    workflow_name: str
    step_name: str
    step_type: str
    params: BaseModel
    context: dict
    input_data: dict
    test_mode: bool
    attempt: int
    owner_id: int | None = None
    # For compensations: the output of the step being compensated.
    compensating: dict | None = None
    # The workflow version's steps (conditional actions may name other steps).
    steps: list = field(default_factory=list)
    audit: Callable[..., None] = field(default=lambda event, **data: None, repr=False)

    @property
    def idempotency_key(self) -> str:
        """Stable across retries and redeliveries of this step of this execution."""
        return f"{self.execution_id}:{self.step_name}"


Handler = Callable[[StepContext], dict]


@dataclass(frozen=True)
class StepType:
    name: str
    handler: Handler
    params_model: type[BaseModel] = NoParams
    queue: str = "workflows"
    retry: RetryPolicy = RetryPolicy()
    timeout: int | None = None
    description: str = ""
    # Usable as a named action of a `conditional` step (run with default params).
    action: bool = False


@dataclass(frozen=True)
class TriggerType:
    name: str
    params_model: type[BaseModel]
    # Event kinds this trigger listens to (e.g. "tick", "news"); empty for schedule/manual/webhook.
    event_kinds: tuple[str, ...] = ()
    # evaluator(trigger_params, event, state) -> (holds: bool, detail: dict); state is a per-trigger dict.
    evaluator: Callable[[BaseModel, dict, dict], tuple[bool, dict]] | None = None
    description: str = ""


@dataclass(frozen=True)
class ErrorInfo:
    error_class: str
    transient: bool
    retry_after: float | None = None


class Registry:
    def __init__(self) -> None:
        self.step_types: dict[str, StepType] = {}
        self.trigger_types: dict[str, TriggerType] = {}
        self.error_classifiers: list[Callable[[BaseException], ErrorInfo | None]] = []
        self.counters: dict[str, Callable[[Any], float]] = {}
        # source ("queue", ...) -> fn(dead_letter) -> dict describing where it went
        self.dead_letter_redrivers: dict[str, Callable[[Any], dict]] = {}
        # name -> fn() -> {"ok": bool, ...}; shown in /health/
        self.health_checks: dict[str, Callable[[], dict]] = {}
        # name -> fn(since) -> panel dict; shown on the staff dashboard (see workflows_app.ui.data)
        self.dashboard_panels: dict[str, Callable[[Any], dict]] = {}

    # --- registration ---
    def register_step_type(self, name: str, handler: Handler, **options: Any) -> StepType:
        step_type = StepType(name=name, handler=handler, **options)
        self.step_types[name] = step_type
        return step_type

    def step(self, name: str, **options: Any) -> Callable[[Handler], Handler]:
        """Decorator form of register_step_type."""

        def decorate(handler: Handler) -> Handler:
            self.register_step_type(name, handler, **options)
            return handler

        return decorate

    def register_trigger_type(self, name: str, params_model: type[BaseModel], **options: Any) -> TriggerType:
        trigger_type = TriggerType(name=name, params_model=params_model, **options)
        self.trigger_types[name] = trigger_type
        return trigger_type

    def register_error_classifier(self, classifier: Callable[[BaseException], ErrorInfo | None]) -> None:
        self.error_classifiers.append(classifier)

    def register_counter(self, name: str, fn: Callable[[Any], float]) -> None:
        """fn(since: datetime | None) -> number; shown under workflow_metrics' system figures."""
        self.counters[name] = fn

    def register_health_check(self, name: str, fn: Callable[[], dict]) -> None:
        self.health_checks[name] = fn

    def register_dashboard_panel(self, name: str, fn: Callable[[Any], dict]) -> None:
        """fn(since: datetime) -> {"title", "metrics": {label: number}, "columns": [...], "rows": [[...]],
        "series": [{"t": iso, "value": number}]} (every key but title optional); a dashboard panel."""
        self.dashboard_panels[name] = fn

    def register_dead_letter_redriver(self, source: str, fn: Callable[[Any], dict]) -> None:
        self.dead_letter_redrivers[source] = fn

    # --- lookup ---
    def get_step_type(self, name: str) -> StepType | None:
        return self.step_types.get(name)

    def classify_error(self, exc: BaseException) -> ErrorInfo:
        from workflows_app.errors import StepError

        if isinstance(exc, StepError):
            return ErrorInfo(exc.error_class, exc.transient, exc.retry_after)
        for classifier in self.error_classifiers:
            info = classifier(exc)
            if info is not None:
                return info
        if isinstance(exc, TimeoutError | ConnectionError):
            return ErrorInfo("timeout" if isinstance(exc, TimeoutError) else "connection", True)
        return ErrorInfo(type(exc).__name__, False)


registry = Registry()
