"""Registries the engine dispatches on, and the one way to fill them: a ``Plugin`` per app.

Each app declares one ``Plugin`` (its AppConfig names it: ``plugin = "app.plugin.PLUGIN"``);
``load_plugins`` (called from ``WorkflowsAppConfig.ready()``) loads every installed app's, and
refuses at start a name two plugins declare (``ImproperlyConfigured`` naming both owners).

The engine knows nothing about trading: a step type is a name, a pydantic params model, a
handler and its defaults; a trigger type is a name, a params model and (for event triggers) an
evaluator; an event kind is discrete (every match fires: an article) or a level (fires on the
edge: a tick); error classifiers map foreign exceptions to engine error classes; counters expose
domain figures (e.g. trades executed) to workflow_metrics. (A domain's own operations go into
the operation catalogue, ``workflows_app.operations.catalogue``.)
"""
from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from django.core.exceptions import ImproperlyConfigured
from django.utils.module_loading import import_string
from pydantic import BaseModel, ConfigDict

from workflows_app.errors import StepError


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
    # Computes in milliseconds with no side effect outside the database: its start is committed with
    # its outcome, one commit per step (engine.runner.start_grace); a slow step's start is committed first.
    quick: bool = False


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
class EventKind:
    """An event kind triggers listen to. Discrete events happen once (an article, a webhook call):
    every match fires, cooldown permitting. A level (a tick, a VIX reading) fires when its condition
    starts to hold. Kinds no plugin declares are levels."""

    name: str
    discrete: bool
    description: str = ""


@dataclass(frozen=True)
class BeatJob:
    """A housekeeping task beat sends every ``every`` seconds; ``every`` may be a function (it reads
    the app's conf when the plugins load). ``settings.CELERY_BEAT_SCHEDULE`` wins on the same name."""

    name: str
    task: str
    every: float | Callable[[], float]
    options: Mapping[str, Any] = field(default_factory=dict)

    def entry(self) -> dict:
        every = self.every() if callable(self.every) else self.every
        return {"task": self.task, "schedule": float(every), "options": dict(self.options)}


@dataclass(frozen=True)
class Plugin:
    """Everything one app plugs into the engine. ``name`` is the owner named when two plugins clash."""

    name: str
    step_types: Sequence[StepType] = ()
    trigger_types: Sequence[TriggerType] = ()
    event_kinds: Sequence[EventKind] = ()
    error_classifiers: Sequence[Callable[[BaseException], ErrorInfo | None]] = ()
    # name -> fn(message): push consumers of the named queues whose ``handler`` names them
    queue_handlers: Mapping[str, Callable[[Any], object]] = field(default_factory=dict)
    # name -> MessageQueue fields: queues that exist from the start (created on first use)
    default_queues: Mapping[str, dict] = field(default_factory=dict)
    # the queue a ``queue_send`` step uses when its params name none (at most one plugin sets it)
    send_queue: str | None = None
    beat_jobs: Sequence[BeatJob] = ()
    health_checks: Mapping[str, Callable[[], dict]] = field(default_factory=dict)
    counters: Mapping[str, Callable[[Any], float]] = field(default_factory=dict)
    dashboard_panels: Mapping[str, Callable[[Any], dict]] = field(default_factory=dict)
    dead_letter_redrivers: Mapping[str, Callable[[Any], dict]] = field(default_factory=dict)
    # dead-letter policies by error class (settings NEXUS_DLQ_*_CLASSES, when set, replace them)
    discard_classes: Sequence[str] = ()
    retry_classes: Sequence[str] = ()


@dataclass(frozen=True)
class ErrorInfo:
    error_class: str
    transient: bool
    retry_after: float | None = None


AD_HOC = "ad hoc"  # the owner of what is registered by a direct call (tests' own step types)


class Registry:
    def __init__(self) -> None:
        self.plugins: dict[str, Plugin] = {}
        self.step_types: dict[str, StepType] = {}
        self.trigger_types: dict[str, TriggerType] = {}
        self.event_kinds: dict[str, EventKind] = {}
        self.discrete_kinds: frozenset[str] = frozenset()
        self.error_classifiers: list[Callable[[BaseException], ErrorInfo | None]] = []
        self.queue_handlers: dict[str, Callable[[Any], object]] = {}
        self.default_queues: dict[str, dict] = {}
        self.send_queue: str | None = None
        self.beat_jobs: dict[str, BeatJob] = {}
        self.discard_classes: set[str] = set()
        self.retry_classes: set[str] = set()
        self.counters: dict[str, Callable[[Any], float]] = {}
        # source ("queue", ...) -> fn(dead_letter) -> dict describing where it went
        self.dead_letter_redrivers: dict[str, Callable[[Any], dict]] = {}
        # name -> fn() -> {"ok": bool, ...}; shown in /health/
        self.health_checks: dict[str, Callable[[], dict]] = {}
        # name -> fn(since) -> panel dict; shown on the staff dashboard (see workflows_app.ui.data)
        self.dashboard_panels: dict[str, Callable[[Any], dict]] = {}
        self._owners: dict[tuple[str, str], str] = {}

    # --- plugins ---
    def load(self, plugin: Plugin) -> None:
        """Register everything ``plugin`` declares; a name another owner holds is refused."""
        owner = plugin.name
        if owner in self.plugins:
            raise ImproperlyConfigured(f"plugin {owner!r} is loaded twice")
        for step_type in plugin.step_types:
            self._claim("step type", step_type.name, owner)
            self.step_types[step_type.name] = step_type
        for trigger_type in plugin.trigger_types:
            self._claim("trigger type", trigger_type.name, owner)
            self.trigger_types[trigger_type.name] = trigger_type
        for kind in plugin.event_kinds:
            self._claim("event kind", kind.name, owner)
            self.event_kinds[kind.name] = kind
        self.discrete_kinds = frozenset(k.name for k in self.event_kinds.values() if k.discrete)
        for classifier in plugin.error_classifiers:
            if classifier not in self.error_classifiers:
                self.error_classifiers.append(classifier)
        for attribute, what in (("queue_handlers", "queue handler"), ("default_queues", "default queue"),
                                ("health_checks", "health check"), ("counters", "counter"),
                                ("dashboard_panels", "dashboard panel"),
                                ("dead_letter_redrivers", "dead-letter redriver")):
            for name, value in getattr(plugin, attribute).items():
                self._claim(what, name, owner)
                getattr(self, attribute)[name] = value
        for job in plugin.beat_jobs:
            self._claim("beat job", job.name, owner)
            self.beat_jobs[job.name] = job
        if plugin.send_queue:
            self._claim("send queue", "queue_send default", owner)
            self.send_queue = plugin.send_queue
        for error_class in plugin.discard_classes:
            self._claim("dead-letter policy", error_class, owner)
            self.discard_classes.add(error_class)
        for error_class in plugin.retry_classes:
            self._claim("dead-letter policy", error_class, owner)
            self.retry_classes.add(error_class)
        self.plugins[owner] = plugin

    def _claim(self, what: str, name: str, owner: str) -> None:
        held_by = self._owners.setdefault((what, name), owner)
        if held_by != owner:
            raise ImproperlyConfigured(f"{what} {name!r} is declared by both {held_by!r} and {owner!r}: "
                                       "names must be unique across plugins")

    def is_discrete(self, kind: str | None) -> bool:
        return kind in self.discrete_kinds

    # --- direct registration (what a plugin declares goes through load(); tests add their own) ---
    def register_step_type(self, name: str, handler: Handler, *, owner: str = AD_HOC, **options: Any) -> StepType:
        self._claim("step type", name, owner)
        step_type = StepType(name=name, handler=handler, **options)
        self.step_types[name] = step_type
        return step_type

    def step(self, name: str, **options: Any) -> Callable[[Handler], Handler]:
        """Decorator form of register_step_type."""

        def decorate(handler: Handler) -> Handler:
            self.register_step_type(name, handler, **options)
            return handler

        return decorate

    def register_trigger_type(self, name: str, params_model: type[BaseModel], *, owner: str = AD_HOC,
                              **options: Any) -> TriggerType:
        self._claim("trigger type", name, owner)
        trigger_type = TriggerType(name=name, params_model=params_model, **options)
        self.trigger_types[name] = trigger_type
        return trigger_type

    def register_counter(self, name: str, fn: Callable[[Any], float], *, owner: str = AD_HOC) -> None:
        """fn(since: datetime | None) -> number; shown under workflow_metrics' system figures."""
        self._claim("counter", name, owner)
        self.counters[name] = fn

    def register_queue_handler(self, name: str, fn: Callable[[Any], object], *, owner: str = AD_HOC) -> None:
        """fn(message) drains a queue whose ``handler`` names it (tests add their own this way)."""
        self._claim("queue handler", name, owner)
        self.queue_handlers[name] = fn

    def register_health_check(self, name: str, fn: Callable[[], dict], *, owner: str = AD_HOC) -> None:
        self._claim("health check", name, owner)
        self.health_checks[name] = fn

    def register_dashboard_panel(self, name: str, fn: Callable[[Any], dict], *, owner: str = AD_HOC) -> None:
        """fn(since: datetime) -> {"title", "metrics": {label: number or text}, "columns": [...], "rows": [[...]],
        "series": [{"t": iso, "value": number}], "wide": bool, "notes": [text],
        "tables": [{"name", "title", "columns", "rows"}] (a cell {"text", "href"} is a link),
        "charts": [{"name", "title", "wide", "figure": {"data", "layout"}}] (Plotly figures),
        "actions": [{"name", "label", "url", "body", "confirm", "danger", "reason_required"}] (a button: a
        reason, a confirmation, then a JSON POST of body + reason with the page's CSRF token)}
        (every key but title optional); a dashboard panel."""
        self._claim("dashboard panel", name, owner)
        self.dashboard_panels[name] = fn


    # --- lookup ---
    def get_step_type(self, name: str) -> StepType | None:
        return self.step_types.get(name)

    def classify_error(self, exc: BaseException) -> ErrorInfo:
        if isinstance(exc, StepError):
            return ErrorInfo(exc.error_class, exc.transient, exc.retry_after)
        for classifier in self.error_classifiers:
            info = classifier(exc)
            if info is not None:
                return info
        if isinstance(exc, TimeoutError | ConnectionError):
            return ErrorInfo("timeout" if isinstance(exc, TimeoutError) else "connection", True)
        return ErrorInfo(type(exc).__name__, False)


def load_plugins(app_configs, target: Registry | None = None) -> list[Plugin]:
    """Load the plugin each app config names in its ``plugin`` attribute (a dotted path to a Plugin)."""
    target = target or registry
    loaded = []
    for app_config in app_configs:
        path = getattr(app_config, "plugin", None)
        if not path:
            continue
        plugin = import_string(path)
        if not isinstance(plugin, Plugin):
            raise ImproperlyConfigured(f"{app_config.name}.plugin = {path!r} is not a workflows_app.registry.Plugin")
        target.load(plugin)
        loaded.append(plugin)
    return loaded


registry = Registry()
